"""Replay runs offline, beside the live workers: it never loads the Faust worker or Faust."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
WORKER = ("streams.app", "faust")


def _is_worker(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in WORKER)


def test_importing_replay_loads_neither_the_worker_nor_faust() -> None:
    script = textwrap.dedent(
        """
        import importlib, json, pkgutil, sys
        import streams.replay
        modules = [
            importlib.import_module(f"streams.replay.{found.name}").__name__
            for found in pkgutil.iter_modules(streams.replay.__path__)
        ]
        print(json.dumps({"modules": modules, "loaded": sorted(sys.modules)}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # the walk reached the package's modules (an empty walk would prove nothing)
    assert {"streams.replay.reader", "streams.replay.pool", "streams.replay.dlq"} <= set(
        report["modules"]
    )
    assert [m for m in report["loaded"] if _is_worker(m)] == []


def test_no_replay_module_imports_the_worker_inside_a_function() -> None:
    # imports made only when a function runs escape the subprocess check above
    found = []
    for path in sorted((ROOT / "streams" / "replay").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found += [f"{path.name}:{node.lineno} {n}" for n in names if _is_worker(n)]
    assert found == []

"""The benchmarks load only when asked: the core install's command line never needs httpx."""

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
PACKAGES = ("common", "schemas", "inference", "streams", "api", "tutorstream")
COMMANDS = {"api", "boards", "inference", "normalize", "pipeline", "replay"}


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_line_lists_every_benchmark_without_loading_one() -> None:
    # the listing is the one `make bench` runs to enumerate the commands
    done = _run(
        """
        import json, sys, typer
        from tutorstream.cli.bench import app
        commands = sorted(typer.main.get_group(app).commands)
        print(json.dumps({"commands": commands, "loaded": sorted(sys.modules)}))
        """
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["commands"]) == COMMANDS
    loaded = report["loaded"]
    assert [m for m in loaded if m == "httpx" or m.startswith("httpx.")] == []
    # the report writer is the one part every command shares; no benchmark itself is loaded
    assert [m for m in loaded if m.startswith("tutorstream.bench.")] == ["tutorstream.bench.report"]


def test_only_the_api_benchmark_imports_httpx() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                else:
                    continue
                if any(name.split(".")[0] == "httpx" for name in names):
                    found.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(found)) == ["tutorstream/bench/api.py"]


def test_bench_api_without_httpx_says_what_to_install() -> None:
    """httpx is installed here; a ``None`` entry in ``sys.modules`` makes it missing, as on a
    core install."""
    done = _run(
        """
        import sys
        sys.modules["httpx"] = None
        from tutorstream.cli import main
        sys.argv = ["tutorstream", "bench", "api", "--smoke"]
        main()
        """
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "pip install 'tutorstream[dev]'" in done.stderr

"""The benchmarks load only when asked: listing them loads none."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
COMMANDS = {"api", "boards", "console", "inference", "normalize", "pipeline", "replay"}


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
    # the report writer is the one part every command shares; no benchmark itself is loaded
    assert [m for m in loaded if m.startswith("tutorstream.bench.")] == ["tutorstream.bench.report"]

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutorstream.cli import app

pytestmark = pytest.mark.e2e


def test_bench_replay_smoke_times_every_mode_against_a_plain_read(tmp_path: Path) -> None:
    out = tmp_path / "replay.json"
    result = CliRunner().invoke(app, ["bench", "replay", "--smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["events"] == 2000 and report["baseline_per_s"] > 0
    for mode in (
        "export_per_s",
        "export_parquet_per_s",
        "rebuild_per_s",
        "rebuild_again_per_s",
        "rebuild_parallel_per_s",
        "rebuild_parallel_again_per_s",
    ):
        assert report[mode] > 0, mode
    assert set(report["runs"]) == {
        "rebuild",
        "rebuild_again",
        "rebuild_parallel",
        "rebuild_parallel_again",
    }
    assert report["floors"] == {"export": 20_000.0, "rebuild": 10_000.0}
    ratio = report["export_per_s"] / report["baseline_per_s"]
    assert f"ratio {ratio:.3f}" in result.output
    assert f"wrote {out}" in result.output

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutorstream.cli import app
from tutorstream.grafana.queries import board_queries

pytestmark = pytest.mark.integration


def test_bench_boards_smoke_times_every_query_and_writes_json(
    postgres_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "boards.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "boards",
            "--smoke",
            "--url",
            postgres_url,
            "--schema",
            "bench_smoke",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["mode"] == "postgresql"
    assert report["rows"]["events"] == report["events"] > 1000
    timed = {(t["board"], t["panel"]) for t in report["timings"]}
    assert timed == {(q.board, q.title) for q in board_queries()}
    with_baseline = [t for t in report["timings"] if t["raw_median_ms"] is not None]
    assert {t["panel"] for t in with_baseline} == {
        "Detected states over time",
        "Interventions by status",
        "Mastery by skill",
    }
    assert all(t["aggregate_speedup"] > 0 for t in with_baseline)
    assert "p99 ms" in result.output

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutorstream.cli import app

pytestmark = pytest.mark.e2e


def test_bench_pipeline_smoke_with_two_workers_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "pipeline",
            "--smoke",
            "--workers",
            "2",
            "--compare-workers",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["workers"] == 2
    assert report["events"] == 2000 and report["events_per_s"] > 0
    assert report["consume_baseline_per_s"] > 0
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]
    # both workers, the broker and PostgreSQL (through its backends) burned CPU on the events
    cpu = report["cpu_ms_per_1k"]
    assert set(cpu) == {"worker-0", "worker-1", "broker", "postgres", "producer"}
    assert cpu["worker-0"] + cpu["worker-1"] > 0 and cpu["broker"] > 0 and cpu["postgres"] > 0
    assert {"sink", "inference", "normalise", "features"} <= set(report["stage_seconds"])
    assert report["mean_batch"] >= 1
    assert "CPU per 1,000 events" in result.output
    # the rebuild replay of the same events, in the same run: the worker's CPU against its own
    assert report["worker_cpu_us"] == pytest.approx(cpu["worker-0"] + cpu["worker-1"])
    assert report["rebuild_cpu_us"] > 0 and report["rebuild_per_s"] > 0
    assert report["worker_to_rebuild_cpu"] == pytest.approx(
        report["worker_cpu_us"] / report["rebuild_cpu_us"], rel=1e-3
    )
    scale = report["scale_out"]
    assert scale["workers"] == 1 and scale["events_per_s"] > 0
    assert scale["ratio"] == pytest.approx(scale["events_per_s"] / report["events_per_s"])
    assert "worker CPU per event" in result.output and "1 workers" in result.output

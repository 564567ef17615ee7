from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutorstream.bench.inference import BATCHES, CARRIED, format_table, run_inference_bench
from tutorstream.cli import app

pytestmark = pytest.mark.unit


def test_smoke_bench_measures_both_engines_at_every_batch() -> None:
    report = run_inference_bench(threads=1, smoke=True, show_progress=False)
    for engine in ("onnxruntime-cpu", "pytorch-eager-cpu", CARRIED):
        for batch in BATCHES:
            m = report.find(engine, batch)
            assert m is not None, (engine, batch)
            assert m.calls >= 3 and m.windows_per_s > 0 and m.p99_ms >= m.p50_ms > 0
    data = report.to_dict()
    assert set(data["onnx_over_pytorch"]) == {"1", "64", "512"}
    # the shipped model carries each learner's state: its decisions measured both ways
    assert set(data["carried_over_window"]) == {"1", "64", "512"}
    assert all(r is not None and r > 0 for r in data["carried_over_window"].values())
    at_512 = report.find("onnxruntime-cpu", 512)
    assert at_512 is not None and data["floor"]["measured"] == at_512.windows_per_s
    assert any(m.engine.startswith("micro-batcher") for m in report.measurements)
    table = format_table(report)
    assert "onnx/torch" in table and "floor: 20,000 windows/s at batch 512" in table


def test_cli_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "inference.json"
    result = CliRunner().invoke(
        app, ["bench", "inference", "--smoke", "--threads", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "pytorch-eager-cpu" in result.output and "onnxruntime-cpu" in result.output
    data = json.loads(out.read_text())
    assert {m["batch"] for m in data["measurements"] if m["engine"] == "onnxruntime-cpu"} == {
        1,
        64,
        512,
    }
    assert data["smoke"] is True

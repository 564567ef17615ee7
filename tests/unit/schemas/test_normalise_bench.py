from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.normalise import normalise
from tutorstream.bench.normalize import build_corpora, run_benchmark, table
from tutorstream.cli import app

pytestmark = pytest.mark.unit


def test_every_generated_record_normalises() -> None:
    for corpus in build_corpora(300, batch=50):
        events = sum(len(normalise(record, b"k" * 32)) for record in corpus.records)
        assert events == corpus.events == 300, corpus.name


def test_report_compares_each_format_with_plain_parsing() -> None:
    lines: list[str] = []
    report = run_benchmark(records=200, rounds=1, progress=lines.append)
    formats = [row["format"] for row in report["results"]]
    assert formats == ["xapi", "xapi[100]", "caliper", "native"]
    for row in report["results"]:
        assert row["events"] == 200
        assert row["events_per_s"] > 0 and row["json_loads_events_per_s"] > 0
        assert row["ratio_vs_json_loads"] == pytest.approx(
            row["events_per_s"] / row["json_loads_events_per_s"]
        )
    assert report["floor"]["xapi_events_per_s"] == 50_000
    assert any("ETA" in line for line in lines)
    rendered = list(table(report))
    assert rendered[0].split()[:2] == ["format", "events/s"]
    assert len(rendered) == len(formats) + 2
    json.dumps(report)


def test_cli_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "results" / "normalize.json"
    result = CliRunner().invoke(app, ["bench", "normalize", "--smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "json.loads/s" in result.output
    assert "xAPI floor" in result.output
    report = json.loads(out.read_text("utf-8"))
    assert report["smoke"] is True
    assert {row["format"] for row in report["results"]} == {
        "xapi",
        "xapi[100]",
        "caliper",
        "native",
    }

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tutorstream.bench.report import align, publish, ratio

pytestmark = pytest.mark.unit


def test_ratio_is_against_the_baseline_and_zero_without_one() -> None:
    assert ratio(300.0, 1200.0) == 0.25
    assert ratio(300.0, 0.0) == 0.0


def test_publish_prints_the_table_writes_json_and_says_where(tmp_path: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "bench-results" / "x.json"
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert publish("a table", {"rate": 1.5, "when": when}, out, lines.append) == out
    assert lines == ["a table", f"wrote {out}"]
    assert json.loads(out.read_text("utf-8")) == {"rate": 1.5, "when": str(when)}
    assert out.read_text("utf-8").endswith("}\n")


def test_align_pads_columns_and_rules_the_header() -> None:
    assert align([("name", "rate"), ("export", "9")]) == [
        "name    rate",
        "------  ----",
        "export  9   ",
    ]

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutorstream.cli import app

pytestmark = pytest.mark.e2e


def test_bench_api_smoke_ingests_every_statement_and_feeds_every_client(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    result = CliRunner().invoke(app, ["bench", "api", "--smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["benchmark"] == "api"
    ingest = report["ingest"]
    assert ingest["failed_requests"] == 0
    # the warm-up's statements are stored too
    assert ingest["stored_in_database"] >= ingest["statements"] == 20 * 100
    direct = ingest["baseline_direct_to_broker"]["statements_per_s"]
    assert ingest["ratio_api_to_direct"] == round(ingest["statements_per_s"] / direct, 3)
    for layout in report["live_feed"].values():
        assert layout["lost"] == 0 and layout["deliveries"] == layout["deliveries_expected"] > 0
        assert layout["baseline_plain_consumer_latency"]["count"] > 0
    assert set(report["floors"]) == {"statements_per_s", "ingest_p99_ms", "feed_p99_ms"}
    assert "baseline: same records direct to broker" in result.output
    assert f"wrote {out}" in result.output

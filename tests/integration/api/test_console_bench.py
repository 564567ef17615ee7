"""`tutorstream bench console` in its smoke size, on the session's broker and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_support import ApiEnv
from console_support import node_ready

from tutorstream.bench.api import BenchTarget
from tutorstream.bench.console import ConsolePlan, format_table, run_console_bench

pytestmark = pytest.mark.integration


def test_the_console_benchmark_measures_every_tutors_screen(api_env: ApiEnv, tmp_path: Path):
    why = node_ready()
    if why is not None:
        pytest.fail(f"the console benchmark needs Node and tests/web's packages: {why}")
    plan = ConsolePlan.smoke()
    target = BenchTarget(api_env.bootstrap, api_env.database_url, api_env.schema, api_env.prefix)
    report = run_console_bench(target, plan, lambda line: None, tmp_path)
    per_class = plan.tutors // plan.classes
    assert report["expected_screens"] == plan.interventions * per_class
    assert report["lost"] == 0
    assert report["event_to_screen"]["count"] == plan.interventions * per_class
    assert report["page_load"]["count"] == plan.tutors * plan.page_loads
    assert report["baseline_plain_consumer"]["count"] == plan.interventions
    assert report["learning_events"]["failed_batches"] == 0
    assert report["learning_events"]["accepted_per_s"] > 0
    assert set(report["floors"]) == {"event_to_screen_p99_ms", "page_load_p99_ms"}
    assert "intervention to screen" in format_table(report)

from __future__ import annotations

import json
from collections.abc import Callable
from subprocess import CompletedProcess
from typing import Any

import pytest

from streams.store import StoreMode
from streams.store.migrations import load_migrations

pytestmark = pytest.mark.integration

# (url, mode, schema), from the fixtures in conftest.py
Store = tuple[str, StoreMode, str]
RunCli = Callable[..., CompletedProcess[str]]


def test_db_migrate_twice_then_status_reports_the_mode(store: Store, run_cli: RunCli) -> None:
    url, mode, schema = store
    env = {"TUTORSTREAM_DATABASE_URL": url, "TUTORSTREAM_STORE__DB_SCHEMA": schema}

    first = run_cli("db", "migrate", env=env)
    second = run_cli("db", "migrate", env=env)
    refresh = run_cli("db", "refresh", env=env)
    report = run_cli("db", "status", "--json", env=env)

    assert first.returncode == 0, first.stderr
    assert "applied now 0001, 0002, 0003" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "applied now nothing (up to date)" in second.stdout
    assert f"mode        {mode.value}" in second.stdout
    # Neither server here runs TimescaleDB's job scheduler, so the command refreshes itself.
    assert refresh.returncode == 0, refresh.stderr
    assert refresh.stdout.count("refreshed   class_") == 3
    assert report.returncode == 0, report.stderr
    status: dict[str, Any] = json.loads(report.stdout)
    assert status["mode"] == mode.value
    assert status["schema"] == schema
    assert status["applied"] == [m.version for m in load_migrations()]
    assert status["pending"] == []
    assert status["policies"] == {"compression_after": 7 * 86400.0, "retention": 400 * 86400.0}
    assert [a["name"] for a in status["aggregates"]] == [
        "class_interventions_1m",
        "class_skill_mastery_1h",
        "class_states_1m",
    ]


def test_db_migrate_refuses_a_retention_inside_a_refresh_window(
    pg_store: Store, run_cli: RunCli
) -> None:
    url, _, schema = pg_store
    env = {
        "TUTORSTREAM_STORE__COMPRESSION_AFTER": "1 day",
        "TUTORSTREAM_STORE__RETENTION": "2 days",
    }
    result = run_cli("db", "migrate", "--url", url, "--schema", schema, env=env)
    assert result.returncode == 1
    assert "refresh window" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_status_without_any_database_says_what_to_do(run_cli: RunCli) -> None:
    result = run_cli("db", "status")
    assert result.returncode == 1
    assert "TUTORSTREAM_DATABASE_URL" in result.stderr

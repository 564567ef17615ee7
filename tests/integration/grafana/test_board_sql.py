"""Every SQL query of the boards, run against the real store holding a simulated class.

Each query is expanded the way Grafana expands it (template variables, then the PostgreSQL
datasource's macros; ``time_bucket`` for ``$__timeGroup`` on TimescaleDB) and must return the
columns its panel type draws from, with rows in them.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from streams.store import connect, migrate
from tutorstream.grafana.macros import QueryContext, expand
from tutorstream.grafana.queries import BoardQuery, board_queries
from tutorstream.grafana.sample import SampleSummary, sample_window, write_sample

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number | Decimal) and not isinstance(value, bool)


def problems(query: BoardQuery, columns: list[str], rows: list[tuple[Any, ...]]) -> list[str]:
    """What is missing for the panel type to draw the result."""
    if not rows:
        return ["no rows"]
    found: list[str] = []
    by_name = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    numeric = [c for c in columns if c != "time" and any(is_number(v) for v in by_name[c])]
    timed = ("timeseries", "heatmap", "state-timeline", "annotation")
    if query.kind in timed and "time" not in columns:
        found.append("no time column")
    if query.kind in ("timeseries", "heatmap", "stat") and not numeric:
        found.append("no numeric value column")
    series = query.kind in ("timeseries", "heatmap") and query.fmt == "time_series"
    if series and "metric" in columns and len(set(by_name["metric"])) < 2:
        found.append("fewer than two series")
    if query.kind == "state-timeline" and len(columns) < 2:
        found.append("no state column")
    if query.kind == "annotation" and "text" not in columns:
        found.append("no text column")
    if query.kind == "barchart":
        x_field = (query.options or {}).get("xField")
        if x_field not in columns:
            found.append(f"x field {x_field!r} missing")
        if not numeric:
            found.append("no numeric value column")
    if query.kind == "variable" and not all(r[0] for r in rows):
        found.append("empty variable value")
    return found


def fill(url: str, schema: str) -> tuple[SampleSummary, dict[str, str]]:
    migrate(url, schema=schema)
    summary = write_sample(url, schema=schema, learners=60, problems=6, seed=11, start=START)
    with connect(url, schema=schema, connect_timeout=30) as conn:
        row = conn.execute(
            # A learner with prompts and dismissals who has worked on more than one skill.
            "SELECT i.class_id, i.learner_id FROM interventions i "
            "WHERE i.status IN ('sent', 'dismissed') AND (SELECT count(DISTINCT m.skill_id) "
            "FROM skill_mastery m WHERE m.learner_id = i.learner_id) > 1 "
            "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1"
        ).fetchone()
    assert row is not None
    return summary, {"class": row[0], "learner": row[1], "window": "10"}


def run_all(url: str, schema: str, timescaledb: bool) -> None:
    summary, variables = fill(url, schema)
    assert len(summary.classes) == 2 and summary.interventions > 20 and summary.acted > 0
    time_from, time_to = sample_window(summary)
    queries = list(board_queries())
    assert len(queries) >= 15
    failures: list[str] = []
    with connect(url, schema=schema, connect_timeout=30) as conn:
        for query in queries:
            interval = max(query.min_interval or timedelta(0), timedelta(minutes=1))
            context = QueryContext(time_from, time_to, interval, variables, timescaledb)
            sql = expand(query.sql, context)
            assert "$" not in sql.replace("$$", ""), sql
            try:
                cursor = conn.execute(sql.encode())
                columns = [c.name for c in cursor.description or []]
                rows = cursor.fetchall()
            except psycopg.Error as err:  # every failing query is reported at once
                failures.append(f"{query.board} / {query.title}: {err}")
                continue
            failures += [
                f"{query.board} / {query.title}: {p}" for p in problems(query, columns, rows)
            ]
    assert not failures, "\n".join(failures)


def test_every_board_query_runs_on_postgresql(
    postgres_url: str, pg_schema: Callable[[str], Any]
) -> None:
    run_all(postgres_url, pg_schema(postgres_url).name, timescaledb=False)


def test_every_board_query_runs_on_timescaledb(
    timescale_url: str, pg_schema: Callable[[str], Any]
) -> None:
    run_all(timescale_url, pg_schema(timescale_url).name, timescaledb=True)


def test_queries_outside_the_class_window_return_no_rows(
    postgres_url: str, pg_schema: Callable[[str], Any]
) -> None:
    schema = pg_schema(postgres_url).name
    _, variables = fill(postgres_url, schema)
    before = QueryContext(START - timedelta(days=2), START - timedelta(days=1), variables=variables)
    attention = next(q for q in board_queries() if q.title == "Learners needing attention now")
    with connect(postgres_url, schema=schema, connect_timeout=30) as conn:
        assert conn.execute(expand(attention.sql, before).encode()).fetchall() == []

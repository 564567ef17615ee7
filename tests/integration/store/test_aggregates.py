from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from schemas.events import EventType, LearningEvent, SourceFormat
from streams.store import (
    StoreBatch,
    StoreMode,
    StoreSettings,
    StoreSink,
    apply_retention,
    connect,
    maintain,
    migrate,
    refresh_aggregates,
    status,
)

pytestmark = pytest.mark.integration

# (url, mode, schema), from the fixtures in conftest.py
Store = tuple[str, StoreMode, str]

STATES = ("none", "overconfidence", "anchoring", "confirmation", "gaming", "wheel_spinning")


def db_now(url: str, schema: str) -> datetime:
    with connect(url, schema=schema, connect_timeout=30) as conn:
        row = conn.execute("SELECT date_trunc('minute', now())").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def cohort(now: datetime, ages: list[timedelta], tag: str) -> StoreBatch:
    """Events with predictions, per-skill mastery and interventions in two classes."""
    batch = StoreBatch()
    for n, age in enumerate(ages):
        event = LearningEvent(
            event_id=f"{tag}-{n}",
            learner_id=f"learner-{n % 5}",
            class_id="class-a" if n % 3 else "class-b",
            item_id="item-1",
            skill_ids=("fractions",),
            event_type=EventType.ANSWER_SUBMIT,
            timestamp=now - age,
            correct=n % 2 == 0,
            source=SourceFormat.NATIVE,
        )
        state = STATES[n % len(STATES)]
        batch.add_events([event]).add_prediction(
            event,
            state=state,
            confidence=0.8,
            state_probs=[0.04] * (len(STATES) - 1) + [0.8],
            p_correct=0.6,
            model_version="tutorstream-learner@1",
            mastery={"fractions": 0.25 + 0.5 * (n % 2)},
        )
        if state != "none":
            batch.add_intervention(
                event,
                intervention_id=f"iv-{event.event_id}",
                state=state,
                confidence=0.8,
                status="pending_review" if n % 2 else "sent",
                prompt_id=f"{state}.1",
                prompt="What would you check first?",
                model_version="tutorstream-learner@1",
            )
    return batch


def write(url: str, schema: str, batch: StoreBatch) -> None:
    async def run() -> None:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            await sink.write(batch)

    asyncio.run(run())


def totals(url: str, schema: str) -> dict[str, object]:
    with connect(url, schema=schema, connect_timeout=30) as conn:
        states = conn.execute(
            "SELECT class_id, state, sum(predictions)::int FROM class_states_1m "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        interventions = conn.execute(
            "SELECT class_id, status, sum(interventions)::int FROM class_interventions_1m "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        mastery = conn.execute(
            "SELECT class_id, skill_id, sum(estimates)::int, "
            "round((sum(mean_mastery * estimates) / sum(estimates))::numeric, 3) "
            "FROM class_skill_mastery_1h GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    return {"states": states, "interventions": interventions, "mastery": mastery}


def raw_totals(url: str, schema: str) -> dict[str, object]:
    with connect(url, schema=schema, connect_timeout=30) as conn:
        states = conn.execute(
            "SELECT class_id, state, count(*)::int FROM predictions GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        interventions = conn.execute(
            "SELECT class_id, status, count(*)::int FROM interventions GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        mastery = conn.execute(
            "SELECT class_id, skill_id, count(*)::int, round(avg(mastery)::numeric, 3) "
            "FROM skill_mastery GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    return {"states": states, "interventions": interventions, "mastery": mastery}


def test_aggregates_answer_before_and_after_refresh_and_take_late_rows(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    now = db_now(url, schema)
    # Rows two days back to a few minutes ago: inside every refresh window, and some so recent
    # that only real-time aggregation sees them.
    ages = [timedelta(minutes=3 + 37 * n) for n in range(60)]
    write(url, schema, cohort(now, ages, "first"))

    live = totals(url, schema)
    assert live == raw_totals(url, schema)
    assert live["states"] and live["interventions"] and live["mastery"]

    refreshed = refresh_aggregates(url, schema=schema)
    assert {r.name for r in refreshed} == {
        "class_states_1m",
        "class_interventions_1m",
        "class_skill_mastery_1h",
    }
    marks = {a.name: a.watermark for a in status(url, schema=schema).aggregates}
    assert all(mark is not None and mark > now - timedelta(hours=2) for mark in marks.values())
    assert totals(url, schema) == raw_totals(url, schema)

    # Late rows for buckets already materialised show up after the next refresh.
    write(url, schema, cohort(now, [timedelta(hours=5), timedelta(hours=6, minutes=1)], "late"))
    refresh_aggregates(url, schema=schema)
    assert totals(url, schema) == raw_totals(url, schema)


def test_maintain_refreshes_where_no_scheduler_runs(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    now = db_now(url, schema)
    write(url, schema, cohort(now, [timedelta(hours=3), timedelta(minutes=2)], "m"))

    report = maintain(url, schema=schema)

    # Neither the embedded PostgreSQL nor the WASM build runs background jobs.
    assert len(report.refreshed) == 3
    assert totals(url, schema) == raw_totals(url, schema)


def test_retention_keeps_aggregate_rows_of_dropped_raw_rows(store: Store) -> None:
    url, mode, schema = store
    migrate(url, schema=schema)
    now = db_now(url, schema)
    write(url, schema, cohort(now, [timedelta(days=300), timedelta(days=300, hours=1)], "old"))
    write(url, schema, cohort(now, [timedelta(minutes=5)], "new"))
    refresh_aggregates(url, schema=schema, full=True)
    before = totals(url, schema)

    migrate(url, schema=schema, retention=timedelta(days=200))
    if mode is StoreMode.POSTGRESQL:
        # a maintenance between two retention passes only refreshes
        assert maintain(url, schema=schema, retention=False).deleted == {}
        with connect(url, schema=schema) as conn:
            assert conn.execute("SELECT count(*) FROM predictions").fetchone() == (3,)
        deleted = apply_retention(url, schema=schema)
        assert deleted["predictions"] == 2
    else:
        with connect(url, schema=schema) as conn:
            jobs = conn.execute(
                "SELECT job_id FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_retention' AND hypertable_schema = %s",
                (schema,),
            ).fetchall()
            for (job,) in jobs:
                conn.execute(f"CALL run_job({int(job)})")

    with connect(url, schema=schema) as conn:
        remaining = conn.execute("SELECT count(*) FROM predictions").fetchone()
    assert remaining == (1,)
    assert totals(url, schema) == before


def test_a_tutors_action_reaches_the_aggregate_after_the_next_refresh(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    now = db_now(url, schema)
    write(url, schema, cohort(now, [timedelta(hours=2, minutes=7 * n) for n in range(12)], "a"))
    refresh_aggregates(url, schema=schema)
    with connect(url, schema=schema, connect_timeout=30) as conn:
        changed = conn.execute(
            "UPDATE interventions SET status = 'approved' WHERE status = 'pending_review'"
        ).rowcount
    assert changed > 0
    assert totals(url, schema) != raw_totals(url, schema)  # materialised before the action
    refresh_aggregates(url, schema=schema)
    assert totals(url, schema) == raw_totals(url, schema)


def test_refresh_recomputes_what_changed_not_the_whole_window(pg_store: Store) -> None:
    """The fallback's refresh; TimescaleDB's continuous aggregates keep their own log."""
    url, _, schema = pg_store
    migrate(url, schema=schema)
    now = db_now(url, schema)
    write(url, schema, cohort(now, [timedelta(hours=1, minutes=9 * n) for n in range(20)], "w"))
    first = {r.name: r for r in refresh_aggregates(url, schema=schema)}
    assert all(r.window_start is None for r in first.values())  # all history, once
    marks = {a.name: a.watermark for a in status(url, schema=schema).aggregates}

    # nothing written since: only buckets past the watermark, none of the window's days
    again = {r.name: r for r in refresh_aggregates(url, schema=schema)}
    assert all(r.window_start == marks[name] for name, r in again.items())

    # a late row two days back: its bucket on, not the window's start
    write(url, schema, cohort(now, [timedelta(days=2, minutes=3)], "late"))
    late = {r.name: r for r in refresh_aggregates(url, schema=schema)}
    started = late["class_states_1m"].window_start
    assert started is not None and now - timedelta(days=2, minutes=4) <= started
    assert started <= now - timedelta(days=2, minutes=3)
    assert totals(url, schema) == raw_totals(url, schema)
    with connect(url, schema=schema, connect_timeout=30) as conn:
        left = conn.execute("SELECT count(*) FROM aggregate_invalidations").fetchone()
    assert left == (0,)

    # older than the window's start: left as it was, as TimescaleDB leaves it
    write(url, schema, cohort(now, [timedelta(days=5)], "old"))
    refresh_aggregates(url, schema=schema)
    assert totals(url, schema) != raw_totals(url, schema)

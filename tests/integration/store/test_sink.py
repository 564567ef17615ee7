from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from schemas.events import EventType, LearningEvent, SourceFormat
from streams.store import (
    RejectedBatch,
    StoreBatch,
    StoreError,
    StoreMode,
    StoreSettings,
    StoreSink,
    WriteMethod,
    connect,
    migrate,
)
from streams.store.tables import PREDICTIONS, RECOMMENDATIONS, Row
from tutorstream import services

pytestmark = pytest.mark.integration

# (url, mode, schema), from the fixtures in conftest.py
Store = tuple[str, StoreMode, str]

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def make_events(n: int, *, start: int = 0, learners: int = 7) -> list[LearningEvent]:
    return [
        LearningEvent(
            event_id=f"ev-{i}",
            learner_id=f"learner-{i % learners}",
            class_id="class-a" if i % 2 else "class-b",
            item_id=f"item-{i % 13}",
            skill_ids=("fractions", "ratios") if i % 3 else (),
            event_type=EventType.ANSWER_SUBMIT,
            timestamp=T0 + timedelta(seconds=i),
            correct=bool(i % 2),
            attempt=1 + i % 3,
            duration_s=2.5 + i % 5,
            source=SourceFormat.NATIVE,
        )
        for i in range(start, start + n)
    ]


def count(url: str, schema: str, query: str) -> int:
    with connect(url, schema=schema, connect_timeout=30) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_a_batch_written_twice_is_stored_once(store: Store) -> None:
    url, mode, schema = store
    migrate(url, schema=schema)
    events = make_events(500)

    async def run() -> tuple[int, int, WriteMethod | None]:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            first = await sink.write_events(events)
            second = await sink.write_events(events)
            return first.inserted["events"], second.inserted["events"], sink.method

    first, second, method = asyncio.run(run())

    assert (first, second) == (500, 0)
    # COPY where the server has it; the WASM build has none, so the sink INSERTs there.
    assert method is (WriteMethod.INSERT if mode is StoreMode.TIMESCALEDB else WriteMethod.COPY)
    assert count(url, schema, "SELECT count(*) FROM events") == 500
    assert count(url, schema, "SELECT count(DISTINCT (event_id, time)) FROM events") == 500


def test_insert_path_on_native_postgresql_stores_the_same_rows(pg_store: Store) -> None:
    url, _, schema = pg_store
    migrate(url, schema=schema)
    events = make_events(200)

    async def run() -> int:
        settings = StoreSettings(db_schema=schema, write_method=WriteMethod.INSERT)
        async with StoreSink(url, settings) as sink:
            await sink.write_events(events[:150])
            result = await sink.write_events(events)
            assert sink.method is WriteMethod.INSERT
            return result.inserted["events"]

    assert asyncio.run(run()) == 50
    with connect(url, schema=schema) as conn:
        row = conn.execute(
            "SELECT learner_id, class_id, skill_ids, event_type, correct, attempt, duration_s, "
            "source, time FROM events WHERE event_id = 'ev-4'"
        ).fetchone()
    assert row == (
        "learner-4",
        "class-b",
        ["fractions", "ratios"],
        "answer_submit",
        False,
        2,
        6.5,
        "native",
        T0 + timedelta(seconds=4),
    )


def test_copy_and_insert_paths_store_identical_rows(pg_store: Store) -> None:
    url, _, schema = pg_store
    migrate(url, schema=schema)
    events = make_events(60)

    async def run() -> None:
        copy = StoreSettings(db_schema=schema, write_method=WriteMethod.COPY)
        insert = StoreSettings(db_schema=schema, write_method=WriteMethod.INSERT)
        async with StoreSink(url, copy) as sink:
            await sink.write_events(events[::2])
        async with StoreSink(url, insert) as sink:
            await sink.write_events(events[1::2])

    asyncio.run(run())
    with connect(url, schema=schema) as conn:
        rows = conn.execute(
            "SELECT event_id, skill_ids, duration_s, correct, time FROM events ORDER BY time"
        ).fetchall()
    assert [r[0] for r in rows] == [e.event_id for e in events]
    for row, event in zip(rows, events, strict=True):
        assert row[1:] == (list(event.skill_ids), event.duration_s, event.correct, event.timestamp)


def test_duplicates_inside_one_batch_are_stored_once(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    events = make_events(40)

    async def run() -> int:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            return (await sink.write_events(events + events[:10])).inserted["events"]

    assert asyncio.run(run()) == 40
    assert count(url, schema, "SELECT count(*) FROM events") == 40


@pytest.mark.parametrize(
    ("confidence", "state", "reason"),
    [(0.9, None, "state"), ("very", "gaming", "")],
    ids=["null-in-not-null-column", "text-in-real-column"],
)
def test_a_batch_the_database_refuses_writes_nothing(
    store: Store, confidence: object, state: str | None, reason: str
) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    good = make_events(5)
    bad_prediction: Row = (
        T0, "ev-0", "learner-0", "class-b", None, [], state, confidence, [0.9], None, "m1"
    )  # fmt: skip

    async def run() -> int:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            batch = StoreBatch().add_events(good).add_rows(PREDICTIONS, [bad_prediction])
            with pytest.raises(RejectedBatch) as caught:
                await sink.write(batch)
            assert caught.value.table == "predictions"
            assert reason in caught.value.reason
            # The sink stays usable after a refused batch.
            return (await sink.write_events(good)).inserted["events"]

    assert asyncio.run(run()) == 5
    assert count(url, schema, "SELECT count(*) FROM events") == 5
    assert count(url, schema, "SELECT count(*) FROM predictions") == 0


def test_a_schema_that_is_not_migrated_is_reported(pg_store: Store) -> None:
    url, _, schema = pg_store

    async def run() -> None:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            await sink.write_events(make_events(1))

    with pytest.raises(StoreError, match="tutorstream db migrate"):
        asyncio.run(run())


def test_current_recommendations_keep_each_learners_latest(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)

    def rec(second: int, learner: str, item: str, klass: str | None = "class-a") -> Row:
        when = T0 + timedelta(seconds=second)
        return (
            when,
            f"ev-{learner}-{second}",
            learner,
            klass,
            item,
            ["fractions"],
            0.7,
            "zpd",
            "m1",
        )

    async def run() -> None:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            # Newer first, then older: the older must not replace the newer.
            await sink.write(
                StoreBatch().add_rows(
                    RECOMMENDATIONS, [rec(30, "l1", "item-new"), rec(5, "l2", "item-2")]
                )
            )
            await sink.write(
                StoreBatch().add_rows(
                    RECOMMENDATIONS,
                    [rec(10, "l1", "item-old"), rec(20, "l2", "item-3"), rec(40, "l3", "x", None)],
                )
            )

    asyncio.run(run())
    with connect(url, schema=schema) as conn:
        current = conn.execute(
            "SELECT learner_id, item_id FROM current_recommendations "
            "WHERE class_id = 'class-a' ORDER BY learner_id"
        ).fetchall()
        history = conn.execute("SELECT count(*) FROM recommendations").fetchone()
    assert current == [("l1", "item-new"), ("l2", "item-3")]
    assert history == (5,)


def test_current_recommendations_take_the_latest_of_one_batch_whatever_its_order(
    store: Store,
) -> None:
    url, _, schema = store
    migrate(url, schema=schema)

    def rec(second: int, event_id: str, learner: str, item: str) -> Row:
        when = T0 + timedelta(seconds=second)
        return (when, event_id, learner, "class-a", item, [], 0.7, "zpd", "m1")

    rows = [
        rec(30, "ev-b", "l1", "latest"),
        rec(10, "ev-a", "l1", "older"),
        # the same time: the larger event id is the later, as the store orders them
        rec(20, "ev-d", "l2", "tie-later"),
        rec(20, "ev-c", "l2", "tie-earlier"),
        rec(5, "ev-e", "l3", "only"),
    ]

    async def run() -> None:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            await sink.write(StoreBatch().add_rows(RECOMMENDATIONS, rows))

    asyncio.run(run())
    with connect(url, schema=schema) as conn:
        current = conn.execute(
            "SELECT learner_id, item_id FROM current_recommendations ORDER BY learner_id"
        ).fetchall()
    assert current == [("l1", "latest"), ("l2", "tie-later"), ("l3", "only")]


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[services.ServiceHandle, Path]]:
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    handle = services.start_postgres(tmp_path / "data", tmp_path, durable=False)
    yield handle, tmp_path
    handle.stop()


def test_writes_wait_while_the_database_is_down_and_lose_nothing(
    own_postgres: tuple[services.ServiceHandle, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, base = own_postgres
    migrate(server.url, schema="outage")
    settings = StoreSettings(
        db_schema="outage",
        retry_initial=timedelta(milliseconds=100),
        retry_max=timedelta(milliseconds=500),
        connect_timeout=timedelta(seconds=2),
    )
    caplog.set_level(logging.WARNING, logger="streams.store.sink")
    restarted: list[services.ServiceHandle] = []

    async def run() -> tuple[int, int, int]:
        async with StoreSink(server.url, settings) as sink:
            before = await sink.write_events(make_events(100))
            server.stop()
            pending = asyncio.create_task(sink.write_events(make_events(300, start=50)))
            # Let the sink fail and back off a few times before the database returns.
            while sum("keeping the batch" in r.getMessage() for r in caplog.records) < 3:
                assert not pending.done(), "the write returned while the database was down"
                await asyncio.sleep(0.1)
            # Started from this (the main) thread on purpose, blocking the loop meanwhile: an
            # attached service dies with the thread that started it.
            restarted.append(
                services.start_postgres(base / "data", base, port=server.port, durable=False)
            )
            after = await pending
            return before.inserted["events"], after.inserted["events"], after.attempts

    try:
        first, second, attempts = asyncio.run(run())
        assert (first, second) == (100, 250)
        assert attempts > 3
        assert count(server.url, "outage", "SELECT count(*) FROM events") == 350
        assert count(server.url, "outage", "SELECT count(DISTINCT event_id) FROM events") == 350
    finally:
        for handle in restarted:
            handle.stop()


def full_batch(events: list[LearningEvent]) -> StoreBatch:
    """Everything the pipeline writes for these events, through the batch's builders."""
    batch = StoreBatch().add_events(events)
    for n, event in enumerate(events):
        batch.add_features(event, [0.5, -1.25, float(n)], "features-v1")
        batch.add_prediction(
            event,
            state="gaming",
            confidence=0.75,
            state_probs=[0.05, 0.05, 0.05, 0.05, 0.75, 0.05],
            p_correct=0.625,
            model_version="tutorstream-learner@3",
            mastery={"fractions": 0.5, "ratios": 0.25},
        )
        batch.add_intervention(
            event,
            intervention_id=f"iv-{event.event_id}",
            state="gaming",
            confidence=0.75,
            status="pending_review",
            prompt_id="gaming.1",
            prompt="What could you try before asking for the next hint?",
            reason="gaming above its review threshold",
            model_version="tutorstream-learner@3",
            created_at=event.timestamp + timedelta(milliseconds=40),
        )
        batch.add_recommendation(
            event,
            item_id=f"item-{n + 100}",
            skill_ids=["fractions"],
            p_success=0.7,
            reason="closest to the 70% target",
            model_version="tutorstream-learner@3",
        )
    return batch


def test_every_table_gets_each_row_once_however_often_a_batch_is_written(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    events = make_events(30)

    async def run() -> list[dict[str, int]]:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            first = await sink.write(full_batch(events))
            second = await sink.write(full_batch(events))
            # A retry of a part of the batch, as after a worker restart.
            third = await sink.write(full_batch(events[10:]))
            return [dict(first.inserted), dict(second.inserted), dict(third.inserted)]

    first, second, third = asyncio.run(run())
    assert first == {
        "events": 30,
        "features": 30,
        "predictions": 30,
        "skill_mastery": 60,
        "interventions": 30,
        "recommendations": 30,
    }
    assert set(second.values()) == {0}
    assert set(third.values()) == {0}
    with connect(url, schema=schema) as conn:
        for table, expected in first.items():
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row == (expected,), table
        prediction = conn.execute(
            "SELECT state, confidence, state_probs, p_correct, skill_ids, model_version "
            "FROM predictions WHERE event_id = 'ev-3'"
        ).fetchone()
        features = conn.execute("SELECT vector FROM features WHERE event_id = 'ev-3'").fetchone()
        intervention = conn.execute(
            "SELECT status, prompt_id, created_at - time, acted_at FROM interventions "
            "WHERE intervention_id = 'iv-ev-3'"
        ).fetchone()
        mastery = conn.execute(
            "SELECT skill_id, mastery FROM skill_mastery WHERE event_id = 'ev-3' ORDER BY 1"
        ).fetchall()
        current = conn.execute(
            "SELECT count(*), count(DISTINCT learner_id) FROM current_recommendations"
        ).fetchone()
    assert prediction is not None
    state, confidence, probs, p_correct, skills, model = prediction
    assert (state, confidence, p_correct, model) == ("gaming", 0.75, 0.625, "tutorstream-learner@3")
    assert probs == pytest.approx([0.05, 0.05, 0.05, 0.05, 0.75, 0.05])  # stored as real
    # ev-3 has no skills (every third event); see make_events.
    assert skills == []
    assert features == ([0.5, -1.25, 3.0],)
    assert intervention == ("pending_review", "gaming.1", timedelta(milliseconds=40), None)
    assert mastery == [("fractions", 0.5), ("ratios", 0.25)]
    # One current recommendation per learner of a class (7 learners over two classes).
    assert current is not None and current[0] >= current[1] == 7


def test_a_batch_partly_stored_already_gets_its_new_rows_and_only_their_interventions(
    store: Store,
) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    events = make_events(40)

    async def run() -> list[tuple[dict[str, int], set[str]]]:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            outcomes = []
            # stored, then half of it again with new ones (as after a restart), then new ones
            for part in (events[:20], events[10:30], events[30:]):
                written = await sink.write(full_batch(part))
                outcomes.append((dict(written.inserted), set(written.new_interventions)))
            return outcomes

    (first, fresh1), (second, fresh2), (third, fresh3) = asyncio.run(run())
    per_event = {"events": 1, "features": 1, "predictions": 1, "skill_mastery": 2}
    assert first == {**{t: 20 * n for t, n in per_event.items()}, "interventions": 20,
                     "recommendations": 20}  # fmt: skip
    assert second == {**{t: 10 * n for t, n in per_event.items()}, "interventions": 10,
                      "recommendations": 10}  # fmt: skip
    assert third == {t: v // 2 for t, v in first.items()}
    assert fresh1 == {f"iv-ev-{i}" for i in range(20)}
    assert fresh2 == {f"iv-ev-{i}" for i in range(20, 30)}
    assert fresh3 == {f"iv-ev-{i}" for i in range(30, 40)}
    for table in ("events", "features", "predictions", "interventions", "recommendations"):
        assert count(url, schema, f"SELECT count(*) FROM {table}") == 40, table
    assert count(url, schema, "SELECT count(*) FROM skill_mastery") == 80


def test_rows_still_being_computed_join_the_same_transaction(pg_store: Store) -> None:
    """On a server with COPY the first rows go in while the rest is computed."""
    url, _, schema = pg_store
    migrate(url, schema=schema)
    events = make_events(30)

    async def run() -> tuple[dict[str, int], int, int]:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            loop = asyncio.get_running_loop()
            decided: asyncio.Future[StoreBatch] = loop.create_future()
            writing = asyncio.ensure_future(sink.write(StoreBatch().add_events(events), decided))
            # the events are being written while the rest is still being computed, and
            # nothing is visible before the rest is in and the transaction commits
            polls = 0
            while count(url, schema, "SELECT count(*) FROM pg_stat_activity WHERE "
                        "state = 'idle in transaction'") == 0:  # fmt: skip
                polls += 1
                await asyncio.sleep(0.01)
            visible_before = count(url, schema, "SELECT count(*) FROM events")
            rest = full_batch(events)
            del rest.rows[next(t for t in rest.rows if t.name == "events")]
            decided.set_result(rest)
            written = await writing
            return dict(written.offered), visible_before, polls

    offered, visible_before, _ = asyncio.run(run())
    assert visible_before == 0
    assert offered == {"events": 30, "features": 30, "predictions": 30, "skill_mastery": 60,
                       "interventions": 30, "recommendations": 30}  # fmt: skip
    for table in ("events", "features", "predictions", "interventions", "recommendations"):
        assert count(url, schema, f"SELECT count(*) FROM {table}") == 30, table


def test_rows_that_fail_to_be_computed_leave_nothing_written(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    events = make_events(25)

    async def decide() -> StoreBatch:
        await asyncio.sleep(0.05)  # the events are on their way meanwhile
        raise RuntimeError("the model failed")

    async def run() -> int:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            with pytest.raises(RuntimeError, match="the model failed"):
                await sink.write(StoreBatch().add_events(events), asyncio.ensure_future(decide()))
            # the sink stays usable
            return (await sink.write_events(events[:5])).inserted["events"]

    assert asyncio.run(run()) == 5
    assert count(url, schema, "SELECT count(*) FROM events") == 5


def test_copy_and_insert_paths_store_identical_float_arrays(pg_store: Store) -> None:
    # The COPY path encodes float4[] with its own binary dumper (streams.store.binary); the
    # INSERT path goes through JSON. Both must store exactly the float32 of what was given.
    url, _, schema = pg_store
    migrate(url, schema=schema)
    events = make_events(40)
    rng = np.random.default_rng(7)
    vectors = [rng.normal(0, 1e3, size=int(rng.integers(0, 50))).tolist() for _ in events]
    vectors[0] = []
    vectors[1] = [0.0, -0.0, 1e-30, 3.0e38, -3.0e38, 0.1]

    async def run() -> None:
        for method, part in (
            (WriteMethod.COPY, slice(0, None, 2)),
            (WriteMethod.INSERT, slice(1, None, 2)),
        ):
            settings = StoreSettings(db_schema=schema, write_method=method)
            batch = StoreBatch()
            for event, vector in list(zip(events, vectors, strict=True))[part]:
                batch.add_features(event, vector, "random")
            async with StoreSink(url, settings) as sink:
                await sink.write(batch)

    asyncio.run(run())
    with connect(url, schema=schema) as conn:
        stored = dict(conn.execute("SELECT event_id, vector FROM features").fetchall())
    assert len(stored) == len(events)
    for event, vector in zip(events, vectors, strict=True):
        expected = np.asarray(vector, dtype=np.float32)
        got = np.asarray(stored[event.event_id], dtype=np.float32)
        assert got.shape == expected.shape, event.event_id
        assert np.array_equal(got, expected), event.event_id

    # and the COPY path also accepts a numpy vector as it is
    async def numpy_vector() -> None:
        event = make_events(1, start=99)[0]
        batch = StoreBatch().add_features(event, np.arange(5, dtype=np.float32), "numpy")
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            await sink.write(batch)

    asyncio.run(numpy_vector())
    with connect(url, schema=schema) as conn:
        row = conn.execute("SELECT vector FROM features WHERE feature_set = 'numpy'").fetchone()
    assert row == ([0.0, 1.0, 2.0, 3.0, 4.0],)

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from schemas.events import EventType, LearningEvent, ResourceRelation, SourceFormat
from streams.store import StoreBatch, StoreSettings, StoreSink, StoreUnavailable, is_transient
from streams.store.connection import check_schema, is_wasm_server
from streams.store.tables import EVENTS, event_row, utc
from tutorstream.cli import app
from tutorstream.services import free_port

pytestmark = pytest.mark.unit

text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
events = st.builds(
    LearningEvent,
    event_id=text,
    learner_id=text,
    class_id=st.none() | text,
    item_id=st.none() | text,
    skill_ids=st.lists(text, max_size=4).map(tuple),
    event_type=st.sampled_from(EventType),
    timestamp=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))]
        ),
    ),
    correct=st.none() | st.booleans(),
    duration_s=st.none() | st.floats(min_value=0, max_value=1e6),
    resource_relation=st.none() | st.sampled_from(ResourceRelation),
    source=st.sampled_from(SourceFormat),
)


@given(events)
def test_an_event_becomes_one_row_in_utc_with_plain_values(event: LearningEvent) -> None:
    row = dict(zip(EVENTS.column_names, event_row(event), strict=True))
    assert row["time"] == event.timestamp
    assert row["time"].utcoffset() == timedelta(0)
    assert row["event_id"] == event.event_id
    assert row["skill_ids"] == list(event.skill_ids)
    assert row["event_type"] == event.event_type.value
    assert row["source"] == event.source.value
    assert row["resource_relation"] == (
        None if event.resource_relation is None else event.resource_relation.value
    )
    assert all(not isinstance(v, EventType | SourceFormat | ResourceRelation) for v in row.values())


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        utc(datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (psycopg.OperationalError("connection refused"), True),
        (psycopg.errors.AdminShutdown(), True),
        (psycopg.errors.SerializationFailure(), True),
        (psycopg.errors.DiskFull(), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (psycopg.errors.ProgramLimitExceeded(), False),
        (psycopg.errors.NotNullViolation(), False),
        (psycopg.errors.UndefinedTable(), False),
        (psycopg.errors.InvalidTextRepresentation(), False),
    ],
)
def test_only_failures_of_the_database_are_retried(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize("name", ["public", "tutoring", "store_2", "_x"])
def test_plain_schema_names_pass(name: str) -> None:
    assert check_schema(name) == name


@pytest.mark.parametrize(
    "name", ["", "Public", "a-b", 'x"; drop', "pg_catalog", "9lives", "x" * 64]
)
def test_other_schema_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="schema"):
        check_schema(name)


def test_the_wasm_build_is_told_from_its_version() -> None:
    assert is_wasm_server(
        "PostgreSQL 17.5 on aarch64-unknown-linux-gnu, compiled by emcc (Emscripten gcc/clang-like "
        "replacement + linker emulating GNU ld) 3.1.74, 32-bit"
    )
    assert not is_wasm_server("PostgreSQL 18.6 on x86_64-pc-linux-gnu, compiled by gcc 14.2.1")


def test_a_write_gives_up_after_its_deadline_and_says_why() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    settings = StoreSettings(
        retry_initial=timedelta(milliseconds=20),
        retry_max=timedelta(milliseconds=50),
        retry_deadline=timedelta(milliseconds=300),
        connect_timeout=timedelta(seconds=1),
    )
    event = LearningEvent(
        event_id="e1",
        learner_id="l1",
        event_type=EventType.HINT_REQUEST,
        timestamp=datetime(2025, 1, 1, tzinfo=UTC),
        source=SourceFormat.NATIVE,
    )

    async def run() -> None:
        async with StoreSink(url, settings) as sink:
            await sink.write_events([event])

    with pytest.raises(StoreUnavailable, match="gave up on a batch of 1 rows"):
        asyncio.run(run())


def test_an_empty_batch_touches_nothing() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"

    async def run() -> int:
        async with StoreSink(url) as sink:
            return (await sink.write_events([])).attempts

    assert asyncio.run(run()) == 0


def test_db_status_names_an_unreachable_database() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    result = CliRunner().invoke(app, ["db", "status", "--url", url])
    assert result.exit_code == 1
    assert "cannot reach the database" in result.output


@given(events, st.lists(st.floats(-5, 5), min_size=1, max_size=8))
def test_every_builder_fills_its_table_in_column_order(
    event: LearningEvent, vector: list[float]
) -> None:
    batch = (
        StoreBatch()
        .add_events([event])
        .add_features(event, vector, "features-v1")
        .add_prediction(
            event,
            state="anchoring",
            confidence=0.7,
            state_probs=[0.3, 0.7],
            p_correct=None,
            model_version="m@1",
            mastery={"s1": 0.4, "s2": 0.9},
        )
        .add_intervention(
            event,
            intervention_id="iv",
            state="anchoring",
            confidence=0.7,
            status="sent",
            prompt="What else could explain it?",
        )
        .add_recommendation(event, item_id="next", skill_ids=["s1"], p_success=0.7)
    )
    assert {t.name: len(rows) for t, rows in batch.rows.items()} == {
        "events": 1,
        "features": 1,
        "predictions": 1,
        "skill_mastery": 2,
        "interventions": 1,
        "recommendations": 1,
    }
    assert len(batch) == 7
    for table, rows in batch.rows.items():
        for row in rows:
            assert len(row) == len(table.columns), table.name
            named = dict(zip(table.column_names, row, strict=True))
            # Every derived row carries the event's instant and ids: the key of idempotence.
            assert named["time"] == event.timestamp
            assert named["time"].utcoffset() == timedelta(0)
            assert named["event_id"] == event.event_id
            assert named["learner_id"] == event.learner_id


@given(st.lists(st.text(max_size=12).filter(lambda s: "\x00" not in s), max_size=5))
def test_text_arrays_encode_as_psycopg_encodes_them(values: list[str]) -> None:
    from psycopg.adapt import PyFormat, Transformer

    from streams.store.binary import TextArrayBinaryDumper

    reference = Transformer().get_dumper(values or ["x"], PyFormat.BINARY)
    fast = TextArrayBinaryDumper(list)
    assert fast.dump(values) == reference.dump(values)
    assert fast.dump(values) == fast.dump(tuple(values))  # the second time from its cache


def test_a_text_array_of_anything_but_strings_is_refused() -> None:
    from streams.store.binary import TextArrayBinaryDumper

    with pytest.raises(TypeError, match="takes strings"):
        TextArrayBinaryDumper(list).dump(["skill", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="NUL"):
        TextArrayBinaryDumper(list).dump(["a\x00b"])


@given(events)
def test_float_columns_keep_float32_arrays_without_copying(event: LearningEvent) -> None:
    import numpy as np

    from streams.store.tables import feature_row

    vector = np.arange(5, dtype=np.float32)
    assert feature_row(event, vector, "v")[5] is vector
    # anything else becomes a float32 array, checked number by number
    assert feature_row(event, [1, 2.5], "v")[5].tolist() == [1.0, 2.5]
    with pytest.raises(ValueError):
        feature_row(event, ["x"], "v")  # type: ignore[list-item]  # the wrong type on purpose


@given(st.integers(0, 6), st.integers(0, 50))
def test_packed_rows_encode_as_the_row_by_row_dumper_does(rows: int, width: int) -> None:
    import numpy as np

    from streams.store.binary import Float4ArrayBinaryDumper, pack_float4_rows

    block = np.random.default_rng(rows * 100 + width).normal(0, 1e3, (rows, width))
    packed = pack_float4_rows(block)
    dumper = Float4ArrayBinaryDumper(list)
    assert len(packed) == rows
    for value, row in zip(packed, block.astype(np.float32), strict=True):
        assert dumper.dump(value) == dumper.dump(row) == value
        # and the numbers come back for servers that load JSON instead of COPY
        assert np.array_equal(value.values(), row)

"""Every SQL query of the boards, run read-only after a class flowed through the pipeline.

A simulated class (``tutorstream.cohort.generate_cohort``) goes through the stream's own parts
as the worker drives them, without Kafka: raw native records are normalised and pseudonymised by
``EventProcessor``, events of a learner whose state lives on another partition are forwarded and
come back in a later batch (the worker's rekey topic), the shipped ONNX model scores them, the
intervention and next-item policies decide, ``StoreSink`` writes each batch (COPY on PostgreSQL,
INSERT on the TimescaleDB WASM build). Tutors then act on part of the interventions through
the API's store call, and the aggregates are refreshed as the leader worker refreshes them.

Each query is expanded the way Grafana expands it (template variables, then the PostgreSQL
datasource's macros; ``time_bucket`` for ``$__timeGroup`` on TimescaleDB), run as a login
member of ``tutorstream_reader`` (the role Grafana's datasource uses), and must return the
columns its panel type draws from, with rows in them. The same reader cannot change a row.
"""

from __future__ import annotations

import asyncio
import numbers
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql

from api.models import STATUS_OF_ACTION
from api.store import Store
from common.partitioning import partition_for
from inference.runtime import LearnerModel
from schemas.topics import LMS_EVENTS
from streams import outbound
from streams.policy import InterventionPolicy, PolicySettings
from streams.processor import WINDOW_FALLBACK, EventProcessor, InboundRecord, StateView
from streams.store import StoreSettings, StoreSink, connect, migrate
from streams.store.connection import forget_previous_sessions, search_path
from streams.store.maintenance import maintain
from tutorstream.cohort import generate_cohort
from tutorstream.grafana.macros import QueryContext, expand
from tutorstream.grafana.queries import BoardQuery, board_queries

pytestmark = pytest.mark.integration

KEY = b"board-test-pseudonym-key-0123456789abcdef"
PARTITIONS = LMS_EVENTS.partitions
MAX_BATCH = 256
ACTIONS = ("approve", "dismiss", "escalate", None)  # None: left for a tutor to review


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


@dataclass(frozen=True, slots=True)
class Flowed:
    """What the pipeline stored for the simulated class."""

    events: int
    interventions: int
    first: datetime
    last: datetime
    raw_learners: frozenset[str]


def flow_cohort(url: str, schema: str, *, learners: int, events: int, seed: int) -> Flowed:
    """Send a simulated class's raw records through the pipeline into the store at ``url``."""
    start = datetime.now(UTC) - timedelta(days=2)
    natives = list(generate_cohort(learners, events, seed, start=start))
    for native in natives:
        # class ids as LMSs send them: IRIs, here with a query and a quote the boards' SQL
        # variables must carry intact
        if native.get("class_id") is not None:
            native["class_id"] = f"https://lms.example.edu/course/{native['class_id']}?t=o'neil"
    model = LearnerModel.load()
    processor = EventProcessor(
        pseudonym_key=KEY,
        owns=lambda learner, record: partition_for(learner, PARTITIONS) == record.partition,
        policy=InterventionPolicy(PolicySettings()),  # every prompt waits for a tutor
    )
    state = StateView({}, {}, {}, model.window or WINDOW_FALLBACK)
    inbound = [
        InboundRecord(
            value=orjson.dumps(native),
            key=str(native["learner_id"]).encode(),
            topic="lms.events.v1",
            partition=partition_for(str(native["learner_id"]), PARTITIONS),
            offset=offset,
            timestamp=datetime.fromisoformat(str(native["timestamp"])).timestamp(),
        )
        for offset, native in enumerate(natives)
    ]
    stored = 0

    async def run() -> None:
        nonlocal stored
        pending = list(inbound)
        rekeyed = 0
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            while pending:
                records, pending = pending[:MAX_BATCH], pending[MAX_BATCH:]
                result = processor.ingest(records, state)
                if result.scored:
                    prediction = model.predict(*processor.model_inputs(result))
                    processor.decide(result, state, prediction, model.score_candidates)
                written = await sink.write(outbound.store_batch(result, model.spec))
                stored += len(written.new_interventions)
                state.write_back(result)
                assert not result.dead_letters, result.dead_letters[0].error
                for learner, value, record in result.forwards:
                    pending.append(
                        InboundRecord(
                            value=value,
                            key=learner.encode(),
                            topic="rekeyed",
                            partition=partition_for(learner, PARTITIONS),
                            offset=rekeyed,
                            timestamp=record.timestamp,
                            normalised=True,
                        )
                    )
                    rekeyed += 1

    asyncio.run(run())
    times = [datetime.fromisoformat(str(n["timestamp"])) for n in natives]
    return Flowed(
        len(natives),
        stored,
        min(times),
        max(times),
        frozenset(str(n["learner_id"]) for n in natives),
    )


def act_as_tutors(url: str, schema: str) -> dict[str, int]:
    """Approve, dismiss or escalate pending interventions in turn, as the API's action does."""

    async def run() -> dict[str, int]:
        done: dict[str, int] = dict.fromkeys(STATUS_OF_ACTION.values(), 0)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(search_path(schema))
            cursor = await conn.execute(
                "SELECT class_id, intervention_id FROM interventions "
                "WHERE status = 'pending_review' ORDER BY time, intervention_id"
            )
            for n, (class_id, ident) in enumerate(await cursor.fetchall()):
                action = ACTIONS[n % len(ACTIONS)]
                if action is None:
                    continue
                async with conn.transaction():
                    updated, _ = await Store.mark_acted(
                        conn, class_id, ident, STATUS_OF_ACTION[action], "tutor-1", action, None
                    )
                assert updated is not None
                done[STATUS_OF_ACTION[action]] += 1
        return done

    return asyncio.run(run())


def pick_variables_any(url: str, schema: str) -> dict[str, str]:
    """A class with interventions, and its learner with the most of them."""
    with connect(url, schema=schema, connect_timeout=30) as conn:
        row = conn.execute(
            "SELECT class_id, learner_id FROM interventions GROUP BY 1, 2 "
            "ORDER BY count(*) DESC, 1, 2 LIMIT 1"
        ).fetchone()
    assert row is not None
    return {"class": row[0], "learner": row[1], "window": "10"}


def pick_variables(url: str, schema: str) -> dict[str, str]:
    """A class, and a learner of it with interventions a tutor acted on and several skills."""
    with connect(url, schema=schema, connect_timeout=30) as conn:
        row = conn.execute(
            "SELECT i.class_id, i.learner_id FROM interventions i "
            "WHERE i.acted_at IS NOT NULL AND (SELECT count(DISTINCT m.skill_id) "
            "FROM skill_mastery m WHERE m.learner_id = i.learner_id) > 1 "
            "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1"
        ).fetchone()
    assert row is not None, "no learner with acted-on interventions and several skills"
    return {"class": row[0], "learner": row[1], "window": "10"}


@contextmanager
def reader(url: str, schema: str, *, wasm: bool) -> Iterator[psycopg.Connection]:
    """A connection of a new login member of ``tutorstream_reader``, dropped afterwards.

    Native PostgreSQL logs in as the member. The WASM server keeps one session whatever user a
    client names, so there the session takes the member's identity with ``SET ROLE``, which
    checks privileges the same way.
    """
    name = f"reader_{uuid.uuid4().hex[:10]}"
    role = sql.Identifier(name)
    with psycopg.connect(url, autocommit=True, connect_timeout=30) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'reader' IN ROLE tutorstream_reader").format(
                role
            )
        )
    try:
        if wasm:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=30)
            forget_previous_sessions(conn)
            conn.execute(sql.SQL("SET ROLE {}").format(role))
        else:
            conn = psycopg.connect(
                url, user=name, password="reader", autocommit=True, connect_timeout=30
            )
        with conn:
            assert conn.execute("SELECT current_user").fetchone() == (name,)
            conn.execute(search_path(schema))
            yield conn
            if wasm:
                conn.execute("RESET ROLE")
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=30) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


def refused_writes(conn: psycopg.Connection, schema: str) -> list[str]:
    """Try to change every table of ``schema``; return the statements that were not refused."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
        ).fetchall()
    ]
    assert {"events", "interventions", "predictions"} <= set(tables)
    statements: list[sql.Composed | sql.SQL] = [
        sql.SQL("DELETE FROM {}").format(sql.Identifier(t)) for t in tables
    ]
    statements += [
        sql.SQL("UPDATE interventions SET status = 'sent'"),
        sql.SQL("INSERT INTO interventions SELECT * FROM interventions LIMIT 1"),
        sql.SQL("INSERT INTO store_policies (policy, value) VALUES ('x', interval '1 day')"),
        sql.SQL("CREATE TABLE {}.reader_table (a int)").format(sql.Identifier(schema)),
    ]
    allowed = []
    for statement in statements:
        try:
            with conn.transaction():
                conn.execute(statement)
            allowed.append(statement.as_string(conn))
        except psycopg.errors.InsufficientPrivilege:
            pass
    return allowed


def run_all(url: str, schema: str, *, timescaledb: bool) -> None:
    migrate(url, schema=schema)
    flowed = flow_cohort(url, schema, learners=30, events=2500, seed=11)
    assert flowed.interventions > 20, flowed
    acted = act_as_tutors(url, schema)
    assert min(acted.values()) >= 5, acted
    maintain(url, schema=schema)  # the leader worker's periodic refresh of the aggregates
    variables = pick_variables(url, schema)
    pad = timedelta(minutes=1)
    time_from, time_to = flowed.first - pad, flowed.last + pad
    queries = list(board_queries())
    assert len(queries) >= 15
    failures: list[str] = []
    with reader(url, schema, wasm=timescaledb) as conn:
        for query in queries:
            interval = max(query.min_interval or timedelta(0), timedelta(minutes=1))
            context = QueryContext(time_from, time_to, interval, variables, timescaledb)
            text = expand(query.sql, context)
            assert "$" not in text.replace("$$", ""), text
            try:
                cursor = conn.execute(text.encode())
                columns = [c.name for c in cursor.description or []]
                rows = cursor.fetchall()
            except psycopg.Error as err:  # every failing query is reported at once
                failures.append(f"{query.board} / {query.title}: {err}")
                continue
            failures += [
                f"{query.board} / {query.title}: {p}" for p in problems(query, columns, rows)
            ]
            shown = str(rows)
            failures += [
                f"{query.board} / {query.title}: shows raw learner id {raw}"
                for raw in flowed.raw_learners
                if f"'{raw}'" in shown
            ]
        assert not failures, "\n".join(failures)
        assert refused_writes(conn, schema) == []


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
    migrate(postgres_url, schema=schema)
    flowed = flow_cohort(postgres_url, schema, learners=30, events=1500, seed=12)
    assert flowed.interventions > 0
    variables = pick_variables_any(postgres_url, schema)
    day = timedelta(days=1)
    before = QueryContext(flowed.first - 2 * day, flowed.first - day, variables=variables)
    attention = next(q for q in board_queries() if q.title == "Learners needing attention now")
    with connect(postgres_url, schema=schema, connect_timeout=30) as conn:
        inside = QueryContext(flowed.first, flowed.last, variables=variables)
        assert conn.execute(expand(attention.sql, inside).encode()).fetchall() != []
        assert conn.execute(expand(attention.sql, before).encode()).fetchall() == []

"""The store's sink: batched, idempotent, durable writes that wait out a database outage.

A batch goes into the store in one transaction. Its rows are copied (binary ``COPY``) straight
into their tables; a table whose rows include one already stored (each table's unique key is
record id and event time) is undone to a savepoint and written through a per-connection
temporary staging table with ``ON CONFLICT DO NOTHING``, until a batch is new to it again. On
servers without COPY, such as the TimescaleDB WASM build, every table goes through its staging
table, loaded with one ``INSERT`` from a JSON array. :meth:`StoreSink.write` returns only after
the commit, so a stream that acknowledges its messages afterwards delivers at least once, and
the unique keys turn that into exactly one row per record.

While the database is unreachable the sink keeps the batch, reconnects with exponential backoff
and jitter, and writes it when the database is back (or raises :class:`StoreUnavailable` after
the optional deadline). A batch the database refuses for its content raises
:class:`RejectedBatch` at once: retrying could not help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from schemas.events import LearningEvent
from streams.store.binary import PackedFloat4Array, register_copy_dumpers
from streams.store.connection import check_schema, is_wasm_server, search_path
from streams.store.exceptions import RejectedBatch, StoreError, StoreUnavailable
from streams.store.migrations import load_migrations
from streams.store.settings import StoreSettings, WriteMethod
from streams.store.tables import (
    EVENTS,
    FEATURES,
    INTERVENTIONS,
    PREDICTIONS,
    RECOMMENDATIONS,
    SKILL_MASTERY,
    TABLES,
    Floats,
    Row,
    Table,
    event_row,
    feature_row,
    intervention_row,
    prediction_row,
    recommendation_row,
    skill_mastery_rows,
)

log = logging.getLogger(__name__)


def is_transient(err: BaseException) -> bool:
    """Return whether ``err`` says the database, or the way to it, failed for now.

    Lost connections, shutdowns and restarts, recovery, serialisation failures, lock timeouts
    and a full disk pass with time; a row over a size limit (SQLSTATE class 54, also an
    ``OperationalError``) does not, and neither does anything else wrong with the batch.
    """
    if isinstance(err, psycopg.errors.ProgramLimitExceeded):
        return False
    return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)


_UPSERT_CURRENT_RECOMMENDATIONS = """
INSERT INTO current_recommendations AS cur
    (class_id, learner_id, time, event_id, item_id, skill_ids, p_success, reason, model_version)
SELECT DISTINCT ON (class_id, learner_id)
       class_id, learner_id, time, event_id, item_id, skill_ids, p_success, reason, model_version
FROM pg_temp.stage_recommendations
WHERE class_id IS NOT NULL
ORDER BY class_id, learner_id, time DESC, event_id DESC
ON CONFLICT (class_id, learner_id) DO UPDATE
SET time = excluded.time, event_id = excluded.event_id, item_id = excluded.item_id,
    skill_ids = excluded.skill_ids, p_success = excluded.p_success, reason = excluded.reason,
    model_version = excluded.model_version, updated_at = now()
WHERE (cur.time, cur.event_id) < (excluded.time, excluded.event_id)
"""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of one durable write.

    Attributes:
        offered: rows offered per table.
        inserted: rows new to each table; the rest were already stored (a replay or a retry
            whose earlier commit went through unacknowledged).
        attempts: tries it took; above 1 the database was unavailable for a while.
        seconds: wall time from the call to the commit, waits included.
        method: how the rows were loaded.
        new_interventions: ids of the interventions this write stored for the first time.
    """

    offered: Mapping[str, int]
    inserted: Mapping[str, int]
    attempts: int
    seconds: float
    method: WriteMethod
    new_interventions: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        """Return the number of rows offered."""
        return sum(self.offered.values())


@dataclass(frozen=True, slots=True)
class DeadLetterPayload:
    """A whole record whose dead letter was truncated to fit its topic (see ``keep_payloads``).

    Attributes:
        sha256: lower-case hex SHA-256 of ``payload``, as the truncated dead letter gives it.
        payload: the record's bytes.
        key: the record's key.
        topic: the topic it came in on.
        partition: its partition there.
        offset: its offset there.
        reason: why it is a dead letter.
    """

    sha256: str
    payload: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int
    reason: str


@dataclass(slots=True)
class StoreBatch:
    """Rows of several tables, written by :meth:`StoreSink.write` in one transaction.

    Every derived row (features, prediction, mastery, intervention, recommendation) takes its
    time and ids from the learning event it was computed at. Each ``add_*`` returns the batch,
    so calls chain.
    """

    rows: dict[Table, list[Row]] = field(default_factory=dict)

    def add_rows(self, table: Table, rows: Iterable[Row]) -> StoreBatch:
        """Append ready rows for ``table`` (column order of :mod:`streams.store.tables`)."""
        self.rows.setdefault(table, []).extend(rows)
        return self

    def merge(self, other: StoreBatch) -> StoreBatch:
        """Append every row of ``other``."""
        for table, rows in other.rows.items():
            self.add_rows(table, rows)
        return self

    def add_events(self, events: Iterable[LearningEvent]) -> StoreBatch:
        """Append learning events."""
        return self.add_rows(EVENTS, (event_row(e) for e in events))

    def add_features(self, event: LearningEvent, vector: Floats, feature_set: str) -> StoreBatch:
        """Append the feature vector computed at ``event``; see :func:`feature_row`."""
        return self.add_rows(FEATURES, [feature_row(event, vector, feature_set)])

    def add_prediction(
        self,
        event: LearningEvent,
        *,
        state: str,
        confidence: float,
        state_probs: Floats,
        p_correct: float | None,
        model_version: str,
        mastery: Mapping[str, float] | None = None,
    ) -> StoreBatch:
        """Append the model's output at ``event`` and the mastery of each skill in ``mastery``.

        See :func:`prediction_row` and :func:`skill_mastery_rows`.
        """
        self.add_rows(
            PREDICTIONS,
            [
                prediction_row(
                    event,
                    state=state,
                    confidence=confidence,
                    state_probs=state_probs,
                    p_correct=p_correct,
                    model_version=model_version,
                )
            ],
        )
        if mastery:
            self.add_rows(SKILL_MASTERY, skill_mastery_rows(event, mastery, model_version))
        return self

    def add_intervention(
        self,
        event: LearningEvent,
        *,
        intervention_id: str,
        state: str,
        confidence: float,
        status: str,
        prompt: str,
        prompt_id: str | None = None,
        reason: str | None = None,
        model_version: str | None = None,
        created_at: datetime | None = None,
    ) -> StoreBatch:
        """Append an intervention raised at ``event``; see :func:`intervention_row`."""
        row = intervention_row(
            event,
            intervention_id=intervention_id,
            state=state,
            confidence=confidence,
            status=status,
            prompt=prompt,
            prompt_id=prompt_id,
            reason=reason,
            model_version=model_version,
            created_at=created_at,
        )
        return self.add_rows(INTERVENTIONS, [row])

    def add_recommendation(
        self,
        event: LearningEvent,
        *,
        item_id: str,
        skill_ids: Sequence[str] = (),
        p_success: float | None = None,
        reason: str | None = None,
        model_version: str | None = None,
    ) -> StoreBatch:
        """Append the next item recommended at ``event``; see :func:`recommendation_row`."""
        row = recommendation_row(
            event,
            item_id=item_id,
            skill_ids=skill_ids,
            p_success=p_success,
            reason=reason,
            model_version=model_version,
        )
        return self.add_rows(RECOMMENDATIONS, [row])

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows.values())


class StoreSink:
    """Writes :class:`StoreBatch` es to the store, durably and idempotently.

    One sink holds one connection and writes one batch at a time (concurrent callers queue),
    which also suits the single-connection WASM server. Use it as an async context manager, or
    call :meth:`close`.

    Args:
        url: the database URL (``TUTORSTREAM_DATABASE_URL``).
        settings: schema, write method and retry settings (``TUTORSTREAM_STORE__*``).
    """

    def __init__(self, url: str, settings: StoreSettings | None = None) -> None:
        self.url = url
        self.settings = settings or StoreSettings()
        check_schema(self.settings.db_schema)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._method: WriteMethod | None = None
        self._lock = asyncio.Lock()
        self._fresh_interventions: list[str] = []
        # tables whose last batch met rows already stored: written through the staging table
        self._conflicted: set[str] = set()
        self._latest_version = max(m.version for m in load_migrations())

    @property
    def method(self) -> WriteMethod | None:
        """Return how rows are loaded on the current connection (``None`` before connecting)."""
        return self._method

    async def __aenter__(self) -> StoreSink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection; a later write opens a new one."""
        await self._discard_connection()

    async def write_events(self, events: Sequence[LearningEvent]) -> WriteResult:
        """Write learning events; see :meth:`write`."""
        return await self.write(StoreBatch().add_events(events))

    async def write(
        self, batch: StoreBatch, more: asyncio.Future[StoreBatch] | None = None
    ) -> WriteResult:
        """Write ``batch`` in one transaction and return once it is committed.

        Rows already stored (same unique key) are skipped, so writing a batch twice stores
        each row once. While the database is unreachable this waits and retries with
        exponential backoff, keeping the batch.

        Args:
            batch: the rows.
            more: rows still being computed, written in the same transaction once they are
                done: the database takes ``batch`` meanwhile. If ``more`` fails, nothing is
                written and its exception is raised.

        Returns:
            Per-table counts of rows offered and newly inserted, attempts and time taken.

        Raises:
            RejectedBatch: the database refused the rows themselves (nothing was written).
            StoreUnavailable: the database stayed unreachable past ``retry_deadline``.
            StoreError: the schema is missing or older than this release's migrations.
        """
        started = time.monotonic()
        if more is None and not any(batch.rows.values()):
            return WriteResult({}, {}, 0, 0.0, self._method or self.settings.write_method)
        s = self.settings
        delay = s.retry_initial.total_seconds()
        attempt = 0
        async with self._lock:
            while True:
                attempt += 1
                try:
                    conn = await self._connection()
                    inserted = await self._write_once(conn, batch, more)
                except psycopg.Error as err:
                    await self._discard_connection()
                    if not is_transient(err):
                        raise
                    waited = time.monotonic() - started
                    deadline = s.retry_deadline
                    if deadline is not None and waited + delay > deadline.total_seconds():
                        raise StoreUnavailable(
                            f"database unreachable for {waited:.1f}s; gave up on a batch of "
                            f"{sum(len(part) for part in _known(batch, more))} rows: {_reason(err)}"
                        ) from err
                    log.warning(
                        "store write failed (%s: %s); keeping the batch of %d rows, "
                        "attempt %d, next try in %.2fs",
                        type(err).__name__,
                        _reason(err),
                        sum(len(part) for part in _known(batch, more)),
                        attempt,
                        delay,
                    )
                    # Jitter keeps many workers from reconnecting in lockstep after an outage.
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, s.retry_max.total_seconds())
                    continue
                except BaseException:
                    # Cancelled mid-write or failed unexpectedly: the connection's state is
                    # unknown, so never reuse it.
                    if self._conn is not None and self._conn.info.transaction_status != (
                        psycopg.pq.TransactionStatus.IDLE
                    ):
                        await self._discard_connection()
                    raise
                offered: dict[str, int] = {}
                for part in _known(batch, more):
                    for table, rows in part.rows.items():
                        if rows:
                            offered[table.name] = offered.get(table.name, 0) + len(rows)
                if attempt > 1:
                    log.info("store is back; batch written after %d attempts", attempt)
                assert self._method is not None
                return WriteResult(
                    offered,
                    inserted,
                    attempt,
                    time.monotonic() - started,
                    self._method,
                    tuple(self._fresh_interventions),
                )

    async def keep_payloads(self, payloads: Sequence[DeadLetterPayload]) -> None:
        """Commit whole records whose dead letters were truncated, once per content hash.

        Raises:
            psycopg.Error: the database could not take them (the caller retries).
        """
        if not payloads:
            return
        async with self._lock:
            conn = await self._connection()
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO dead_letter_payloads (sha256, length, payload, record_key, "
                    'topic, "partition", "offset", error_reason) '
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
                    [
                        (
                            p.sha256,
                            len(p.payload),
                            p.payload,
                            p.key,
                            p.topic,
                            p.partition,
                            p.offset,
                            p.reason,
                        )
                        for p in payloads
                    ],
                )

    async def stored_events(self, event_ids: Sequence[str]) -> set[str]:
        """Return those of ``event_ids`` whose event row is committed.

        A batch's rows commit in one transaction, so a stored event means its features,
        prediction, interventions and recommendations are stored too.

        Raises:
            psycopg.Error: the database could not answer (the caller retries).
        """
        if not event_ids:
            return set()
        async with self._lock:
            conn = await self._connection()
            cur = await conn.execute(
                "SELECT DISTINCT event_id FROM events WHERE event_id = ANY(%s)",
                (list(event_ids),),
            )
            return {row[0] for row in await cur.fetchall()}

    async def mark_published(self, intervention_ids: Sequence[str]) -> None:
        """Record that these interventions are confirmed on their topic (the outbox's ack).

        A worker killed between the store's commit and this call leaves them unmarked, and
        :meth:`claim_unpublished` hands them to the next sweep.
        """
        if not intervention_ids:
            return
        async with self._lock:
            conn = await self._connection()
            await conn.execute(
                "UPDATE interventions SET published_at = now() "
                "WHERE intervention_id = ANY(%s) AND published_at IS NULL",
                (list(intervention_ids),),
            )

    @contextlib.asynccontextmanager
    async def claim_unpublished(
        self, older_than_s: float, limit: int = 500
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Lock interventions stored at least ``older_than_s`` ago but never marked published.

        Yields their rows; when the block exits without an error they are marked published.
        Rows another worker has claimed are skipped (``FOR UPDATE SKIP LOCKED``), so two
        sweeps never publish the same intervention.
        """
        async with self._lock:
            conn = await self._connection()
            async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "SELECT time, intervention_id, event_id, learner_id, class_id, state, "
                    "confidence, status, prompt_id, prompt, reason, model_version, created_at "
                    "FROM interventions WHERE published_at IS NULL "
                    "AND created_at < now() - make_interval(secs => %s) "
                    "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED",
                    (older_than_s, limit),
                )
                rows = await cur.fetchall()
                yield rows
                if rows:
                    await cur.execute(
                        "UPDATE interventions SET published_at = now() "
                        "WHERE intervention_id = ANY(%s)",
                        ([r["intervention_id"] for r in rows],),
                    )

    async def _write_once(
        self,
        conn: psycopg.AsyncConnection[Any],
        batch: StoreBatch,
        more: asyncio.Future[StoreBatch] | None,
    ) -> dict[str, int]:
        if more is not None and self._method is not WriteMethod.COPY:
            # the WASM server serves one client at a time: no transaction is left open on it
            # while the rest is computed (awaited again below, it is there at once)
            await more
        while True:
            inserted: dict[str, int] = {}
            self._fresh_interventions = []
            try:
                async with conn.transaction():
                    await self._write_tables(conn, batch, inserted)
                    if more is not None:
                        await self._write_tables(conn, await more, inserted)
            except _Conflict as conflict:
                # Rare (a batch redelivered after a restart, a rebuild over stored history):
                # the transaction again, that table through its staging table. Each time adds
                # a table, so this ends.
                self._conflicted.add(conflict.table)
                continue
            return inserted

    async def _write_tables(
        self, conn: psycopg.AsyncConnection[Any], batch: StoreBatch, inserted: dict[str, int]
    ) -> None:
        for table in TABLES:
            rows = batch.rows.get(table)
            if rows:
                try:
                    new = await self._merge(conn, table, rows)
                    inserted[table.name] = inserted.get(table.name, 0) + new
                except psycopg.Error as err:
                    if is_transient(err):
                        raise
                    raise RejectedBatch(table.name, _reason(err)) from err
                except (TypeError, ValueError) as err:
                    # A value of the wrong type for its column, found while encoding the rows.
                    raise RejectedBatch(table.name, f"a row does not fit the table: {err}") from err

    async def _merge(
        self, conn: psycopg.AsyncConnection[Any], table: Table, rows: Sequence[Row]
    ) -> int:
        """Insert the rows of ``rows`` that ``table`` does not hold yet; return how many."""
        staged = self._method is not WriteMethod.COPY or table.name in self._conflicted
        if not staged:
            count = await self._copy_new(conn, table, rows)
        else:
            count = await self._merge_staged(conn, table, rows)
            if count == len(rows):
                self._conflicted.discard(table.name)  # all new again: back to the direct COPY
        if table is RECOMMENDATIONS:
            async with conn.cursor() as cur:
                if not staged:
                    await self._load_stage(cur, table, rows)  # the upsert reads the stage
                await cur.execute(_UPSERT_CURRENT_RECOMMENDATIONS)
        return count

    async def _copy_new(
        self, conn: psycopg.AsyncConnection[Any], table: Table, rows: Sequence[Row]
    ) -> int:
        """COPY ``rows`` straight into ``table``; return how many.

        Almost every batch is new to the store, and going through the staging table cost the
        database twice the rows: once into it, once out of it with the conflict check. A row
        already stored (a batch redelivered after a restart, a rebuild over the same history)
        fails the COPY on the unique key: the transaction is done again with the table's
        rows through the staging table, until a batch is new to it again. No savepoint per
        table: two round trips each, on every batch, for what is rare.

        Raises:
            _Conflict: a row is already stored.
        """
        try:
            async with conn.cursor() as cur:
                await _copy(cur, sql.Identifier(table.name), table, rows)
        except psycopg.errors.UniqueViolation as err:
            raise _Conflict(table.name) from err
        if table is INTERVENTIONS:
            column = table.column_names.index("intervention_id")
            self._fresh_interventions.extend(str(row[column]) for row in rows)
        return len(rows)

    async def _load_stage(
        self, cur: psycopg.AsyncCursor[Any], table: Table, rows: Sequence[Row]
    ) -> None:
        stage = sql.SQL("pg_temp.{}").format(sql.Identifier(table.stage))
        if self._method is WriteMethod.COPY:
            await _copy(cur, stage, table, rows)
            return
        names = sql.SQL(", ").join(sql.Identifier(n) for n in table.column_names)
        document = orjson.dumps(
            [dict(zip(table.column_names, r, strict=True)) for r in rows],
            default=_json_value,
            option=orjson.OPT_SERIALIZE_NUMPY,  # float4[] values are float32 arrays
        )
        await cur.execute(
            sql.SQL(
                "INSERT INTO {stage} ({names}) SELECT {names} "
                "FROM jsonb_populate_recordset(NULL::{stage}, %s::jsonb)"
            ).format(stage=stage, names=names),
            (document.decode(),),
        )

    async def _merge_staged(
        self, conn: psycopg.AsyncConnection[Any], table: Table, rows: Sequence[Row]
    ) -> int:
        """Load ``rows`` into ``table``'s staging table and insert the new ones."""
        names = sql.SQL(", ").join(sql.Identifier(n) for n in table.column_names)
        stage = sql.SQL("pg_temp.{}").format(sql.Identifier(table.stage))
        async with conn.cursor() as cur:
            await self._load_stage(cur, table, rows)
            merge = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                sql.Identifier(table.name), names, names, stage
            )
            if table is INTERVENTIONS:
                # Only interventions new to the store are published, so a replay or a retry
                # never re-sends one to tutors.
                await cur.execute(merge + sql.SQL(" RETURNING intervention_id"))
                fresh = [str(r[0]) for r in await cur.fetchall()]
                self._fresh_interventions.extend(fresh)
                count = len(fresh)
            else:
                await cur.execute(merge)
                count = max(cur.rowcount, 0)
        return count

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        s = self.settings
        conn = await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(1, round(s.connect_timeout.total_seconds())),
        )
        try:
            wasm = is_wasm_server(str(await _scalar(conn, "SELECT version()")))
            if wasm:
                # One backend serves every client of the WASM server in turn: start clean
                # (see streams.store.connection.forget_previous_sessions).
                await conn.execute("DISCARD ALL")
                conn.prepare_threshold = None
            await conn.execute(search_path(s.db_schema))
            await conn.execute("SET client_min_messages TO warning")
            await self._check_migrated(conn)
            method = s.write_method
            if method is WriteMethod.AUTO:
                method = WriteMethod.INSERT if wasm else WriteMethod.COPY
            if method is WriteMethod.COPY:
                register_copy_dumpers(conn)
            for table in TABLES:
                await conn.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) "
                        "ON COMMIT DELETE ROWS"
                    ).format(sql.Identifier(table.stage), sql.Identifier(table.name))
                )
        except BaseException:
            await conn.close()
            raise
        self._conn, self._method = conn, method
        return conn

    async def _check_migrated(self, conn: psycopg.AsyncConnection[Any]) -> None:
        schema = self.settings.db_schema
        exists = await _scalar(
            conn,
            "SELECT to_regclass(%s) IS NOT NULL",
            (sql.SQL("{}.schema_migrations").format(sql.Identifier(schema)).as_string(conn),),
        )
        applied = (
            await _scalar(conn, "SELECT max(version) FROM schema_migrations") if exists else None
        )
        if applied is None or int(applied) < self._latest_version:
            raise StoreError(
                f"schema {schema!r} is at migration {applied or 0}, this release needs "
                f"{self._latest_version}: run `tutorstream db migrate`"
            )

    async def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                await conn.close()


async def _scalar(
    conn: psycopg.AsyncConnection[Any], query: str, params: tuple[Any, ...] = ()
) -> Any:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return None if row is None else row[0]


def _json_value(value: Any) -> Any:
    """Return what orjson cannot write itself as something it can (``default=``)."""
    if isinstance(value, PackedFloat4Array):
        return value.values()
    raise TypeError(f"{type(value).__name__} has no JSON form")


class _Conflict(Exception):
    """A direct COPY met a row the table holds already (see :meth:`StoreSink._copy_new`)."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.table = table


async def _copy(
    cur: psycopg.AsyncCursor[Any], target: sql.Composable, table: Table, rows: Sequence[Row]
) -> None:
    """Binary COPY of ``rows`` (``table``'s columns) into ``target``."""
    names = sql.SQL(", ").join(sql.Identifier(n) for n in table.column_names)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target, names)
    async with cur.copy(copy_sql) as copy:
        copy.set_types(list(table.pg_types))
        for row in rows:
            await copy.write_row(row)


def _known(batch: StoreBatch, more: asyncio.Future[StoreBatch] | None) -> list[StoreBatch]:
    """``batch`` and, once it is computed, ``more``."""
    if more is None or not more.done() or more.cancelled() or more.exception() is not None:
        return [batch]
    return [batch, more.result()]


def _reason(err: BaseException) -> str:
    """Return the database's primary message: never the DETAIL, which can quote row values."""
    if isinstance(err, psycopg.Error) and err.diag.message_primary:
        return err.diag.message_primary
    return str(err).splitlines()[0] if str(err) else type(err).__name__

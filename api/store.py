"""The API's access to the store: a connection pool and the queries the endpoints run.

The tables are the store's (``schemas/sql``); the API reads what the stream workers write and
writes only what it owns: ``api_keys.last_used_at``, ``xapi_statements``, ``xapi_attachments``,
an intervention's status with the append-only ``intervention_actions`` audit.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, LiteralString

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.exceptions import Unavailable

_SCHEMA_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
VOIDED_VERB: Final = "http://adlnet.gov/expapi/verbs/voided"

Row = dict[str, Any]

# The columns of an intervention as the API and the console read it.
INTERVENTION_COLUMNS: Final = (
    "time, intervention_id, event_id, learner_id, class_id, state, confidence, status, "
    "prompt_id, prompt, reason, model_version, created_at, acted_at, acted_by"
)


@dataclass(frozen=True, slots=True)
class InterventionFilter:
    """What a page of a class's interventions is filtered by (all optional)."""

    status: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Keyset:
    """Position after the last item of a page, newest first: ``(time, id)``."""

    time: datetime
    id: str


class Store:
    """A pool of connections to the store, with its schema first on the search path.

    Args:
        url: libpq URL (``TUTORSTREAM_DATABASE_URL``).
        schema: the schema of the store's tables (``TUTORSTREAM_STORE__DB_SCHEMA``).
        min_size: connections kept open.
        max_size: most connections.
    """

    def __init__(self, url: str, schema: str = "public", min_size: int = 2, max_size: int = 10):
        if not _SCHEMA_RE.fullmatch(schema):
            raise ValueError(f"schema {schema!r} is not a plain lower-case identifier")
        self.schema = schema
        self.pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max(min_size, max_size),
            open=False,
            kwargs={"autocommit": True, "connect_timeout": 5},
            configure=self._configure,
            timeout=10.0,
            name="tutorstream-api",
        )

    async def _configure(self, conn: AsyncConnection[Any]) -> None:
        path = (
            sql.SQL("SET search_path TO public")
            if self.schema == "public"
            else sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema))
        )
        await conn.execute(path)

    async def open(self) -> None:
        """Start the pool; connections are made in the background, so a down database waits."""
        await self.pool.open(wait=False)

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """Yield a pooled autocommit connection.

        Raises:
            Unavailable: when no connection can be had in time.
        """
        try:
            async with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.errors.ConnectionTimeout) as err:
            raise Unavailable(f"the database did not answer: {type(err).__name__}") from err

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        """Yield a pooled connection inside a transaction, committed when the block ends."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        """Return whether the database runs a query and the store's tables are there."""
        try:
            async with self.connection() as conn:
                cur = await conn.execute("SELECT to_regclass('interventions') IS NOT NULL")
                row = await cur.fetchone()
        except (Unavailable, psycopg.Error):
            return False
        return bool(row and row[0])

    # ------------------------------------------------------------------ keys

    async def key(self, key_id: str) -> Row | None:
        """Return the key's row (hash, scopes, classes, revocation), or ``None``."""
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT key_id, name, secret_hash, scopes, class_ids, profile, revoked_at "
                "FROM api_keys WHERE key_id = %s",
                (key_id,),
            )
            return await cur.fetchone()

    async def touch_key(self, key_id: str) -> None:
        """Record that the key was used now."""
        async with self.connection() as conn:
            await conn.execute(
                "UPDATE api_keys SET last_used_at = now() WHERE key_id = %s", (key_id,)
            )

    # ------------------------------------------------------------------ xAPI statements

    async def statement(self, statement_id: str) -> Row | None:
        """Return ``payload``, ``stored`` and ``voided`` of a statement, or ``None``."""
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT payload, stored, voided FROM xapi_statements WHERE statement_id = %s",
                (statement_id,),
            )
            return await cur.fetchone()

    @staticmethod
    async def insert_statements(
        conn: AsyncConnection[Any], statements_json: str, stored: datetime
    ) -> set[str]:
        """Insert statements that are new; return the ids inserted (existing ones are kept).

        Args:
            conn: a connection inside the caller's transaction.
            statements_json: the statements to store as one JSON array, each with its ``id``
                (one parameter: sending rows one by one costs several times more).
            stored: the ``stored`` time of them all.

        A statement is stored voided when a voiding statement already names it (a voiding
        statement may arrive before its target); voiding statements are never voided.
        """
        cur = await conn.execute(
            "INSERT INTO xapi_statements (statement_id, stored, voided, payload) "
            "SELECT (s->>'id')::uuid, %s, "
            # The verb as a literal, so the planner matches the partial index of 0004_api.
            "  s->'verb'->>'id' IS DISTINCT FROM 'http://adlnet.gov/expapi/verbs/voided' "
            "  AND EXISTS (SELECT 1 FROM xapi_statements v"
            "    WHERE v.payload->'verb'->>'id' = 'http://adlnet.gov/expapi/verbs/voided'"
            "    AND lower(v.payload->'object'->>'id') = s->>'id'), s "
            "FROM jsonb_array_elements(%s::jsonb) AS s "
            "ON CONFLICT (statement_id) DO NOTHING RETURNING statement_id::text",
            (stored, statements_json),
        )
        return {row[0] for row in await cur.fetchall()}

    @staticmethod
    async def stored_payloads(conn: AsyncConnection[Any], ids: Sequence[str]) -> dict[str, Any]:
        """Return the stored payload of each id that exists."""
        cur = await conn.execute(
            "SELECT statement_id::text, payload FROM xapi_statements "
            "WHERE statement_id = ANY(%s::uuid[])",
            (list(ids),),
        )
        return {row[0]: row[1] for row in await cur.fetchall()}

    @staticmethod
    async def void(conn: AsyncConnection[Any], targets: Sequence[str]) -> None:
        """Mark the targets of new voiding statements voided, unless they void others."""
        await conn.execute(
            "UPDATE xapi_statements SET voided = true "
            "WHERE statement_id = ANY(%s::uuid[]) AND NOT voided "
            "AND payload->'verb'->>'id' IS DISTINCT FROM %s",
            (list(targets), VOIDED_VERB),
        )

    @staticmethod
    async def insert_attachments(
        conn: AsyncConnection[Any], attachments: Sequence[tuple[str, str, bytes]]
    ) -> None:
        """Store attachment data by hash, once per hash (``(sha2, content_type, content)``)."""
        if not attachments:
            return
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO xapi_attachments (sha2, content_type, length, content) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (sha2) DO NOTHING",
                [(sha2, kind, len(content), content) for sha2, kind, content in attachments],
            )

    async def attachments(self, hashes: Sequence[str]) -> list[Row]:
        """Return ``sha2``, ``content_type`` and ``content`` of the stored hashes, in order."""
        if not hashes:
            return []
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT sha2, content_type, content FROM xapi_attachments "
                "WHERE sha2 = ANY(%s::text[])",
                (list(hashes),),
            )
            rows = {row["sha2"]: row for row in await cur.fetchall()}
        return [rows[sha2] for sha2 in hashes if sha2 in rows]

    async def query_statements(
        self,
        conditions: Sequence[tuple[LiteralString, Sequence[Any]]],
        *,
        ascending: bool,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Row]:
        """Return stored, not voided statements matching every condition, in ``stored`` order.

        Args:
            conditions: SQL fragments over ``payload`` with their parameters.
            ascending: oldest first instead of newest first.
            after: the ``(stored, statement_id)`` the previous page ended on.
            limit: most rows.
        """
        clauses: list[LiteralString] = ["NOT voided"]
        params: list[Any] = []
        for clause, values in conditions:
            clauses.append(clause)
            params.extend(values)
        if after is not None:
            clauses.append(
                "(stored, statement_id) > (%s, %s::uuid)"
                if ascending
                else "(stored, statement_id) < (%s, %s::uuid)"
            )
            params.extend(after)
        order: LiteralString = "ASC" if ascending else "DESC"
        query: LiteralString = (
            "SELECT statement_id::text AS statement_id, stored, payload FROM xapi_statements "
            "WHERE " + " AND ".join(clauses) + f" ORDER BY stored {order}, statement_id {order} "
            "LIMIT %s"
        )
        params.append(limit)
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    # ------------------------------------------------------------------ interventions

    async def interventions(
        self, class_id: str, where: InterventionFilter, after: Keyset | None, limit: int
    ) -> list[Row]:
        """Return a class's interventions newest first, after ``after``, at most ``limit``."""
        clauses: list[LiteralString] = ["class_id = %s"]
        params: list[Any] = [class_id]
        if where.status is not None:
            clauses.append("status = %s")
            params.append(where.status)
        if where.state is not None:
            clauses.append("state = %s")
            params.append(where.state)
        if where.since is not None:
            clauses.append("time >= %s")
            params.append(where.since)
        if where.until is not None:
            clauses.append("time < %s")
            params.append(where.until)
        if after is not None:
            clauses.append("(time, intervention_id) < (%s, %s)")
            params.extend((after.time, after.id))
        params.append(limit)
        query: LiteralString = (
            f"SELECT {INTERVENTION_COLUMNS} FROM interventions WHERE "
            + " AND ".join(clauses)
            + " ORDER BY time DESC, intervention_id DESC LIMIT %s"
        )
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def intervention(self, class_id: str, intervention_id: str) -> Row | None:
        """Return one intervention of a class, or ``None``."""
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {INTERVENTION_COLUMNS} FROM interventions "
                "WHERE intervention_id = %s AND class_id = %s",
                (intervention_id, class_id),
            )
            return await cur.fetchone()

    @staticmethod
    async def mark_acted(
        conn: AsyncConnection[Any],
        class_id: str,
        intervention_id: str,
        status: str,
        actor: str,
        action: str,
        note: str | None,
    ) -> tuple[Row | None, Row | None]:
        """Set an intervention's status once and append the action to the audit.

        Runs inside the caller's transaction. Returns ``(intervention, action)`` when this call
        acted, ``(None, None)`` when there is nothing pending with that id in the class (the
        caller tells "not found" from "already acted" with :meth:`intervention`).

        Raises:
            psycopg.errors.UniqueViolation: when another transaction recorded an action first.
        """
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "UPDATE interventions SET status = %s, acted_at = now(), acted_by = %s "
                "WHERE intervention_id = %s AND class_id = %s AND acted_at IS NULL "
                f"AND status = 'pending_review' RETURNING {INTERVENTION_COLUMNS}",
                (status, actor, intervention_id, class_id),
            )
            updated = await cur.fetchone()
            if updated is None:
                return None, None
            await cur.execute(
                "INSERT INTO intervention_actions "
                "(intervention_id, intervention_time, class_id, action, actor, note) "
                "VALUES (%s, %s, %s, %s, %s, %s) "
                "RETURNING action_id, intervention_id, class_id, action, actor, note, acted_at",
                (intervention_id, updated["time"], class_id, action, actor, note),
            )
            recorded = await cur.fetchone()
        return updated, recorded

    async def actions(self, class_id: str, before: int | None, limit: int) -> list[Row]:
        """Return a class's audit of tutor actions, newest first, before action id ``before``."""
        clauses: list[LiteralString] = ["class_id = %s"]
        params: list[Any] = [class_id]
        if before is not None:
            clauses.append("action_id < %s")
            params.append(before)
        params.append(limit)
        query: LiteralString = (
            "SELECT action_id, intervention_id, class_id, action, actor, note, acted_at "
            "FROM intervention_actions WHERE "
            + " AND ".join(clauses)
            + " ORDER BY action_id DESC LIMIT %s"
        )
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def intervention_actions(self, class_id: str, intervention_id: str) -> list[Row]:
        """Return the actions recorded on one intervention (zero or one)."""
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT action_id, intervention_id, class_id, action, actor, note, acted_at "
                "FROM intervention_actions WHERE intervention_id = %s AND class_id = %s "
                "ORDER BY action_id",
                (intervention_id, class_id),
            )
            return await cur.fetchall()

    # ------------------------------------------------------------------ learners

    async def timeline(
        self,
        class_id: str,
        learner_id: str,
        limit: int,
        conn: AsyncConnection[Any] | None = None,
    ) -> dict[str, list[Row]]:
        """Return a learner's recent events, predictions, mastery and interventions in a class.

        Each list is newest first and holds at most ``limit`` rows. The four statements go in
        one round trip (a pipeline), on ``conn`` when given, else on a pooled connection.
        """
        queries: dict[str, LiteralString] = {
            "events": (
                "SELECT time, event_id, event_type, item_id, skill_ids, correct, attempt, "
                "duration_s, hint_level, hint_count, score_scaled, resource_relation, source "
                "FROM events WHERE learner_id = %s AND class_id = %s "
                "ORDER BY time DESC LIMIT %s"
            ),
            "predictions": (
                "SELECT time, event_id, item_id, state, confidence, p_correct, model_version "
                "FROM predictions WHERE learner_id = %s AND class_id = %s "
                "ORDER BY time DESC LIMIT %s"
            ),
            "mastery": (
                "SELECT time, event_id, skill_id, mastery, model_version "
                "FROM skill_mastery WHERE learner_id = %s AND class_id = %s "
                "ORDER BY time DESC LIMIT %s"
            ),
            "interventions": (
                f"SELECT {INTERVENTION_COLUMNS} FROM interventions "
                "WHERE learner_id = %s AND class_id = %s "
                "ORDER BY time DESC, intervention_id DESC LIMIT %s"
            ),
        }
        if conn is None:
            async with self.connection() as own:
                return await self._timeline(own, queries, (learner_id, class_id, limit))
        return await self._timeline(conn, queries, (learner_id, class_id, limit))

    @staticmethod
    async def _timeline(
        conn: AsyncConnection[Any],
        queries: dict[str, LiteralString],
        params: tuple[str, str, int],
    ) -> dict[str, list[Row]]:
        async with conn.pipeline():
            cursors = {name: conn.cursor(row_factory=dict_row) for name in queries}
            for name, query in queries.items():
                await cursors[name].execute(query, params)
            return {name: await cursor.fetchall() for name, cursor in cursors.items()}

    async def recommendations(self, class_id: str) -> list[Row]:
        """Return the latest recommendation of every learner of a class."""
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT learner_id, time, event_id, item_id, skill_ids, p_success, reason, "
                "model_version, updated_at FROM current_recommendations WHERE class_id = %s "
                "ORDER BY learner_id",
                (class_id,),
            )
            return await cur.fetchall()

"""Keeping aggregates fresh and old rows gone where no background job does it.

TimescaleDB runs refresh, compression and retention as background jobs. The plain-PostgreSQL
fallback has no scheduler, so the pipeline calls :func:`maintain` every
``TUTORSTREAM_STORE__MAINTENANCE_INTERVAL``; it refreshes the aggregate views and applies
retention there. On TimescaleDB it does nothing unless the job scheduler is not running (the
WASM build has none), in which case it refreshes the continuous aggregates over their policy
windows itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from streams.store.connection import Target, check_schema, session
from streams.store.migrations import AggregateStatus, StoreStatus, status
from streams.store.settings import StoreMode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AggregateRefresh:
    """One aggregate's refresh.

    Attributes:
        name: the aggregate view.
        window_start: first bucket recomputed; ``None`` when all history was.
        window_end: end of the last bucket recomputed (exclusive).
    """

    name: str
    window_start: datetime | None
    window_end: datetime


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What :func:`maintain` did.

    Attributes:
        refreshed: aggregates refreshed, with their windows.
        deleted: raw rows deleted by retention, per table (plain-PostgreSQL mode only).
    """

    refreshed: tuple[AggregateRefresh, ...]
    deleted: dict[str, int]


def refresh_aggregates(
    target: Target,
    *,
    schema: str = "public",
    now: datetime | None = None,
    full: bool = False,
) -> tuple[AggregateRefresh, ...]:
    """Recompute the aggregates' recent buckets from raw rows.

    In PostgreSQL mode this recomputes each view from the older of its watermark and its
    refresh window's start, so the first call materialises all history. In TimescaleDB mode it
    refreshes each continuous aggregate over its policy's window, or with ``full`` over all
    raw rows still within retention (after a bulk load or a backfill older than the window).

    Args:
        target: a database URL, or an open connection outside a transaction.
        schema: the store's schema.
        now: the reference time of the windows; the database's clock when ``None``.
        full: TimescaleDB mode: start at the retention horizon instead of the policy window.

    Returns:
        The aggregates refreshed and their windows.
    """
    check_schema(schema)
    with session(target, schema=schema) as conn:
        current = status(conn, schema=schema)
        reference = now or _db_now(conn)
        if current.mode is StoreMode.POSTGRESQL:
            rows = conn.execute(
                "SELECT aggregate_name, CASE WHEN isfinite(window_start) THEN window_start END, "
                "window_end FROM refresh_aggregates(%s)",
                (reference,),
            ).fetchall()
            return tuple(AggregateRefresh(name, start, end) for name, start, end in rows)
        return tuple(_refresh_caggs(conn, schema, current, reference, full))


def _refresh_caggs(
    conn: psycopg.Connection,
    schema: str,
    current: StoreStatus,
    reference: datetime,
    full: bool,
) -> list[AggregateRefresh]:
    retention = current.policies.get("retention")
    done = []
    for aggregate in current.aggregates:
        start, end = _window(aggregate, reference, retention if full else None)
        view = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(aggregate.name))
        # A procedure that refuses to run inside a transaction block, and the WASM server's
        # extended-protocol handling is simplest with no parameters: pass literals.
        conn.execute(
            sql.SQL("CALL refresh_continuous_aggregate({}, {}, {})").format(
                sql.Literal(view.as_string(conn)), sql.Literal(start), sql.Literal(end)
            )
        )
        done.append(AggregateRefresh(aggregate.name, start, end))
    return done


def _window(
    aggregate: AggregateStatus, reference: datetime, horizon: timedelta | None
) -> tuple[datetime, datetime]:
    start_offset = horizon or aggregate.start_offset or timedelta(days=3)
    end_offset = aggregate.end_offset or timedelta(0)
    return reference - start_offset, reference - end_offset


def apply_retention(
    target: Target, *, schema: str = "public", now: datetime | None = None
) -> dict[str, int]:
    """Delete raw rows older than the retention horizon (plain-PostgreSQL mode).

    TimescaleDB mode drops old chunks with its retention policy instead; there this returns
    an empty mapping.

    Returns:
        Rows deleted per table.
    """
    check_schema(schema)
    with session(target, schema=schema) as conn:
        if status(conn, schema=schema).mode is not StoreMode.POSTGRESQL:
            return {}
        rows = conn.execute(
            "SELECT table_name, deleted_rows FROM apply_retention(%s)", (now or _db_now(conn),)
        ).fetchall()
        return {str(table): int(count) for table, count in rows}


def scheduler_running(conn: psycopg.Connection) -> bool:
    """Return whether TimescaleDB's background job scheduler runs on this server."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity "
        "WHERE backend_type LIKE 'TimescaleDB%%' OR application_name LIKE 'TimescaleDB%%')"
    ).fetchone()
    return bool(row and row[0])


def maintain(
    target: Target, *, schema: str = "public", retention: bool = True
) -> MaintenanceReport:
    """Do what background jobs would: refresh aggregates and, in PostgreSQL mode, retention.

    Blocking; call it from a thread (``asyncio.to_thread``) in an event loop.

    Args:
        target: a database URL, or an open connection outside a transaction.
        schema: the store's schema.
        retention: apply the retention too (PostgreSQL mode).
    """
    check_schema(schema)
    with session(target, schema=schema) as conn:
        mode = status(conn, schema=schema).mode
        if mode is StoreMode.TIMESCALEDB and scheduler_running(conn):
            return MaintenanceReport((), {})
        refreshed = refresh_aggregates(conn, schema=schema)
        deleted = (
            apply_retention(conn, schema=schema)
            if retention and mode is StoreMode.POSTGRESQL
            else {}
        )
    if any(deleted.values()):
        log.info("retention deleted %s", deleted)
    return MaintenanceReport(refreshed, deleted)


def _db_now(conn: psycopg.Connection) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    return row[0] if row else datetime.now(UTC)

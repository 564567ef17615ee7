"""Versioned migrations of the store, its mode (TimescaleDB or plain PostgreSQL) and its status.

The SQL lives in :mod:`schemas.sql`. A version is the shared file ``NNNN_name.sql`` followed by
the file of the store's mode (``NNNN_name.timescaledb.sql`` or ``NNNN_name.postgresql.sql``),
applied in one transaction and recorded in ``schema_migrations`` with a checksum. ``migrate``
applies the versions a database lacks, refuses one whose applied SQL has changed since, and
then brings the compression and retention policies in line with the settings, so running it
again is harmless.

The mode is chosen once, at the first migration: TimescaleDB when the ``timescaledb`` extension
is installed or ``CREATE EXTENSION`` succeeds, the plain-PostgreSQL fallback otherwise. Later
runs keep the recorded mode, since tables cannot change between the two.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from streams.store.connection import Target, check_schema, session
from streams.store.exceptions import MigrationError
from streams.store.settings import StoreMode

log = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "schemas.sql"
_FILE_NAME = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<mode>timescaledb|postgresql))?\.sql$"
)

HYPERTABLES: tuple[str, ...] = (
    "events",
    "features",
    "predictions",
    "skill_mastery",
    "recommendations",
    "interventions",
)
"""The time-series tables: hypertables in TimescaleDB mode, subject to retention in both."""

AGGREGATES: tuple[str, ...] = (
    "class_states_1m",
    "class_interventions_1m",
    "class_skill_mastery_1h",
)
"""Continuous aggregates (TimescaleDB) or their materialised-view equivalents (PostgreSQL)."""

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    mode        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: the shared SQL and the SQL of each mode.

    Attributes:
        version: its number, from 1 upward without gaps.
        name: what it does, from the file name.
        shared: SQL run in both modes (may be empty).
        by_mode: SQL run after ``shared`` in one mode only.
    """

    version: int
    name: str
    shared: str
    by_mode: Mapping[StoreMode, str]

    def sql(self, mode: StoreMode) -> str:
        """Return the SQL this version runs in ``mode``."""
        return "\n".join(part for part in (self.shared, self.by_mode.get(mode, "")) if part)

    def checksum(self, mode: StoreMode) -> str:
        """Return the SHA-256 of :meth:`sql`, recorded to notice an applied migration edited."""
        return hashlib.sha256(self.sql(mode).encode()).hexdigest()


def load_migrations(package: str = MIGRATIONS_PACKAGE) -> tuple[Migration, ...]:
    """Read the migration files of ``package`` in version order.

    Raises:
        MigrationError: on a file name that does not fit the pattern, two names for one
            version, or a gap in the versions.
    """
    parts: dict[int, dict[str, Any]] = {}
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise MigrationError(
                f"{entry.name}: migration files are named NNNN_name[.timescaledb|.postgresql].sql"
            )
        version = int(match["version"])
        slot = parts.setdefault(version, {"name": match["name"], "shared": "", "by_mode": {}})
        if slot["name"] != match["name"]:
            raise MigrationError(
                f"version {version} has two names: {slot['name']!r} and {match['name']!r}"
            )
        text = entry.read_text(encoding="utf-8")
        if match["mode"] is None:
            slot["shared"] = text
        else:
            slot["by_mode"][StoreMode(match["mode"])] = text
    versions = sorted(parts)
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3... without gaps: {versions}")
    return tuple(
        Migration(v, parts[v]["name"], parts[v]["shared"], dict(parts[v]["by_mode"]))
        for v in versions
    )


@dataclass(frozen=True, slots=True)
class AggregateStatus:
    """Refresh state of one aggregate.

    Attributes:
        name: the view's name.
        start_offset: how far back each refresh recomputes.
        end_offset: how close to now each refresh stops.
        watermark: buckets before it are materialised; later ones are computed at query time.
    """

    name: str
    start_offset: timedelta | None
    end_offset: timedelta | None
    watermark: datetime | None


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What ``tutorstream db status`` reports.

    Attributes:
        mode: the mode in force, or the one ``migrate`` would choose when nothing is applied.
        migrated: whether any migration is applied in the schema.
        mode_reason: why this mode.
        db_schema: the schema inspected.
        server_version: the server's ``version()``.
        timescaledb_version: the installed extension's version, if any.
        applied: versions applied.
        pending: known versions not applied yet.
        policies: retention and compression horizons in force.
        aggregates: refresh state of each aggregate.
    """

    mode: StoreMode
    migrated: bool
    mode_reason: str
    db_schema: str
    server_version: str
    timescaledb_version: str | None
    applied: tuple[int, ...]
    pending: tuple[int, ...]
    policies: Mapping[str, timedelta] = field(default_factory=dict)
    aggregates: tuple[AggregateStatus, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping (durations in seconds, times in ISO 8601)."""
        return {
            "mode": self.mode.value,
            "migrated": self.migrated,
            "mode_reason": self.mode_reason,
            "schema": self.db_schema,
            "server_version": self.server_version,
            "timescaledb_version": self.timescaledb_version,
            "applied": list(self.applied),
            "pending": list(self.pending),
            "policies": {k: v.total_seconds() for k, v in self.policies.items()},
            "aggregates": [
                {
                    "name": a.name,
                    "start_offset_s": _seconds(a.start_offset),
                    "end_offset_s": _seconds(a.end_offset),
                    "watermark": a.watermark.isoformat() if a.watermark else None,
                }
                for a in self.aggregates
            ],
        }


@dataclass(frozen=True, slots=True)
class MigrationRun:
    """Outcome of :func:`migrate`.

    Attributes:
        applied_now: versions this run applied (empty when the schema was up to date).
        status: the store's status afterwards.
    """

    applied_now: tuple[int, ...]
    status: StoreStatus


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def migrate(
    target: Target,
    *,
    schema: str = "public",
    mode: StoreMode | None = None,
    compression_after: timedelta = timedelta(days=7),
    retention: timedelta = timedelta(days=400),
) -> MigrationRun:
    """Apply the missing migrations and the compression and retention policies.

    Idempotent: a second run applies nothing and leaves the policies as they are. Concurrent
    runs (workers starting together) queue on an advisory lock.

    Args:
        target: a database URL, or an open connection outside a transaction.
        schema: the schema to migrate (created when missing).
        mode: force a mode; ``None`` chooses as the module docstring says.
        compression_after: TimescaleDB compresses chunks older than this.
        retention: raw rows older than this are dropped; must exceed ``compression_after``
            and every aggregate's refresh window.

    Returns:
        The versions applied by this run and the status afterwards.

    Raises:
        MigrationError: on an edited applied migration, a mode that cannot be had or that
            differs from the recorded one, or horizons that do not fit.
    """
    check_schema(schema)
    if compression_after <= timedelta(0) or retention <= compression_after:
        raise MigrationError(
            f"retention ({retention}) must be longer than compression_after "
            f"({compression_after}), and both positive"
        )
    migrations = load_migrations()
    lock_key = f"tutorstream.migrate.{schema}"
    with session(target, schema=schema) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock_key,))
        try:
            # Only when missing: a deployment may hand over an existing schema to a role that
            # cannot create schemas, and CREATE SCHEMA checks that right before IF NOT EXISTS.
            if not _scalar(conn, "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)):
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            conn.execute(_CREATE_MIGRATIONS_TABLE)
            applied = _applied(conn)
            chosen, reason = _resolve_mode(conn, applied, mode)
            _check_drift(migrations, applied, chosen)
            applied_now: list[int] = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                log.info(
                    "applying migration %04d_%s (%s)", migration.version, migration.name, chosen
                )
                with conn.transaction():
                    conn.execute(migration.sql(chosen))
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, mode, checksum) "
                        "VALUES (%s, %s, %s, %s)",
                        (
                            migration.version,
                            migration.name,
                            chosen.value,
                            migration.checksum(chosen),
                        ),
                    )
                applied_now.append(migration.version)
            aggregates = _aggregates(conn, schema, chosen)
            _check_retention(aggregates, retention)
            with conn.transaction():
                _apply_policies(conn, schema, chosen, compression_after, retention)
        finally:
            if not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock_key,))
        log.info("store schema %s migrated in %s mode (%s)", schema, chosen, reason)
        return MigrationRun(tuple(applied_now), _status(conn, schema, migrations))


def status(target: Target, *, schema: str = "public") -> StoreStatus:
    """Return the mode, applied and pending versions, policies and aggregates of ``schema``.

    Reads only; on a database never migrated it reports the mode ``migrate`` would choose.
    """
    check_schema(schema)
    with session(target, schema=schema) as conn:
        return _status(conn, schema, load_migrations())


def _status(
    conn: psycopg.Connection, schema: str, migrations: tuple[Migration, ...]
) -> StoreStatus:
    server_version = _scalar(conn, "SELECT version()") or ""
    ts_version = _timescaledb_version(conn)
    applied = _applied(conn) if _has_table(conn, schema, "schema_migrations") else {}
    if applied:
        modes = {row["mode"] for row in applied.values()}
        mode = StoreMode(modes.pop()) if len(modes) == 1 else StoreMode.POSTGRESQL
        reason = _recorded_reason(conn, mode, ts_version)
        policies = _policies(conn) if _has_table(conn, schema, "store_policies") else {}
        aggregates = _aggregates(conn, schema, mode)
    else:
        mode, reason = _available_mode(conn)
        policies, aggregates = {}, ()
    known = [m.version for m in migrations]
    return StoreStatus(
        mode=mode,
        migrated=bool(applied),
        mode_reason=reason,
        db_schema=schema,
        server_version=server_version,
        timescaledb_version=ts_version,
        applied=tuple(sorted(applied)),
        pending=tuple(v for v in known if v not in applied),
        policies=policies,
        aggregates=aggregates,
    )


def _recorded_reason(conn: psycopg.Connection, mode: StoreMode, ts_version: str | None) -> str:
    if mode is StoreMode.TIMESCALEDB:
        return f"hypertables on timescaledb {ts_version}"
    available, _ = _available_mode(conn)
    if available is StoreMode.TIMESCALEDB:
        return (
            "plain tables, chosen at the first migration; timescaledb is available now but "
            "only a new schema can use it"
        )
    return "plain tables: the timescaledb extension is not available on this server"


def _scalar(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _has_table(conn: psycopg.Connection, schema: str, table: str) -> bool:
    name = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table)).as_string(conn)
    return _scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (name,)) is True


def _applied(conn: psycopg.Connection) -> dict[int, dict[str, Any]]:
    rows = conn.execute("SELECT version, name, mode, checksum FROM schema_migrations").fetchall()
    return {
        int(version): {"name": name, "mode": mode, "checksum": checksum}
        for version, name, mode, checksum in rows
    }


def _timescaledb_version(conn: psycopg.Connection) -> str | None:
    value = _scalar(conn, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    return None if value is None else str(value)


def _available_mode(conn: psycopg.Connection) -> tuple[StoreMode, str]:
    """Return the mode a first migration would pick, without changing the database."""
    installed = _timescaledb_version(conn)
    if installed is not None:
        return StoreMode.TIMESCALEDB, f"timescaledb {installed} installed"
    if _scalar(conn, "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        return StoreMode.TIMESCALEDB, "timescaledb available, not created yet"
    return StoreMode.POSTGRESQL, "timescaledb extension not available on this server"


def _create_timescaledb(conn: psycopg.Connection) -> str | None:
    """Create the extension (in ``public``); return why not when it cannot be."""
    if _timescaledb_version(conn) is not None:
        return None
    if not _scalar(conn, "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        return "timescaledb extension not available on this server"
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb SCHEMA public")
    except psycopg.Error as err:
        # Typically "must be preloaded" (shared_preload_libraries) or a missing privilege.
        return f"CREATE EXTENSION timescaledb failed: {err.diag.message_primary or err}"
    return None


def _resolve_mode(
    conn: psycopg.Connection, applied: Mapping[int, Mapping[str, Any]], requested: StoreMode | None
) -> tuple[StoreMode, str]:
    recorded = {str(row["mode"]) for row in applied.values()}
    if len(recorded) > 1:
        raise MigrationError(f"schema_migrations mixes modes {sorted(recorded)}")
    if recorded:
        mode = StoreMode(recorded.pop())
        if requested is not None and requested is not mode:
            raise MigrationError(
                f"the store was migrated in {mode} mode; it cannot switch to {requested}"
            )
        if mode is StoreMode.TIMESCALEDB:
            why_not = _create_timescaledb(conn)
            if why_not is not None:
                raise MigrationError(f"the store runs in timescaledb mode but {why_not}")
        return mode, "recorded by earlier migrations"
    if requested is StoreMode.POSTGRESQL:
        return StoreMode.POSTGRESQL, "requested"
    why_not = _create_timescaledb(conn)
    if why_not is None:
        return StoreMode.TIMESCALEDB, f"timescaledb {_timescaledb_version(conn)} installed"
    if requested is StoreMode.TIMESCALEDB:
        raise MigrationError(f"timescaledb mode requested but {why_not}")
    log.info("store falls back to plain PostgreSQL: %s", why_not)
    return StoreMode.POSTGRESQL, why_not


def _check_drift(
    migrations: tuple[Migration, ...], applied: Mapping[int, Mapping[str, Any]], mode: StoreMode
) -> None:
    known = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version} ({row['name']}), unknown to this "
                "release: it was migrated by a newer tutorstream"
            )
        if row["checksum"] != migration.checksum(mode):
            raise MigrationError(
                f"migration {version:04d}_{migration.name} changed after it was applied; "
                "add a new migration instead of editing an applied one"
            )


def _aggregates(
    conn: psycopg.Connection, schema: str, mode: StoreMode
) -> tuple[AggregateStatus, ...]:
    if mode is StoreMode.POSTGRESQL:
        if not _has_table(conn, schema, "aggregate_refresh"):
            return ()
        rows = conn.execute(
            "SELECT view_name, start_offset, end_offset, "
            "CASE WHEN isfinite(watermark) THEN watermark END "
            "FROM aggregate_refresh ORDER BY view_name"
        ).fetchall()
        return tuple(AggregateStatus(name, start, end, mark) for name, start, end, mark in rows)
    rows = conn.execute(
        """
        SELECT ca.view_name,
               (j.config ->> 'start_offset')::interval,
               (j.config ->> 'end_offset')::interval,
               h.id
        FROM timescaledb_information.continuous_aggregates ca
        LEFT JOIN timescaledb_information.jobs j
               ON j.proc_name = 'policy_refresh_continuous_aggregate'
              AND j.hypertable_schema = ca.view_schema
              AND j.hypertable_name = ca.view_name
        LEFT JOIN _timescaledb_catalog.hypertable h
               ON h.schema_name = ca.materialization_hypertable_schema
              AND h.table_name = ca.materialization_hypertable_name
        WHERE ca.view_schema = %s
        ORDER BY ca.view_name
        """,
        (schema,),
    ).fetchall()
    return tuple(
        AggregateStatus(name, start, end, _cagg_watermark(conn, mat_id))
        for name, start, end, mat_id in rows
    )


def _cagg_watermark(conn: psycopg.Connection, mat_id: int | None) -> datetime | None:
    if mat_id is None:
        return None
    try:
        with conn.transaction():
            value = _scalar(
                conn,
                "SELECT CASE WHEN isfinite(w) THEN w END FROM _timescaledb_functions.to_timestamp("
                "_timescaledb_functions.cagg_watermark(%s)) AS w",
                (mat_id,),
            )
    except psycopg.Error:
        # An internal function; its absence only costs the status line its watermark.
        return None
    return value if isinstance(value, datetime) else None


def _check_retention(aggregates: tuple[AggregateStatus, ...], retention: timedelta) -> None:
    for aggregate in aggregates:
        if aggregate.start_offset is not None and retention <= aggregate.start_offset:
            raise MigrationError(
                f"retention ({retention}) must lie beyond the refresh window of "
                f"{aggregate.name} ({aggregate.start_offset}), or dropping raw rows would "
                "delete aggregate rows"
            )


def _policies(conn: psycopg.Connection) -> dict[str, timedelta]:
    rows = conn.execute("SELECT policy, value FROM store_policies ORDER BY policy").fetchall()
    return {str(policy): value for policy, value in rows}


def _apply_policies(
    conn: psycopg.Connection,
    schema: str,
    mode: StoreMode,
    compression_after: timedelta,
    retention: timedelta,
) -> None:
    conn.execute(
        "INSERT INTO store_policies (policy, value) VALUES ('compression_after', %s), "
        "('retention', %s) ON CONFLICT (policy) DO UPDATE SET value = excluded.value, "
        "updated_at = now() WHERE store_policies.value <> excluded.value",
        (compression_after, retention),
    )
    if mode is not StoreMode.TIMESCALEDB:
        return
    for table in HYPERTABLES:
        regclass = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        name = regclass.as_string(conn)
        _ensure_job(
            conn,
            schema,
            table,
            "policy_compression",
            "compress_after",
            compression_after,
            add="SELECT add_compression_policy(%s::regclass, compress_after => %s)",
            remove="SELECT remove_compression_policy(%s::regclass, if_exists => true)",
            regclass=name,
        )
        _ensure_job(
            conn,
            schema,
            table,
            "policy_retention",
            "drop_after",
            retention,
            add="SELECT add_retention_policy(%s::regclass, drop_after => %s)",
            remove="SELECT remove_retention_policy(%s::regclass, if_exists => true)",
            regclass=name,
        )


def _ensure_job(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    proc: str,
    key: str,
    value: timedelta,
    *,
    add: str,
    remove: str,
    regclass: str,
) -> None:
    row = conn.execute(
        "SELECT (config ->> %s)::interval = %s FROM timescaledb_information.jobs "
        "WHERE proc_name = %s AND hypertable_schema = %s AND hypertable_name = %s",
        (key, value, proc, schema, table),
    ).fetchone()
    if row is not None and row[0]:
        return
    if row is not None:
        log.info("replacing %s of %s.%s: %s is now %s", proc, schema, table, key, value)
        conn.execute(remove, (regclass,))
    conn.execute(add, (regclass, value))

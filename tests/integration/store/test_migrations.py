from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from streams.store import (
    AGGREGATES,
    HYPERTABLES,
    MigrationError,
    StoreMode,
    connect,
    migrate,
    status,
)
from streams.store.migrations import load_migrations
from streams.store.tables import TABLES

pytestmark = pytest.mark.integration

# (url, mode, schema), from the fixtures in conftest.py
Store = tuple[str, StoreMode, str]

LATEST = max(m.version for m in load_migrations())


def test_every_migration_runs_twice_in_a_row(store: Store) -> None:
    url, mode, schema = store
    first = migrate(url, schema=schema)
    second = migrate(url, schema=schema)

    assert first.applied_now == tuple(range(1, LATEST + 1))
    assert second.applied_now == ()
    assert first.status.mode is mode
    assert second.status.mode is mode
    assert second.status.applied == first.status.applied
    assert second.status.pending == ()
    assert second.status.policies == {
        "compression_after": timedelta(days=7),
        "retention": timedelta(days=400),
    }
    assert {a.name for a in second.status.aggregates} == set(AGGREGATES)


def test_status_reports_the_mode_before_and_after_migrating(store: Store) -> None:
    url, mode, schema = store
    before = status(url, schema=schema)
    assert not before.migrated
    assert before.mode is mode
    assert before.pending == tuple(range(1, LATEST + 1))

    migrate(url, schema=schema)
    after = status(url, schema=schema)

    assert after.migrated
    assert after.mode is mode
    assert after.applied == tuple(range(1, LATEST + 1))
    if mode is StoreMode.TIMESCALEDB:
        assert after.timescaledb_version is not None
    else:
        assert after.timescaledb_version is None


def test_sink_tables_match_the_migrated_columns(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    with connect(url, schema=schema) as conn:
        for table in TABLES:
            rows = conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (f"{schema}.{table.name}",),
            ).fetchall()
            db_types: dict[str, str] = dict(rows)
            for column in table.columns:
                assert column.name in db_types, f"{table.name}.{column.name} missing"
                expected = conn.execute(
                    "SELECT format_type(%s::regtype, NULL)", (column.pg_type,)
                ).fetchone()
                assert expected is not None
                assert db_types[column.name] == expected[0], f"{table.name}.{column.name}"
            key = conn.execute(
                "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
                "CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary",
                (f"{schema}.{table.name}",),
            ).fetchone()
            assert key is not None
            assert tuple(key[0]) == table.key


def test_timescale_mode_builds_hypertables_aggregates_and_policies(ts_store: Store) -> None:
    url, _, schema = ts_store
    migrate(url, schema=schema)
    with connect(url, schema=schema) as conn:
        hypertables: dict[str, bool] = dict(
            conn.execute(
                "SELECT hypertable_name, compression_enabled "
                "FROM timescaledb_information.hypertables WHERE hypertable_schema = %s",
                (schema,),
            ).fetchall()
        )
        intervals: dict[str, timedelta] = dict(
            conn.execute(
                "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions "
                "WHERE hypertable_schema = %s",
                (schema,),
            ).fetchall()
        )
        caggs: dict[str, bool] = dict(
            conn.execute(
                "SELECT view_name, materialized_only "
                "FROM timescaledb_information.continuous_aggregates WHERE view_schema = %s",
                (schema,),
            ).fetchall()
        )
        jobs = conn.execute(
            "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = %s",
            (schema,),
        ).fetchall()

    assert hypertables == dict.fromkeys(HYPERTABLES, True)
    assert intervals["events"] == timedelta(days=1)
    assert intervals["interventions"] == timedelta(days=7)
    # Real-time aggregation: boards see the minute that is still filling.
    assert caggs == dict.fromkeys(AGGREGATES, False)
    by_kind: dict[str, dict[str, dict[str, object]]] = {}
    for proc, table, config in jobs:
        by_kind.setdefault(proc, {})[table] = config
    assert set(by_kind["policy_compression"]) == set(HYPERTABLES)
    assert set(by_kind["policy_retention"]) == set(HYPERTABLES)
    assert set(by_kind["policy_refresh_continuous_aggregate"]) == set(AGGREGATES)
    assert {c["compress_after"] for c in by_kind["policy_compression"].values()} == {"7 days"}
    assert {c["drop_after"] for c in by_kind["policy_retention"].values()} == {"400 days"}


def test_timescale_policies_follow_the_settings(ts_store: Store) -> None:
    url, _, schema = ts_store
    migrate(url, schema=schema)
    run = migrate(
        url,
        schema=schema,
        compression_after=timedelta(days=10),
        retention=timedelta(days=90),
    )
    assert run.applied_now == ()
    assert run.status.policies["retention"] == timedelta(days=90)
    with connect(url, schema=schema) as conn:
        rows = conn.execute(
            "SELECT proc_name, count(*), array_agg(DISTINCT coalesce("
            "config ->> 'compress_after', config ->> 'drop_after')) "
            "FROM timescaledb_information.jobs WHERE hypertable_schema = %s "
            "AND proc_name IN ('policy_compression', 'policy_retention') GROUP BY proc_name",
            (schema,),
        ).fetchall()
    found = {proc: (count, values) for proc, count, values in rows}
    # One job per table: replaced, not added beside the old one.
    assert found["policy_compression"] == (len(HYPERTABLES), ["10 days"])
    assert found["policy_retention"] == (len(HYPERTABLES), ["90 days"])


def test_postgresql_mode_builds_views_with_the_aggregates_names(pg_store: Store) -> None:
    url, _, schema = pg_store
    migrate(url, schema=schema)
    with connect(url, schema=schema) as conn:
        kinds: dict[str, str] = dict(
            conn.execute(
                "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s",
                (schema,),
            ).fetchall()
        )
        brin = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE '%%brin%%'",
            (schema,),
        ).fetchone()
    for name in AGGREGATES:
        assert kinds[name] == "v"
        assert kinds[f"{name}_materialized"] == "r"
    for name in HYPERTABLES:
        assert kinds[name] == "r"
    assert brin is not None and brin[0] == len(HYPERTABLES)


def test_retention_inside_a_refresh_window_is_refused(store: Store) -> None:
    url, _, schema = store
    with pytest.raises(MigrationError, match="refresh window"):
        migrate(
            url,
            schema=schema,
            compression_after=timedelta(days=1),
            retention=timedelta(days=2),
        )


def test_retention_shorter_than_compression_is_refused(store: Store) -> None:
    url, _, schema = store
    with pytest.raises(MigrationError, match="compression_after"):
        migrate(
            url,
            schema=schema,
            compression_after=timedelta(days=30),
            retention=timedelta(days=20),
        )


def test_an_edited_applied_migration_is_refused(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    with connect(url, schema=schema) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(url, schema=schema)


def test_a_store_keeps_its_mode(store: Store) -> None:
    url, mode, schema = store
    migrate(url, schema=schema)
    other = StoreMode.TIMESCALEDB if mode is StoreMode.POSTGRESQL else StoreMode.POSTGRESQL
    with pytest.raises(MigrationError, match="cannot switch"):
        migrate(url, schema=schema, mode=other)


def test_timescale_mode_is_refused_where_the_extension_is_missing(pg_store: Store) -> None:
    url, _, schema = pg_store
    with pytest.raises(MigrationError, match="not available"):
        migrate(url, schema=schema, mode=StoreMode.TIMESCALEDB)


def test_fallback_can_be_forced_on_timescaledb(ts_store: Store) -> None:
    url, _, schema = ts_store
    run = migrate(url, schema=schema, mode=StoreMode.POSTGRESQL)
    assert run.status.mode is StoreMode.POSTGRESQL
    with connect(url, schema=schema) as conn:
        count = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_schema = %s",
            (schema,),
        ).fetchone()
    assert count == (0,)


def test_intervention_actions_are_append_only_and_once(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    now = datetime.now(UTC)
    insert = (
        "INSERT INTO intervention_actions "
        "(intervention_id, intervention_time, class_id, action, actor, note) "
        "VALUES (%s, %s, 'c1', %s, 'key-1', 'looked at it')"
    )
    with connect(url, schema=schema) as conn:
        conn.execute(insert, ("i-1", now, "approve"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("i-1", now, "dismiss"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("UPDATE intervention_actions SET note = 'rewritten'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM intervention_actions")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("TRUNCATE intervention_actions")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert, ("i-2", now, "delete"))
        rows = conn.execute("SELECT intervention_id, action, note FROM intervention_actions")
        assert rows.fetchall() == [("i-1", "approve", "looked at it")]


def test_api_keys_accept_known_scopes_only(store: Store) -> None:
    url, _, schema = store
    migrate(url, schema=schema)
    insert = "INSERT INTO api_keys (key_id, name, secret_hash, scopes) VALUES (%s, 'n', 'h', %s)"
    with connect(url, schema=schema) as conn:
        conn.execute(insert, ("k1", ["tutor", "ingest"]))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert, ("k2", ["root"]))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert, ("k3", []))


def test_migrating_through_a_caller_connection_restores_it(pg_store: Store) -> None:
    url, _, schema = pg_store
    with psycopg.connect(url) as conn:
        before = conn.execute("SHOW search_path").fetchone()
        conn.commit()
        migrate(conn, schema=schema)
        assert conn.execute("SHOW search_path").fetchone() == before
        assert conn.autocommit is False
        table = sql.SQL("{}.events").format(sql.Identifier(schema))
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone() == (0,)

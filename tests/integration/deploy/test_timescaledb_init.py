"""deploy/compose.yaml's TimescaleDB init script on a real PostgreSQL: Grafana's login reads the
migrated store and cannot change it."""

from __future__ import annotations

import os
import subprocess
import uuid

import psycopg
import pytest
from psycopg import sql

from streams.store import migrate
from tests.deploy.tools import ROOT, base_env

pytestmark = pytest.mark.integration

SCRIPT = ROOT / "deploy" / "timescaledb" / "initdb" / "10-grafana-reader.sh"


def _run_script(postgres_url: str, dbname: str, password: str) -> None:
    server = psycopg.conninfo.conninfo_to_dict(postgres_url)
    env = {
        **base_env(),
        "PGHOST": server["host"],
        "PGPORT": str(server["port"]),
        "PGPASSWORD": server.get("password", ""),
        "PGSSLMODE": "disable",
        "POSTGRES_USER": server["user"],
        "POSTGRES_DB": dbname,
        "GRAFANA_READER_PASSWORD": password,
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_grafana_login_reads_the_migrated_store_and_cannot_write(postgres_url: str) -> None:
    dbname = f"init_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    server = psycopg.conninfo.conninfo_to_dict(postgres_url)
    url = psycopg.conninfo.make_conninfo(postgres_url, dbname=dbname)
    password = uuid.uuid4().hex
    try:
        _run_script(postgres_url, dbname, password)
        _run_script(postgres_url, dbname, password)  # a second run changes nothing
        migrate(url)
        reader = psycopg.conninfo.make_conninfo(
            host=server["host"],
            port=server["port"],
            dbname=dbname,
            user="grafana_reader",
            password=password,
            sslmode="disable",
        )
        with psycopg.connect(reader, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM interventions").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM interventions")
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


def test_without_a_password_no_login_is_made(postgres_url: str) -> None:
    dbname = f"init_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        before = conn.execute(
            "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'grafana_reader'"
        ).fetchall()
    try:
        _run_script(postgres_url, dbname, "")
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            after = conn.execute(
                "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'grafana_reader'"
            ).fetchall()
            assert conn.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname = 'tutorstream_reader'"
            ).fetchone() == (1,)
        assert after == before
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
    # executable: the image runs it in a shell of its own instead of sourcing it into its own
    assert os.access(SCRIPT, os.X_OK)

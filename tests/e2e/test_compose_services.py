"""deploy/compose.yaml's own services, run here with the commands and environment it gives them.

No Docker engine runs here: the image's entry point (`tutorstream`, from deploy/Dockerfile) is
the installed console script, its ENV is applied with /var/lib/tutorstream moved under the
test's folder, and compose's host names are mapped onto the embedded stack: `kafka:9092` onto a
Tansu broker of this test's own (the catalogue's unprefixed topics and the default group stay
apart from other tests), `timescaledb:5432` onto the session's PostgreSQL, where the test makes
the role and database the compose file's URL names. Ports 6066 and 8000 become free ports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer
from psycopg import sql

from common.kafka import consumer_config
from tests.deploy.tools import CHART, COMPOSE, DOCKERFILES, base_env, compose_binary, render, run
from tutorstream import services
from tutorstream.cohort import labelled_cohort

pytestmark = pytest.mark.e2e

SECRETS = {
    "TUTORSTREAM_DB_PASSWORD": f"compose{uuid.uuid4().hex[:12]}",
    "TUTORSTREAM_PSEUDONYM_KEY": f"compose-e2e-{uuid.uuid4().hex}",
}
ORDER = ("migrate", "topics", "worker", "api")


def _entry_point() -> list[str]:
    script = shutil.which("tutorstream", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-c", "from tutorstream.cli import main; main()"]


def _image_env(home: Path) -> dict[str, str]:
    runtime = DOCKERFILES[0].read_text().split("AS runtime", 1)[1]
    found = dict(re.findall(r"\b(TUTORSTREAM_[A-Z0-9_]+)=(\S+)", runtime))
    return {k: v.replace("/var/lib/tutorstream", str(home)) for k, v in found.items()}


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = services.start_broker(tmp_path_factory.mktemp("compose-broker"))
    yield broker.url
    broker.stop()


@pytest.fixture
def compose_services() -> dict[str, Any]:
    done = run(
        [compose_binary(), "-f", COMPOSE, "config", "--format", "json"],
        env={**base_env(), **SECRETS},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["services"]


def _store_on_embedded_postgres(postgres_url: str, compose_url: str) -> str:
    """Make the role and database of compose's URL; return the URL moved onto ``postgres_url``."""
    wanted = psycopg.conninfo.conninfo_to_dict(compose_url)
    server = psycopg.conninfo.conninfo_to_dict(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(wanted["dbname"])
            )
        )
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(wanted["user"])))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(wanted["user"]), sql.Literal(wanted["password"])
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(wanted["dbname"]), sql.Identifier(wanted["user"])
            )
        )
    return compose_url.replace(
        f"@{wanted['host']}:{wanted['port']}/", f"@{server['host']}:{server['port']}/"
    )


def _wait_ok(
    url: str, procs: list[subprocess.Popen[bytes]], logs: Path, timeout: float = 180.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, _tails(logs)
        try:
            if httpx.get(url, timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} never answered 200\n{_tails(logs)}")


def _tails(logs: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log"))
    )


def test_compose_services_run_the_loop_on_the_embedded_stack(
    compose_services: dict[str, Any], own_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    database_url = _store_on_embedded_postgres(
        postgres_url, compose_services["migrate"]["environment"]["TUTORSTREAM_DATABASE_URL"]
    )
    web_port, api_port = services.free_port(), services.free_port()
    logs = tmp_path / "logs"
    logs.mkdir()

    def env_of(name: str) -> dict[str, str]:
        env = {**base_env(), **_image_env(tmp_path / name)}
        for key, value in compose_services[name]["environment"].items():
            value = value.replace("kafka:9092", own_broker)
            if key == "TUTORSTREAM_DATABASE_URL":
                value = database_url
            env[key] = value
        if "TUTORSTREAM_WEB_PORT" in env:
            env["TUTORSTREAM_WEB_PORT"] = str(web_port)
        if "TUTORSTREAM_API__PORT" in env:
            env["TUTORSTREAM_API__PORT"] = str(api_port)
            env["TUTORSTREAM_API__HOST"] = "127.0.0.1"
        return env

    # Dependency order, as compose's depends_on gives it.
    assert compose_services["worker"]["depends_on"].keys() == {"migrate", "topics"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in ORDER:
            command = [*_entry_point(), *compose_services[name]["command"]]
            log = (logs / f"{name}.log").open("wb")
            proc = subprocess.Popen(
                command,
                env=env_of(name),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if name in ("migrate", "topics"):
                assert proc.wait(300) == 0, _tails(logs)
            else:
                procs.append(proc)
        _wait_ok(f"http://127.0.0.1:{api_port}/readyz", procs, logs)
        _wait_ok(f"http://127.0.0.1:{web_port}/metrics", procs, logs)

        made = subprocess.run(
            [*_entry_point(), "keys", "create", "--name", "compose-e2e", "--scope", "ingest"],
            env=env_of("api"),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        token = re.search(r"^token\s+(\S+)", made.stdout, re.M).group(1)

        # The chart's `helm test` script, as rendered, against these services.
        pods = [
            d
            for d in render([CHART / "ci" / "production.yaml"])
            if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
        ]
        script = pods[0]["spec"]["containers"][0]
        api_url = f"http://127.0.0.1:{api_port}"
        # streams/app.py does not serve /readyz yet: the API's stands in for the worker's here.
        checked = subprocess.run(
            [sys.executable, *script["command"][1:], *script["args"]],
            env={**base_env(), "API_URL": api_url, "WORKER_URL": api_url, "INGEST_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "accepted" in checked.stdout

        start = datetime.now(UTC) - timedelta(hours=2)
        events = [e for e, _ in labelled_cohort(12, 16, 5, start=start)]
        with httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            for i in range(0, len(events), 400):
                reply = client.post("/events", json=events[i : i + 400])
                assert reply.status_code == 200, reply.text

        deadline = time.monotonic() + 240
        stored: list[str] = []
        while time.monotonic() < deadline and not stored:
            with psycopg.connect(database_url, autocommit=True) as conn:
                stored = [
                    r[0]
                    for r in conn.execute(
                        "SELECT intervention_id::text FROM interventions"
                    ).fetchall()
                ]
            for proc in procs:
                assert proc.poll() is None, _tails(logs)
            time.sleep(1)
        assert stored, f"no intervention stored\n{_tails(logs)}"

        consumer = Consumer(
            consumer_config(
                own_broker,
                f"compose-e2e-{uuid.uuid4().hex[:8]}",
                **{"auto.offset.reset": "earliest", "enable.auto.commit": False},
            )
        )
        consumer.subscribe(["tutor.interventions.v1"])
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and not seen & set(stored):
                message = consumer.poll(1.0)
                if message is not None and message.error() is None:
                    seen.add(json.loads(message.value())["intervention_id"])
        finally:
            consumer.close()
        assert seen & set(stored), "no stored intervention on tutor.interventions.v1"
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

"""A stream pipeline per test: its own topics (by prefix), schema, consumer group and workers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from confluent_kafka import Producer

from common.kafka import producer_config
from schemas.topics import prefixed
from streams.store import migrate
from tutorstream import kafka, services


@dataclass
class Pipeline:
    """Handles on one test's pipeline."""

    bootstrap: str
    database_url: str
    schema: str
    prefix: str
    app_id: str
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TUTORSTREAM_KAFKA_BOOTSTRAP=self.bootstrap,
            TUTORSTREAM_DATABASE_URL=self.database_url,
            TUTORSTREAM_STORE__DB_SCHEMA=self.schema,
            TUTORSTREAM_TOPIC_PREFIX=self.prefix,
            TUTORSTREAM_APP_ID=self.app_id,
            TUTORSTREAM_MAX_DELAY_MS="5",
            TUTORSTREAM_DATA_DIR=str(self.log_dir.parent / "streams"),
        )
        env.update(extra)
        return env

    def start_worker(self, prelude: str = "", **extra: str) -> subprocess.Popen[bytes]:
        """Start a worker; ``prelude`` is Python run in its process before the worker starts
        (a test's fault injection)."""
        port = services.free_port()
        n = len(self.workers)
        log = (self.log_dir / f"worker-{n}.log").open("wb")
        argv = services.worker_command(port)
        if prelude:
            program = argv.index("-c") + 1
            argv[program] = f"{prelude}\n{argv[program]}"
        proc = subprocess.Popen(
            argv,
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        self.ports.append(port)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def produce(self, records: list[tuple[bytes | None, bytes]], topic: str | None = None) -> None:
        producer = Producer(producer_config(self.bootstrap))
        target = topic or self.topic("lms.events.v1")
        for key, value in records:
            kafka.produce_waiting(producer, target, key, value)
            producer.poll(0)
        assert producer.flush(60) == 0

    def scalar(self, query: str, *args: Any) -> Any:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(f'SET search_path = "{self.schema}", public')
            row = conn.execute(query, args).fetchone()
            return None if row is None else row[0]

    def rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(f'SET search_path = "{self.schema}", public')
            return conn.execute(query, args).fetchall()

    def wait_for(self, query: str, expected: int, timeout: float = 180.0) -> int:
        deadline = time.monotonic() + timeout
        value = -1
        while time.monotonic() < deadline:
            for proc in self.workers:
                if proc.poll() is not None and proc.returncode not in (0, -9, -15):
                    pytest.fail(f"a worker exited with {proc.returncode}: {self.log_tail()}")
            value = int(self.scalar(query) or 0)
            if value >= expected:
                return value
            time.sleep(0.5)
        pytest.fail(f"{query!r} reached {value}, expected {expected}\n{self.log_tail()}")

    def metrics(self, index: int = 0) -> str:
        return httpx.get(f"http://127.0.0.1:{self.ports[index]}/metrics", timeout=10).text

    @staticmethod
    def native_records(events: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
        """Records of native events, keyed by the LMS's own learner id (not the pseudonym).

        The stream re-keys by pseudonym itself, so producers need not know the pseudonym key.
        """
        return [(str(e["learner_id"]).encode(), orjson.dumps(e)) for e in events]

    def log_tail(self, chars: int = 4000) -> str:
        out = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)


@pytest.fixture
def pipeline(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    postgres_url: str,
    pg_schema: Callable[[str], Any],
    tmp_path: Path,
) -> Iterator[Pipeline]:
    """Topics under a unique prefix, a migrated schema, and a way to start workers."""
    schema = pg_schema(postgres_url)
    prefix = f"t{uuid.uuid4().hex[:8]}."
    kafka.create_topics(kafka_bootstrap, prefixed(prefix))
    migrate(postgres_url, schema=schema.name)
    logs = tmp_path / "logs"
    logs.mkdir()
    pipe = Pipeline(
        bootstrap=kafka_bootstrap,
        database_url=postgres_url,
        schema=schema.name,
        prefix=prefix,
        app_id=f"tutorstream-{uuid.uuid4().hex[:8]}",
        log_dir=logs,
    )
    yield pipe
    pipe.stop_all()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(pipe.log_tail())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)

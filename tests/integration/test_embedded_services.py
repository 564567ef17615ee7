from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tutorstream import kafka, services

pytestmark = pytest.mark.integration


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not services.pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_session_broker_answers_metadata_and_lists_a_new_topic(
    kafka_bootstrap: str, topic_factory
) -> None:
    topic = topic_factory("probe", partitions=4)

    assert services.kafka_answers(kafka_bootstrap)
    assert kafka.topic_partitions(kafka_bootstrap)[topic] == 4


def test_session_postgres_is_18_and_each_test_schema_is_its_own(
    postgres_url: str, pg_schema
) -> None:
    first, second = pg_schema(postgres_url), pg_schema(postgres_url)
    with psycopg.connect(first.url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        conn.execute("CREATE TABLE learner (id text)")
        conn.execute("INSERT INTO learner VALUES ('a')")
        where = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'learner'"
        ).fetchall()
    with psycopg.connect(second.url) as conn:
        in_second = conn.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'learner'",
            (second.name,),
        ).fetchone()

    assert version is not None and int(version[0]) // 10000 == 18
    assert where == [(first.name,)]
    assert in_second == (0,)


def test_session_timescale_builds_a_hypertable_and_buckets_it(
    timescale_url: str, pg_schema
) -> None:
    schema = pg_schema(timescale_url).name
    table = sql.Identifier(schema, "answers")
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        extension = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
        conn.execute(
            sql.SQL("CREATE TABLE {} (t timestamptz NOT NULL, correct boolean)").format(table)
        )
        conn.execute("SELECT create_hypertable(%s, 't')", (f"{schema}.answers",))
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table),
                [
                    ("2025-09-01T08:00:00Z", True),
                    ("2025-09-01T08:20:00Z", False),
                    ("2025-09-02T09:00:00Z", True),
                ],
            )
        buckets = conn.execute(
            sql.SQL(
                "SELECT time_bucket('1 day', t)::date::text, count(*) FROM {} GROUP BY 1 ORDER BY 1"
            ).format(table)
        ).fetchall()
        hypertables = conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = %s",
            (schema,),
        ).fetchall()

    assert extension is not None and extension[0].startswith("2.23")
    assert hypertables == [("answers",)]
    assert buckets == [("2025-09-01", 2), ("2025-09-02", 1)]


def test_timescale_serves_a_waiting_client_once_the_first_disconnects(timescale_url: str) -> None:
    first = psycopg.connect(timescale_url)
    first.execute("SELECT 1")
    served: list[object] = []

    def second_client() -> None:
        with psycopg.connect(timescale_url, connect_timeout=30) as conn:
            served.append(conn.execute("SELECT 2").fetchone())

    waiter = threading.Thread(target=second_client)
    waiter.start()
    waiter.join(timeout=1.0)
    waiting_while_first_open = waiter.is_alive()
    first.close()
    waiter.join(timeout=30.0)

    assert waiting_while_first_open
    assert served == [(2,)]


def test_stopped_services_leave_no_process_and_free_their_port(tmp_path: Path) -> None:
    broker = services.start_broker(tmp_path / "logs")
    postgres = services.start_postgres(tmp_path / "pg", tmp_path / "logs", durable=False)
    # A connected backend is one more process in the server's group.
    client = psycopg.connect(postgres.url)
    client.execute("SELECT 1")
    broker.stop()
    postgres.stop()
    client.close()

    for handle in (broker, postgres):
        assert not handle.is_running()
        assert not services.pid_alive(handle.pid)
        assert not services.port_answers(services.LOOPBACK, handle.port)
        with pytest.raises(ProcessLookupError):
            os.killpg(handle.pid, 0)
    assert "database system is shut down" in postgres.log_path.read_text()


def test_services_die_with_a_killed_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from tutorstream import services
        base = Path({str(tmp_path)!r})
        broker = services.start_broker(base / "logs")
        postgres = services.start_postgres(base / "pg", base / "logs", durable=False)
        print(broker.pid, postgres.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(services.pid_alive(pid) for pid in pids)
    finally:
        # SIGKILL: no atexit, no finalizer; only the parent-death signal can stop them.
        parent.send_signal(signal.SIGKILL)
        parent.wait()

    assert all(_gone(pid) for pid in pids)


def test_a_taken_port_is_refused_rather_than_shared(tmp_path: Path) -> None:
    blocker = services.start_broker(tmp_path / "first")
    try:
        with pytest.raises(services.ServiceError, match="in use"):
            services.start_broker(tmp_path / "second", port=blocker.port, timeout=10.0)
        with pytest.raises(services.ServiceError, match="in use"):
            services.start_postgres(tmp_path / "pg", tmp_path / "second", port=blocker.port)
    finally:
        blocker.stop()


def test_a_service_that_fails_to_start_reports_its_log(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    services.start_postgres(data, tmp_path / "logs", durable=False).stop()
    # A setting PostgreSQL refuses makes it exit at once.
    (data / "postgresql.auto.conf").write_text("shared_buffers = 'lots'\n")

    with pytest.raises(services.ServiceError) as failure:
        services.start_postgres(data, tmp_path / "logs", timeout=20.0)

    assert "postgres.log" in str(failure.value)
    assert "shared_buffers" in str(failure.value)


def test_a_recorded_pid_now_used_by_another_process_is_left_alone(tmp_path: Path) -> None:
    broker = services.start_broker(tmp_path / "logs")
    record = broker.to_record()
    broker.stop()
    # Another process, in a group of its own, as a service would be, now holds the pid.
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        reused = services.ServiceHandle.from_record({**record, "pid": stranger.pid})
        running_before = reused.is_running()
        reused.stop(timeout=1.0)
        alive_after = stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()

    assert record["started"] is not None
    assert not running_before
    assert alive_after

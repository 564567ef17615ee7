"""Rebuilds in several processes against the real broker, PostgreSQL and model."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Producer
from psycopg import sql

from common.kafka import producer_config
from schemas.topics import LMS_EVENTS
from streams.replay.checkpoint import Checkpoint
from streams.replay.exceptions import ReplayError
from streams.replay.plan import Selection
from streams.replay.pool import RebuildSpec, run_rebuild
from streams.replay.reader import Progress, Replay, run_sync
from streams.store import StoreSettings, migrate
from tests.integration.replay.snapshots import snapshot
from tutorstream.cohort import generate_cohort
from tutorstream.producer import produce_records, records_from_events

pytestmark = pytest.mark.integration

KEY = b"replay-pool-test-key"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# set by the database when a row is stored: they differ between two stores of the same rows
MOMENTS = ["stored_at", "updated_at", "acted_at", "created_at", "stored", "applied_at"]


def _cohort(events: int, seed: int) -> list[dict[str, Any]]:
    return list(generate_cohort(8, events, seed, start=START))


def _produce_keyed(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    # as `tutorstream produce` does: keyed by learner pseudonym, on its partition
    report = produce_records(
        records_from_events(events, "cohort"),
        bootstrap=bootstrap,
        topic=topic,
        key=KEY,
        compression="none",
    )
    assert report.failed == 0, report.summary()


def _replay(bootstrap: str, topic: str, **options: Any) -> Replay:
    return Replay(
        bootstrap=bootstrap,
        selection=Selection(topics=(topic,)),
        pseudonym_key=KEY,
        replay_id=uuid.uuid4().hex[:8],
        **options,
    )


def _spec(url: str, schema: str) -> RebuildSpec:
    return RebuildSpec(
        database_url=url, store=StoreSettings(db_schema=schema), partitions=LMS_EVENTS.partitions
    )


def _recommended(snapshot: dict[str, list[str]]) -> list[tuple[str, str]]:
    rows = (orjson.loads(row) for row in snapshot["recommendations"])
    return sorted((r["event_id"], r["learner_id"]) for r in rows)


def test_rebuild_in_two_processes_writes_the_rows_of_one_and_again_changes_none(
    kafka_bootstrap: str, topic_factory: Any, postgres_url: str, pg_schema: Any
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS)
    cohort = _cohort(400, seed=13)
    _produce_keyed(kafka_bootstrap, topic, cohort)
    one, two = pg_schema(postgres_url).name, pg_schema(postgres_url).name
    migrate(postgres_url, schema=one)
    migrate(postgres_url, schema=two)
    single = run_sync(
        _replay(kafka_bootstrap, topic, batch_size=100), _spec(postgres_url, one).build()
    )
    seen: list[int] = []

    def show(progress: Progress) -> None:
        seen.append(progress.records)

    parallel = run_rebuild(
        _replay(kafka_bootstrap, topic, batch_size=100, on_progress=show),
        _spec(postgres_url, two),
        2,
    )

    assert single.events == parallel.events == len(cohort)
    assert seen[-1] == len(cohort)  # summed over the processes
    assert seen == sorted(seen)
    expected = snapshot(postgres_url, one, MOMENTS)
    assert len(expected["events"]) == len(cohort)
    assert expected["predictions"]
    assert expected["interventions"]
    got = snapshot(postgres_url, two, MOMENTS)
    # a recommendation reads the class's item catalogue as its batch left it, and a process
    # holding fewer partitions takes more of each into a batch: which item it names can differ,
    # as it does between two batch sizes in one process; that one is made stays the same
    assert {t: rows for t, rows in got.items() if t != "recommendations"} == {
        t: rows for t, rows in expected.items() if t != "recommendations"
    }
    assert _recommended(got) == _recommended(expected)

    # history a one-process run stored, and history the two processes stored, are unchanged
    # by a two-process rebuild
    for schema in (one, two):
        before = snapshot(postgres_url, schema)
        again = run_rebuild(
            _replay(kafka_bootstrap, topic, batch_size=100), _spec(postgres_url, schema), 2
        )
        assert again.events == len(cohort)
        assert snapshot(postgres_url, schema) == before
    assert multiprocessing.active_children() == []


def test_interrupted_parallel_rebuild_resumes_with_any_number_of_processes(
    kafka_bootstrap: str, topic_factory: Any, postgres_url: str, pg_schema: Any, tmp_path: Path
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS)
    cohort = _cohort(600, seed=17)
    _produce_keyed(kafka_bootstrap, topic, cohort)
    schema = pg_schema(postgres_url).name
    migrate(postgres_url, schema=schema)
    spec = _spec(postgres_url, schema)
    checkpoint = Checkpoint(tmp_path / "rebuild.checkpoint")

    def replay(**options: Any) -> Replay:
        return _replay(kafka_bootstrap, topic, checkpoint=checkpoint, batch_size=40, **options)

    first = run_rebuild(replay(max_batches=1), spec, 2)
    saved = json.loads((tmp_path / "rebuild.checkpoint").read_text())["partitions"]
    second = run_sync(replay(max_batches=2), spec.build())
    third = run_rebuild(replay(), spec, 3)

    assert first.batches == 2  # one per process
    assert 0 < sum(p["next"] for p in saved.values()) < len(cohort)
    assert first.records + second.records + third.records == len(cohort)
    stored = snapshot(postgres_url, schema)["events"]
    assert sorted(orjson.loads(row)["event_id"] for row in stored) == sorted(
        str(e["event_id"]) for e in cohort
    )
    # each resumed process read its partitions' past again first: every learner's features
    # and scores are those of one uninterrupted run
    whole = pg_schema(postgres_url).name
    migrate(postgres_url, schema=whole)
    run_sync(_replay(kafka_bootstrap, topic, batch_size=40), _spec(postgres_url, whole).build())
    written = ("stored_at",)
    resumed, uninterrupted = (snapshot(postgres_url, s, drop=written) for s in (schema, whole))
    for table in ("features", "predictions", "skill_mastery"):
        assert resumed[table] and resumed[table] == uninterrupted[table], table


def test_a_topic_not_keyed_by_pseudonym_fails_a_parallel_rebuild_with_the_reason(
    kafka_bootstrap: str, topic_factory: Any, postgres_url: str, pg_schema: Any
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS)
    producer = Producer(producer_config(kafka_bootstrap))
    for event in _cohort(200, seed=19):
        # keyed by the raw learner id: learners land on partitions other than their state's
        producer.produce(topic, key=str(event["learner_id"]).encode(), value=orjson.dumps(event))
    assert producer.flush(60) == 0
    schema = pg_schema(postgres_url).name
    migrate(postgres_url, schema=schema)

    with pytest.raises(ReplayError, match="not keyed by learner pseudonym") as failed:
        run_rebuild(_replay(kafka_bootstrap, topic), _spec(postgres_url, schema), 2)

    assert "replay process" in str(failed.value)
    assert multiprocessing.active_children() == []


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has stopped; only its exit status is left


@pytest.mark.parametrize("stop", ["sigterm-to-the-parent", "ctrl-c-to-the-group"])
def test_a_stop_ends_every_process_and_the_same_command_resumes(
    kafka_bootstrap: str,
    topic_factory: Any,
    postgres_url: str,
    pg_schema: Any,
    tmp_path: Path,
    stop: str,
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS)
    cohort = _cohort(4000, seed=23)
    _produce_keyed(kafka_bootstrap, topic, cohort)
    schema = pg_schema(postgres_url).name
    migrate(postgres_url, schema=schema)
    checkpoint = tmp_path / "rebuild.checkpoint"
    env = {
        **os.environ,
        "TUTORSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TUTORSTREAM_DATABASE_URL": postgres_url,
        "TUTORSTREAM_STORE__DB_SCHEMA": schema,
        "TUTORSTREAM_PSEUDONYM_KEY": KEY.decode(),
        "TUTORSTREAM_STATE_DIR": str(tmp_path / "state"),
    }
    command = [sys.executable, "-c", "from tutorstream.cli import main; main()", "replay", "run"]
    args = ["--mode", "rebuild", "--topic", topic, "--processes", "2"]
    args += ["--checkpoint", str(checkpoint), "--batch-size", "10"]
    dry = subprocess.run(
        [*command, *args, "--dry-run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert f"{topic}:0" in dry.stdout
    assert not checkpoint.exists()

    running = subprocess.Popen(
        [*command, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal gives a command
        # and Ctrl-C working, as in a terminal: a shell without job control starts background
        # commands with SIGINT ignored, and Python keeps an ignored SIGINT ignored
        preexec_fn=_interruptible,
    )
    try:
        deadline = time.monotonic() + 120
        progressed = 0
        while progressed == 0 and time.monotonic() < deadline and running.poll() is None:
            time.sleep(0.05)
            if checkpoint.exists():
                saved = json.loads(checkpoint.read_text())["partitions"]
                progressed = sum(p["next"] for p in saved.values())
        workers = _children(running.pid)
        if stop == "sigterm-to-the-parent":
            running.send_signal(signal.SIGTERM)
        else:
            os.killpg(running.pid, signal.SIGINT)
        _, stderr = running.communicate(timeout=90)
    finally:
        if running.poll() is None:
            running.kill()
    assert 0 < progressed < len(cohort)
    assert running.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    assert len(workers) >= 2
    # multiprocessing's resource tracker leaves once the parent has gone: give it a moment
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
    saved = json.loads(checkpoint.read_text())["partitions"]
    assert sum(p["next"] for p in saved.values()) < len(cohort)

    resumed = subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=300
    )

    assert resumed.returncode == 0, resumed.stderr
    stored = snapshot(postgres_url, schema)["events"]
    assert sorted(orjson.loads(row)["event_id"] for row in stored) == sorted(
        str(e["event_id"]) for e in cohort
    )


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _replay_workers() -> list[int]:
    found = []
    for pid in _children(os.getpid()):
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"streams.replay.pool" in command:
            found.append(pid)
    return found


def test_a_worker_that_dies_fails_the_run_and_the_others_stop(
    kafka_bootstrap: str, topic_factory: Any, postgres_url: str, pg_schema: Any
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS)
    _produce_keyed(kafka_bootstrap, topic, _cohort(3000, seed=29))
    schema = pg_schema(postgres_url).name
    migrate(postgres_url, schema=schema)
    killed: list[int] = []

    def kill_one(progress: Progress) -> None:
        if not killed:
            killed.append(_replay_workers()[0])
            os.kill(killed[0], signal.SIGKILL)

    with pytest.raises(ReplayError, match=r"ended without finishing \(exit code -9\)"):
        run_rebuild(
            _replay(kafka_bootstrap, topic, batch_size=20, on_progress=kill_one),
            _spec(postgres_url, schema),
            2,
        )

    assert killed
    assert _replay_workers() == []


def test_a_parallel_rescore_writes_only_its_shadow_schema(
    kafka_bootstrap: str,
    topic_factory: Any,
    postgres_url: str,
    pg_schema: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from inference.registry import DEFAULT_MODEL, ModelRegistry
    from streams.replay.rebuild import shadow_schema
    from tutorstream.cli import app

    topic = topic_factory("events", spec=LMS_EVENTS)
    cohort = _cohort(300, seed=31)
    _produce_keyed(kafka_bootstrap, topic, cohort)
    live = pg_schema(postgres_url).name
    migrate(postgres_url, schema=live)
    ref = ModelRegistry.with_packaged([]).load(DEFAULT_MODEL).ref
    shadow = shadow_schema(ref)
    drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(shadow))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(drop)
    monkeypatch.setenv("TUTORSTREAM_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("TUTORSTREAM_DATABASE_URL", postgres_url)
    monkeypatch.setenv("TUTORSTREAM_STORE__DB_SCHEMA", live)
    monkeypatch.setenv("TUTORSTREAM_PSEUDONYM_KEY", KEY.decode())
    args = ["replay", "run", "--topic", topic, "--processes", "2"]
    before = snapshot(postgres_url, live)
    assert before["events"] == []
    try:
        rescored = CliRunner().invoke(app, [*args, "--mode", "rescore", "--model", ref])

        assert rescored.exit_code == 0, rescored.output
        assert f"replayed {len(cohort)} records" in rescored.output
        assert snapshot(postgres_url, live) == before
        shadowed = snapshot(postgres_url, shadow)
        assert len(shadowed["events"]) == len(cohort)
        assert shadowed["predictions"]
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(drop)

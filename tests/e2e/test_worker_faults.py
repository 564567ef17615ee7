"""The worker under faults, judged by event ids: every produced event stored, none twice.

Lag, watermarks and a learner's state against its stored answers can all agree while events are
missing (a state that skipped a record skipped it in both; Tansu's high watermark under-counts),
so these tests compare the set of event ids produced with the set stored.

Around a rebalance Faust can drop records it fetched and go on past them (a hole in a
partition's delivery), and before the worker's fixes its commit rule could pass them: a single
record was lost, or a partition kept records nobody delivered until the next rebalance (the
"stalled replacement"). The cause is in the client, not the embedded broker: a plain aiokafka
group consumer on the same broker, through joins and leaves, gets every offset in order. The
worker reads its partitions again from the commit when it sees a hole or a stall
(``tutorstream_partition_seeks_total``); the source records skip Faust's stream buffers, which
it clears on every flow resume (``streams.handover``). These tests run in ``make test``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from common.kafka import consumer_config, producer_config
from common.settings import DEV_PSEUDONYM_KEY
from schemas.normalise import normalise, pseudonymiser_for
from schemas.topics import LMS_EVENTS
from tutorstream.chaos import TABLES
from tutorstream.cohort import labelled_cohort

pytestmark = pytest.mark.e2e

KILLS = int(os.environ.get("TUTORSTREAM_E2E_KILLS", "4"))
"""SIGKILLs per run of the kill test (the fault suite runs more)."""
LEARNERS = int(os.environ.get("TUTORSTREAM_E2E_LEARNERS", "60"))
"""Learners of the kill test's class (60 learners make about 12,000 events)."""


def _stored_ids(pipeline: Any) -> set[str]:
    return {row[0] for row in pipeline.rows("SELECT event_id FROM events")}


def _duplicates(pipeline: Any) -> dict[str, int]:
    return {
        table: int(pipeline.scalar(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}"))
        for table, key in TABLES.items()
    }


def _wait_for_ids(pipeline: Any, produced: set[str], timeout: float) -> set[str]:
    """Poll until every produced id is stored, or until ``timeout`` passes with no progress."""
    stored: set[str] = set()
    last_change, last_count = time.monotonic(), -1
    while time.monotonic() - last_change < timeout:
        stored = _stored_ids(pipeline)
        if produced <= stored:
            return stored
        if len(stored) != last_count:
            last_change, last_count = time.monotonic(), len(stored)
        time.sleep(0.5)
    return stored


def _wait_until_committed(pipeline: Any, count: int, timeout: float = 180.0) -> None:
    """Poll until the worker's group has committed ``count`` records of the raw topic."""
    topic = pipeline.topic("lms.events.v1")
    group = Consumer(consumer_config(pipeline.bootstrap, pipeline.app_id))
    try:
        wanted = [TopicPartition(topic, p) for p in range(LMS_EVENTS.partitions)]
        deadline = time.monotonic() + timeout
        total = -1
        while time.monotonic() < deadline:
            total = sum(max(0, tp.offset) for tp in group.committed(wanted, timeout=10))
            if total >= count:
                return
            time.sleep(0.5)
    finally:
        group.close()
    pytest.fail(f"the group committed {total} of {count} records\n{pipeline.log_tail()}")


def _keyed_as_producers_do(events: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    """Records keyed by learner pseudonym, as ``tutorstream produce`` keys them; one learner
    in four keyed by its LMS id instead, so the worker forwards those to their partition."""
    pseudonym = pseudonymiser_for(DEV_PSEUDONYM_KEY.encode())
    out: list[tuple[bytes | None, bytes]] = []
    for event in events:
        value = orjson.dumps(event)
        lms_id = str(event["learner_id"])
        if zlib.crc32(lms_id.encode()) % 4:
            out.append((normalise(value, pseudonym)[0].learner_id.encode(), value))
        else:
            out.append((lms_id.encode(), value))
    return out


def test_worker_killed_at_random_points_stores_every_event(pipeline: Any) -> None:
    """SIGKILL the worker at random moments of its batches, again and again.

    Each busy kill lands wherever the worker is: normalising, scoring, in the store's
    transaction, sending, writing the changelog or waiting for the broker's confirmations;
    sometimes the replacement starts before the kill, so it joins a group whose member is
    still alive and then dies (two rebalances), sometimes after. A quiet kill comes once
    everything so far is stored and committed, and the next stretch is produced before the
    replacement starts: its first fetch holds records nobody has processed yet. Every
    produced event id must end up stored exactly once.
    """
    rng = random.Random(int(os.environ.get("TUTORSTREAM_E2E_SEED", "0")) or None)
    start = datetime.now(UTC) - timedelta(days=1)
    seed = rng.randrange(1 << 30)
    events = [e for e, _ in labelled_cohort(LEARNERS, 40, seed, start=start)]
    produced = {str(e["event_id"]) for e in events}
    assert len(produced) == len(events)
    records = _keyed_as_producers_do(events)
    step = len(records) // (KILLS + 1) + 1
    stretches = [records[k : k + step] for k in range(0, len(records), step)]
    worker = pipeline.start_worker()
    pipeline.produce(stretches[0])
    sent = len(stretches[0])
    for kill, stretch in enumerate(stretches[1:]):
        if kill % 2:
            _wait_until_committed(pipeline, sent)
            pipeline.kill(worker)
            pipeline.produce(stretch)
            worker = pipeline.start_worker()
        else:
            pipeline.produce(stretch)
            # somewhere in this stretch, at a random moment of a batch's life
            pipeline.wait_for("SELECT count(*) FROM events", sent + rng.randrange(len(stretch)))
            time.sleep(rng.uniform(0.0, 0.5))
            if rng.random() < 0.5:
                replacement = pipeline.start_worker()
                pipeline.kill(worker)
            else:
                pipeline.kill(worker)
                replacement = pipeline.start_worker()
            worker = replacement
        sent += len(stretch)
    stored = _wait_for_ids(pipeline, produced, timeout=120.0)
    missing = produced - stored
    assert not missing, (
        f"{len(missing)} of {len(produced)} produced events never stored, e.g. "
        f"{sorted(missing)[:5]}\n{pipeline.log_tail()}"
    )
    assert stored == produced
    time.sleep(2.0)  # a late duplicate would land now
    assert _duplicates(pipeline) == dict.fromkeys(TABLES, 0)


def test_workers_joining_and_leaving_under_a_backlog_store_every_event(pipeline: Any) -> None:
    """Rebalances while the worker is saturated: a worker joins, another joins, one leaves.

    Each rebalance lands while the stream buffers are full: Faust clears them when the flow
    resumes, and a fetch it was iterating carries on past its seek. Every produced event id
    must end up stored exactly once.
    """
    rng = random.Random(int(os.environ.get("TUTORSTREAM_E2E_SEED", "0")) or None)
    start = datetime.now(UTC) - timedelta(days=1)
    events = [e for e, _ in labelled_cohort(80, 60, rng.randrange(1 << 30), start=start)]
    produced = {str(e["event_id"]) for e in events}
    pipeline.produce(_keyed_as_producers_do(events))  # the backlog, before any worker
    first = pipeline.start_worker()
    total = len(events)
    pipeline.wait_for("SELECT count(*) FROM events", total // 10)
    pipeline.start_worker()  # joins
    pipeline.wait_for("SELECT count(*) FROM events", total * 3 // 10)
    pipeline.start_worker()  # joins
    pipeline.wait_for("SELECT count(*) FROM events", total // 2)
    pipeline.kill(first, signal.SIGTERM)  # leaves
    stored = _wait_for_ids(pipeline, produced, timeout=120.0)
    missing = produced - stored
    assert not missing, (
        f"{len(missing)} of {len(produced)} produced events never stored, e.g. "
        f"{sorted(missing)[:5]}\n{pipeline.log_tail()}"
    )
    time.sleep(2.0)  # a late duplicate would land now
    assert _duplicates(pipeline) == dict.fromkeys(TABLES, 0)


_CRASH_THIRD_BATCH = """
import streams.app as _app

_process, _calls = _app.Worker.process, 0


async def _crashing(self, messages):
    global _calls
    _calls += 1
    if _calls == 3:
        raise RuntimeError("injected: a bug escapes the batch")
    await _process(self, messages)


_app.Worker.process = _crashing
"""
"""Makes the worker's third batch raise out of the agent, as a bug outside a record would."""


def test_an_agent_that_crashes_is_restarted_and_reads_again_from_the_commit(
    pipeline: Any,
) -> None:
    """An exception that escapes a batch crashes the agent, and Faust's supervisor restarts it.

    The failed batch was taken from the queue and never acked, and records after it wait in
    the queue: the restarted agent must drop them and read again from the commit at once, in
    order. Taking the queue as it stood, the worker would pass the failed batch, and only
    the stall watch would bring it back, later and out of order (hundreds of records "taken
    late"). The fault is injected into the worker's own process (the test's prelude makes
    its third batch raise); the broker, database and model are real.
    """
    rng = random.Random(int(os.environ.get("TUTORSTREAM_E2E_SEED", "0")) or None)
    start = datetime.now(UTC) - timedelta(days=1)
    events = [e for e, _ in labelled_cohort(LEARNERS, 40, rng.randrange(1 << 30), start=start)]
    produced = {str(e["event_id"]) for e in events}
    pipeline.produce(_keyed_as_producers_do(events))  # a backlog: batches queue behind the crash
    worker = pipeline.start_worker(prelude=_CRASH_THIRD_BATCH)
    stored = _wait_for_ids(pipeline, produced, timeout=120.0)
    missing = produced - stored
    assert not missing, (
        f"{len(missing)} of {len(produced)} produced events never stored, e.g. "
        f"{sorted(missing)[:5]}\n{pipeline.log_tail()}"
    )
    assert "injected: a bug escapes the batch" in pipeline.log_tail(10**7)
    assert worker.poll() is None, "the worker process must outlive its agent's crash"
    seeks = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in pipeline.metrics().splitlines()
        if line.startswith("tutorstream_partition_seeks_total{")
    }
    # at once on the restart, not later through the stall watch's slower rescue
    assert {reason: n for reason, n in seeks.items() if n} == {"restart": 1.0}
    time.sleep(2.0)  # a late duplicate would land now
    assert _duplicates(pipeline) == dict.fromkeys(TABLES, 0)


def _bad_records(rng: random.Random, oversized: int) -> list[tuple[bytes | None, bytes, str]]:
    """Bad records of every kind, each with what kind it is."""
    actorless = {
        "id": "6f1c2c5e-8f5e-4d2e-9a3b-2f0c9c1d7e10",
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "https://lms.example/items/1"},
        "timestamp": "2026-01-01T10:00:00Z",
    }
    wrong_types = {
        "event_id": "bad-types",
        "learner_id": "s-1",
        "event_type": "answer_submit",
        "timestamp": "2026-01-01T10:00:00Z",
        "attempt": "three",
    }
    good_json = orjson.dumps(wrong_types | {"attempt": 3})
    out: list[tuple[bytes | None, bytes, str]] = [
        (b"k", good_json[: len(good_json) // 2], "truncated json"),
        (b"k", orjson.dumps(wrong_types), "wrong types"),
        (b"k", orjson.dumps(actorless), "missing actor"),
        (b"k", rng.randbytes(300), "random bytes"),
        (b"k", b"[1, 2, 3]", "wrong shape"),
        (b"k", b'"a string"', "wrong shape"),
        (b"k", b"[" * 100_000 + b"]" * 100_000, "deeply nested"),
        (None, b"", "empty"),
        (b"k", b"\xff\xfe" + "é".encode("utf-16-le") * 10, "not utf-8"),
    ]
    for n in range(oversized):
        if n % 2:
            value = rng.randbytes(2 * 1024 * 1024)
        else:
            value = b'{"event_id": "huge-%d", "padding": "' % n + b"a" * (2 * 1024 * 1024) + b'"}'
        out.append((b"k", value, "oversized"))
    return out


def test_bad_records_of_every_kind_reach_the_dlq_and_cost_no_good_event(
    pipeline: Any, read_topic: Any
) -> None:
    """Every bad record, 2 MB ones included, is dead-lettered once; every good one stored once.

    A 2 MB record's dead letter (about 2.8 MB) is over the producer's 1 MB request limit: it
    goes out truncated, with the record's size and SHA-256, and the whole record is in the
    store under that hash. The worker never crashes (Faust would ack what it held), and its
    DLQ metric counts what the topic holds.
    """
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=1)
    events = [e for e, _ in labelled_cohort(20, 20, 5, start=start)]
    good = pipeline.native_records(events)
    bad = _bad_records(rng, oversized=4)
    mixed: list[tuple[bytes | None, bytes]] = list(good)
    for key, value, _ in bad:
        mixed.insert(rng.randrange(len(mixed) + 1), (key, value))
    worker = pipeline.start_worker()
    producer = Producer(producer_config(pipeline.bootstrap, **{"message.max.bytes": 8_000_000}))
    for key, value in mixed:
        producer.produce(pipeline.topic("lms.events.v1"), key=key, value=value)
        producer.poll(0)
    assert producer.flush(60) == 0

    produced = {str(e["event_id"]) for e in events}
    stored = _wait_for_ids(pipeline, produced, timeout=120.0)
    assert stored == produced, f"{len(produced - stored)} good events missing"
    letters = [
        orjson.loads(m.value())
        for m in read_topic(pipeline.topic("lms.events.dlq.v1"), len(bad), timeout=120.0)
    ]
    whole = {base64.b64decode(d["original_b64"]): d for d in letters if not d["truncated"]}
    cut = {d["original_sha256"]: d for d in letters if d["truncated"]}
    kept = dict(pipeline.rows("SELECT sha256, payload FROM dead_letter_payloads"))
    for _, value, kind in bad:
        if kind == "oversized":
            digest = hashlib.sha256(value).hexdigest()
            letter = cut[digest]
            assert letter["original_size"] == len(value)
            assert "truncated" in letter["error_reason"] and digest in letter["error_reason"]
            assert value.startswith(base64.b64decode(letter["original_b64"]))
            assert bytes(kept[digest]) == value
            fetched = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from tutorstream.cli import main; main()",
                    "dlq",
                    "payload",
                    digest,
                ],
                env=pipeline.env(),
                capture_output=True,
                check=True,
                timeout=120,
            )
            assert fetched.stdout == value
        else:
            assert whole[value]["error_reason"], kind
    assert len(whole) + len(cut) == len(bad)
    assert _duplicates(pipeline) == dict.fromkeys(TABLES, 0)

    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in pipeline.metrics().splitlines()
        if line.startswith("tutorstream_dlq_total{")
    )
    assert counted == len(bad)
    assert worker.poll() is None, "the worker must survive bad records"
    assert "Crashed" not in pipeline.log_tail(10**7)


def _probe(pipeline: Any, path: str, index: int = 0) -> tuple[int, dict[str, Any]]:
    try:
        response = httpx.get(f"http://127.0.0.1:{pipeline.ports[index]}{path}", timeout=5)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json()


def _wait_for_probe(
    pipeline: Any, path: str, status: int, timeout: float = 120.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: tuple[int, dict[str, Any]] = (0, {})
    while time.monotonic() < deadline:
        seen = _probe(pipeline, path)
        if seen[0] == status:
            return seen[1]
        time.sleep(0.5)
    pytest.fail(f"{path} answered {seen}, never {status}\n{pipeline.log_tail()}")


def test_worker_probes_say_alive_and_ready_and_not_ready_without_its_store(
    pipeline: Any, tmp_path: Any
) -> None:
    """``/healthz`` answers while the process runs; ``/readyz`` needs partitions and the store.

    The store here is a PostgreSQL of its own, so the test can stop it: the worker stays alive
    (``/healthz`` 200) and says it is not ready (``/readyz`` 503, database false) until the
    database is back.
    """
    from streams.store import migrate
    from tutorstream import services

    port = services.free_port()
    data, logs = tmp_path / "pg", tmp_path / "pglogs"
    logs.mkdir()
    server = services.start_postgres(data, logs, port=port)
    try:
        migrate(server.url)
        pipeline.database_url = server.url
        pipeline.schema = "public"
        pipeline.start_worker()
        assert _wait_for_probe(pipeline, "/healthz", 200) == {"status": "ok"}
        ready = _wait_for_probe(pipeline, "/readyz", 200)
        assert ready["checks"] == {"partitions": True, "database": True}

        server.stop()
        down = _wait_for_probe(pipeline, "/readyz", 503)
        assert down["checks"] == {"partitions": True, "database": False}
        assert _probe(pipeline, "/healthz")[0] == 200
        assert pipeline.workers[0].poll() is None

        server = services.start_postgres(data, logs, port=port)
        assert _wait_for_probe(pipeline, "/readyz", 200)["checks"]["database"] is True
    finally:
        server.stop()

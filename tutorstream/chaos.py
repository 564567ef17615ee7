"""The fault suite on a private embedded stack: ``tutorstream chaos``.

Each fault runs on its own topics (a prefix), schema and consumer group of one broker and one
PostgreSQL started for the run, with workers started as ``tutorstream worker`` processes:

- ``kill``: the worker SIGKILLed at random moments of its batches, again and again; the
  replacement sometimes starts before the kill (it joins a group whose member is still
  alive), sometimes after;
- ``outage``: PostgreSQL stopped for a while under a steady offered load, then started again;
- ``bad``: bad records of every kind (truncated JSON, wrong types, a statement without actor,
  random bytes, JSON of the wrong shape, nesting too deep, empty, not UTF-8, and 2 MB records)
  among the good ones;
- ``rebalance``: a second worker joins mid-stream and the first one leaves.

Every fault is judged by event ids, not counts or lag (the embedded broker's high watermark
under-counts): produced against stored, duplicates in every table and on the interventions
topic, the DLQ topic against the DLQ metric, and learners whose state disagrees with the
answers stored for them.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from common.kafka import consumer_config, producer_config
from inference.features import EVENT_FEATURE_INDEX
from schemas.pseudonym import Pseudonymiser
from schemas.topics import LMS_EVENTS, LMS_EVENTS_DLQ, TUTOR_INTERVENTIONS, prefixed
from streams.learner_state import LearnerRecord
from streams.store import migrate
from tutorstream import kafka, services
from tutorstream.cohort import generate_cohort
from tutorstream.settings import Settings

Progress = Callable[[str], None]
Record = tuple[bytes | None, bytes]

FAULTS = ("kill", "outage", "bad", "rebalance")
"""The faults, in the order they run."""

TABLES = {
    "events": "event_id",
    "features": "event_id",
    "predictions": "event_id",
    "interventions": "intervention_id",
    "recommendations": "event_id",
}
"""Each stored table and the id a row may hold only once."""

OVERSIZED_BYTES = 2 * 1024 * 1024
"""Size of an oversized bad record: twice the producer's default request limit."""

RECOVERIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("delivery holes", re.compile(r"were skipped; reading again from the committed offset")),
    ("reads from the commit", re.compile(r"reading every partition again from its committed")),
    ("records taken late", re.compile(r"(\d+) records taken late")),
    ("batches taken one by one", re.compile(r"records failed \(.*\); taking its records one")),
    ("records sent again", re.compile(r"broker did not take (\d+) records")),
    ("store waits", re.compile(r"store not (?:readable|writable)")),
)
"""The recovery paths a fault can make workers take, as their logs say each was taken: a
clean run shows what it exercised. A pattern with a group counts the number it captures."""


class ChaosError(RuntimeError):
    """Raised when a fault run cannot go on (a worker exited on its own, a service is gone)."""


@dataclass
class FaultReport:
    """What one fault left behind.

    Attributes:
        fault: the fault's name (:data:`FAULTS`).
        produced: good events produced (distinct event ids).
        stored: distinct produced event ids in the ``events`` table.
        missing: produced event ids not stored.
        duplicated: rows beyond the first per id, per table, and intervention ids seen more
            than once on ``tutor.interventions.v1`` (``interventions topic``).
        interventions_stored: rows of ``interventions``.
        interventions_on_topic: distinct intervention ids on the topic.
        bad_records: bad records produced.
        dlq_on_topic: dead letters on the DLQ topic.
        dlq_metric: the sum of ``tutorstream_dlq_total`` over the workers still running at
            the end (a killed worker's counters die with it: compare only where none was).
        payloads_kept: whole payloads of oversized records kept in ``dead_letter_payloads``.
        state_disagrees: learners whose answer count in their state, as the learner table's
            changelog last has it, is not the number of their answers stored (a record lost to
            the state, or counted twice).
        disagreeing: the first of them, each with its stored answers, the count its state
            reached, and the answer after which the stored features' count first went off.
        features_off: learners whose stored feature rows never count as many answers as are
            stored (a row keeps its event's first processing; see ``_features_off``).
        logs: where the workers' logs of a failed fault were kept (empty when it was clean).
        recoveries: how often the workers took each recovery path (:data:`RECOVERIES`), from
            their logs (a SIGKILLed worker's last lines may be missing).
        interventions: what was done (kills, outage seconds, workers joined and left).
        seconds: wall time of the fault, from the first record produced to the last check.
    """

    fault: str
    produced: int = 0
    stored: int = 0
    missing: int = 0
    duplicated: dict[str, int] = field(default_factory=dict)
    interventions_stored: int = 0
    interventions_on_topic: int = 0
    bad_records: int = 0
    dlq_on_topic: int = 0
    dlq_metric: float | None = None
    payloads_kept: int = 0
    state_disagrees: int = 0
    disagreeing: list[dict[str, Any]] = field(default_factory=list)
    features_off: int = 0
    logs: str = ""
    recoveries: dict[str, int] = field(default_factory=dict)
    interventions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the fault left the pipeline whole.

        Nothing missing or twice, one dead letter per bad record, and every learner's state
        agreeing with its stored answers.
        """
        return (
            self.missing == 0
            and not any(self.duplicated.values())
            and self.dlq_on_topic == self.bad_records
            and self.state_disagrees == 0
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return dict(self.__dict__) | {"ok": self.ok}


@dataclass
class ChaosReport:
    """Figures of one ``tutorstream chaos`` run."""

    events: int
    learners: int
    seed: int
    faults: list[FaultReport] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every fault ended :attr:`FaultReport.ok`."""
        return all(f.ok for f in self.faults)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "events": self.events,
            "learners": self.learners,
            "seed": self.seed,
            "machine": self.machine,
            "ok": self.ok,
            "faults": [f.to_dict() for f in self.faults],
        }


def bad_records(count: int, oversized: int, rng: random.Random) -> list[tuple[Record, str]]:
    """Return ``count`` bad records of every kind, ``oversized`` of them 2 MB, with their kind.

    Args:
        count: bad records in all (at least ``oversized``).
        oversized: how many are 2 MB (half JSON with a huge field, half random bytes).
        rng: the source of their bytes.
    """
    wrong_types = {
        "learner_id": "s-1",
        "event_type": "answer_submit",
        "timestamp": "2026-01-01T10:00:00Z",
        "attempt": "three",
    }
    actorless = {
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "https://lms.example/items/1"},
        "timestamp": "2026-01-01T10:00:00Z",
    }
    kinds: list[Callable[[int], Record]] = [
        lambda n: (b"k", orjson.dumps(wrong_types | {"event_id": f"bad-{n}", "attempt": 3})[:40]),
        lambda n: (b"k", orjson.dumps(wrong_types | {"event_id": f"bad-{n}"})),
        lambda n: (b"k", orjson.dumps(actorless | {"id": str(uuid.UUID(int=n))})),
        lambda n: (b"k", rng.randbytes(64 + n % 512)),
        lambda n: (b"k", orjson.dumps([n, 2, 3])),
        lambda n: (b"k", orjson.dumps(f"a string {n}")),
        lambda n: (b"k", b"[" * 100_000 + b"]" * 100_000),
        lambda n: (None, b""),
        lambda n: (b"k", b"\xff\xfe" + f"bad {n} \u00e9".encode("utf-16-le")),
    ]
    names = [
        "truncated json",
        "wrong types",
        "missing actor",
        "random bytes",
        "wrong shape",
        "wrong shape",
        "deeply nested",
        "empty",
        "not utf-8",
    ]
    out: list[tuple[Record, str]] = []
    for n in range(oversized):
        if n % 2:
            value = rng.randbytes(OVERSIZED_BYTES)
        else:
            value = b'{"event_id": "huge-%d", "padding": "' % n + b"a" * OVERSIZED_BYTES + b'"}'
        out.append(((b"k", value), "oversized"))
    for n in range(max(0, count - oversized)):
        out.append((kinds[n % len(kinds)](n), names[n % len(names)]))
    return out


class _Pipeline:
    """One fault's topics, schema, consumer group and workers on the run's broker and store."""

    def __init__(
        self, bootstrap: str, database_url: str, root: Path, name: str, loglevel: str = "warning"
    ) -> None:
        self.bootstrap = bootstrap
        self.loglevel = loglevel
        self.database_url = database_url
        self.schema = f"chaos_{name}_{uuid.uuid4().hex[:6]}"
        self.prefix = f"chaos-{name}-{uuid.uuid4().hex[:6]}."
        self.app_id = f"chaos-{name}-{uuid.uuid4().hex[:6]}"
        self.root = root / name
        self.root.mkdir(parents=True)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        kafka.create_topics(bootstrap, prefixed(self.prefix))
        migrate(database_url, schema=self.schema)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def start_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        port = services.free_port()
        env = dict(os.environ) | {
            "TUTORSTREAM_KAFKA_BOOTSTRAP": self.bootstrap,
            "TUTORSTREAM_DATABASE_URL": self.database_url,
            "TUTORSTREAM_STORE__DB_SCHEMA": self.schema,
            "TUTORSTREAM_TOPIC_PREFIX": self.prefix,
            "TUTORSTREAM_APP_ID": self.app_id,
            "TUTORSTREAM_DATA_DIR": str(self.root / f"streams-{n}"),
        }
        worker = subprocess.Popen(
            services.worker_command(port, self.loglevel),
            env=env,
            stdout=(self.root / f"worker-{n}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(worker)
        self.ports.append(port)
        return worker

    @staticmethod
    def stop(worker: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if worker.poll() is None:
            os.killpg(worker.pid, sig)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)

    def stop_all(self) -> None:
        for worker in self.workers:
            self.stop(worker, signal.SIGTERM)

    def check_workers(self) -> None:
        for worker in self.workers:
            code = worker.poll()
            if code is not None and code not in (0, -signal.SIGKILL, -signal.SIGTERM):
                raise ChaosError(
                    f"a worker exited with {code}; its log: {self.root}/worker-"
                    f"{self.workers.index(worker)}.log"
                )

    def query(self, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'SET search_path = "{self.schema}", public')
            return conn.execute(sql, params).fetchall()

    def stored(self) -> int:
        try:
            return int(self.query("SELECT count(*) FROM events")[0][0])
        except psycopg.OperationalError:
            return -1  # the database is down (the outage fault)

    def wait_for_stored(self, count: int, progress: Progress, timeout: float = 900.0) -> None:
        deadline = time.monotonic() + timeout
        last = 0.0
        while time.monotonic() < deadline:
            self.check_workers()
            done = self.stored()
            if done >= count:
                return
            if time.monotonic() - last >= 5:
                progress(f"    {max(done, 0):,} stored, waiting for {count:,}")
                last = time.monotonic()
            time.sleep(0.25)
        raise ChaosError(f"{self.stored():,} events stored after {timeout:.0f}s, {count:,} due")

    def metric(self, name: str) -> float | None:
        total, seen = 0.0, False
        for worker, port in zip(self.workers, self.ports, strict=True):
            if worker.poll() is not None:
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    page = r.read().decode()
            except OSError:
                continue
            seen = True
            for value in re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", page, re.M):
                total += float(value)
        return total if seen else None


def _keyed(events: Sequence[dict[str, Any]], pseudonymiser: Pseudonymiser) -> list[Record]:
    """Return records keyed as producers key them.

    By pseudonym, one learner in four by LMS id (the worker forwards those to their learner's
    partition).
    """
    out: list[Record] = []
    keys: dict[str, bytes] = {}
    for event in events:
        lms_id = str(event["learner_id"])
        key = keys.get(lms_id)
        if key is None:
            key = keys[lms_id] = (
                pseudonymiser.native_learner(lms_id).encode()
                if zlib.crc32(lms_id.encode()) % 4
                else lms_id.encode()
            )
        out.append((key, orjson.dumps(event)))
    return out


def _produce(
    bootstrap: str,
    topic: str,
    records: Sequence[Record],
    rate: float = 0.0,
    stop: threading.Event | None = None,
) -> None:
    large: dict[str, Any] = {"message.max.bytes": 8_000_000}  # the oversized bad records
    producer = Producer(producer_config(bootstrap, **large))
    start = time.perf_counter()
    for n, (key, value) in enumerate(records):
        if stop is not None and stop.is_set():
            break
        if rate > 0:
            pause = start + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        kafka.produce_waiting(producer, topic, key, value)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise ChaosError(f"the broker did not take every record for {topic}")


def _read_all(
    bootstrap: str, topic: str, settle: float = 3.0, timeout: float = 300.0
) -> list[bytes]:
    """Every record's value on ``topic``, read until ``settle`` seconds bring nothing new."""
    return [value for _, _, _, value in _read_records(bootstrap, topic, settle, timeout)]


def _read_keyed(
    bootstrap: str, topic: str, settle: float = 3.0, timeout: float = 300.0
) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` as ``(key, value)``, each partition in its order."""
    return [(key, value) for _, _, key, value in _read_records(bootstrap, topic, settle, timeout)]


def _read_records(
    bootstrap: str, topic: str, settle: float = 3.0, timeout: float = 300.0
) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every record of ``topic`` as ``(partition, offset, key, value)``, read to a quiet end."""
    partitions = kafka.wait_for_topics(bootstrap, [topic])[topic]
    consumer = Consumer(consumer_config(bootstrap, f"chaos-read-{uuid.uuid4().hex}"))
    records: list[tuple[int, int, bytes | None, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < settle:
            batch = consumer.consume(num_messages=10_000, timeout=0.2)
            for message in batch:
                partition, offset = message.partition(), message.offset()
                if message.error() is None and partition is not None and offset is not None:
                    records.append((partition, offset, message.key(), message.value() or b""))
            if batch:
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return records


def _wait_for_ids(
    pipe: _Pipeline, produced: set[str], progress: Progress, quiet_s: float
) -> set[str]:
    """Poll the stored ids until all are there or ``quiet_s`` pass with no new one."""
    stored: set[str] = set()
    last_change, last_count, last_print = time.monotonic(), -1, 0.0
    while time.monotonic() - last_change < quiet_s:
        pipe.check_workers()
        try:
            stored = {row[0] for row in pipe.query("SELECT DISTINCT event_id FROM events")}
        except psycopg.OperationalError:
            stored = set()
        here = len(produced & stored)
        if here == len(produced):
            return stored
        if here != last_count:
            last_change, last_count = time.monotonic(), here
        if time.monotonic() - last_print >= 5:
            progress(f"    {here:,} of {len(produced):,} stored")
            last_print = time.monotonic()
        time.sleep(1.0)
    return stored


def _interventions_on_topic(pipe: _Pipeline) -> Counter[str]:
    return Counter(
        str(orjson.loads(value).get("intervention_id"))
        for value in _read_all(pipe.bootstrap, pipe.topic(TUTOR_INTERVENTIONS.name))
    )


def _wait_for_outbox(pipe: _Pipeline, progress: Progress, timeout: float = 60.0) -> None:
    """Wait until every stored intervention is on its topic, or ``timeout`` passes.

    A worker killed between storing an intervention and publishing it leaves it to the
    replacement's outbox sweep (after ``TUTORSTREAM_OUTBOX_GRACE_S``).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = {row[0] for row in pipe.query("SELECT intervention_id FROM interventions")}
        if stored <= set(_interventions_on_topic(pipe)):
            return
        progress(f"    waiting for the outbox: {len(stored):,} interventions stored")
        time.sleep(2.0)


def _wait_for_commits(pipe: _Pipeline, progress: Progress, timeout: float = 600.0) -> None:
    """Wait until the group has committed every record of the stream and its re-key topic.

    Every event may be stored while a replacement still takes again the records its killed
    predecessor stored but had not yet covered by a snapshot: those bring its state up to
    the rows, and a record is committed only once the snapshot after it is on the
    changelog. The ends are counted by reading each topic (the embedded broker's high
    watermark can fall short).
    """
    topics = [pipe.topic(LMS_EVENTS.name), f"{pipe.app_id}-events-rekeyed"]
    ends = {tp: end for topic in topics for tp, end in _end_offsets(pipe.bootstrap, topic).items()}
    consumer = Consumer(consumer_config(pipe.bootstrap, pipe.app_id))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            committed = consumer.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
            short = sum(
                max(0, ends[(tp.topic, tp.partition)] - max(tp.offset, 0)) for tp in committed
            )
            if not short:
                return
            progress(f"    waiting for the group's commits: {short:,} records behind")
            time.sleep(2.0)
    finally:
        consumer.close()


def _end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    """One past the last offset of each partition of ``topic`` holding records, as read."""
    ends: dict[tuple[str, int], int] = {}
    for partition, offset, _, _ in _read_records(bootstrap, topic):
        ends[(topic, partition)] = max(ends.get((topic, partition), 0), offset + 1)
    return ends


def _judge(
    pipe: _Pipeline,
    report: FaultReport,
    produced: set[str],
    progress: Progress,
    quiet_s: float,
) -> None:
    _wait_for_ids(pipe, produced, progress, quiet_s)
    # a late duplicate (a batch redone by a replacement) would land by now
    time.sleep(2.0)
    report.dlq_metric = pipe.metric("tutorstream_dlq_total")
    _wait_for_outbox(pipe, progress)
    _wait_for_commits(pipe, progress)
    # what is counted below must not move while it is counted
    pipe.stop_all()
    stored = {row[0] for row in pipe.query("SELECT DISTINCT event_id FROM events")}
    report.produced = len(produced)
    report.stored = len(produced & stored)
    report.missing = len(produced - stored)
    for table, key in TABLES.items():
        rows = pipe.query(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}")
        report.duplicated[table] = int(rows[0][0])
    report.interventions_stored = int(pipe.query("SELECT count(*) FROM interventions")[0][0])
    on_topic = _interventions_on_topic(pipe)
    report.interventions_on_topic = len(on_topic)
    report.duplicated["interventions topic"] = sum(n - 1 for n in on_topic.values())
    report.dlq_on_topic = len(_read_all(pipe.bootstrap, pipe.topic(LMS_EVENTS_DLQ.name)))
    report.payloads_kept = int(pipe.query("SELECT count(*) FROM dead_letter_payloads")[0][0])
    answers = _stored_answers(pipe)
    report.disagreeing = _state_disagreements(pipe, answers)
    report.state_disagrees = len(report.disagreeing)
    report.features_off = _features_off(pipe, answers)
    if report.disagreeing:
        try:
            _write_learner_histories(pipe, [str(e["learner"]) for e in report.disagreeing[:3]])
        except Exception as err:  # evidence for a failure must not hide the failure
            progress(f"  could not write the disagreeing learners' histories: {err}")


def _state_disagreements(
    pipe: _Pipeline, answers: dict[str, int], most: int = 20
) -> list[dict[str, Any]]:
    """Learners whose state, as the table's changelog last has it, counts other answers.

    A record lost to the state leaves its count short; one counted twice passes it. For the
    first ``most`` of them, the stored answer rows in the order their features counted them
    show where that count first left 1, 2, 3... (see :func:`_features_off`).
    """
    states: dict[str, int] = {}
    for key, value in _read_keyed(pipe.bootstrap, f"{pipe.app_id}-learners-changelog"):
        if key is not None and value:
            states[orjson.loads(key)] = LearnerRecord.from_bytes(value).features.n_answers
    found: list[dict[str, Any]] = [
        {"learner": learner, "answers_stored": count, "answers_in_state": states.get(learner)}
        for learner, count in answers.items()
        if states.get(learner) != count
    ]
    column = EVENT_FEATURE_INDEX["experience"] + 1  # SQL arrays count from 1
    for entry in found[:most]:
        rows = pipe.query(
            f"SELECT e.event_id, e.time, f.vector[{column}] FROM events e JOIN features f "
            "USING (event_id, time) WHERE e.learner_id = %s "
            "AND e.event_type = 'answer_submit' ORDER BY 3, e.time",
            (entry["learner"],),
        )
        counts = [_answers_counted(v) for _, _, v in rows]
        entry["answers_in_features"] = max(counts, default=0)
        for k, n in enumerate(counts, start=1):
            if n != k:
                before = rows[k - 2] if k > 1 else None
                entry["first_off"] = {
                    "rank": k,
                    "counted": n,
                    "after_event": None if before is None else str(before[0]),
                    "after_time": None if before is None else before[1].isoformat(),
                }
                break
    return found


def _write_learner_histories(pipe: _Pipeline, learners: Sequence[str]) -> None:
    """Write where each disagreeing learner's state went, for the logs kept beside the report.

    Per learner (``learner-<pseudonym>.txt``): every value its changelog held (answers and
    events counted, ids remembered, the dedupe horizon, the offsets taken per source), its
    stored events with the answer count each first processing saw, and where each event sits
    on the stream and on the re-key topic. Each topic is read once for all of them.
    """
    states: dict[str, list[str]] = {learner: [] for learner in learners}
    for partition, offset, key, value in _read_records(
        pipe.bootstrap, f"{pipe.app_id}-learners-changelog"
    ):
        lines = None if key is None or not value else states.get(orjson.loads(key))
        if lines is None:
            continue
        state = LearnerRecord.from_bytes(value)
        lines.append(
            f"  {partition}@{offset}: {state.features.n_answers} answers, {state.events} events, "
            f"{len(state.seen)} ids remembered, forgotten up to {state.forgotten_upto:.0f}, "
            f"offsets {state.offsets}"
        )
    column = EVENT_FEATURE_INDEX["experience"] + 1
    rows = {
        learner: pipe.query(
            f"SELECT e.event_id, e.time, e.event_type, f.vector[{column}] FROM events e "
            "LEFT JOIN features f USING (event_id, time) WHERE e.learner_id = %s ORDER BY e.time",
            (learner,),
        )
        for learner in learners
    }
    ids = {str(row[0]) for stored in rows.values() for row in stored}
    where: dict[str, list[str]] = {}
    for topic, label in (
        (pipe.topic(LMS_EVENTS.name), "stream"),
        (f"{pipe.app_id}-events-rekeyed", "re-key"),
    ):
        for partition, offset, _, value in _read_records(pipe.bootstrap, topic):
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                event_id = str(orjson.loads(value).get("event_id"))
                if event_id in ids:
                    where.setdefault(event_id, []).append(f"{label} {partition}@{offset}")
    for learner in learners:
        lines = [f"learner {learner}", "", "changelog: partition@offset, its values in order"]
        lines += states[learner]
        lines += ["", "stored events in time order: id, time (epoch s), type, answers counted"]
        for event_id, at, event_type, experience in rows[learner]:
            counted = "" if experience is None else _answers_counted(experience)
            lines.append(
                f"  {event_id} {at.timestamp():.0f} {event_type} {counted} "
                + ", ".join(where.get(str(event_id), []))
            )
        out = pipe.root / f"learner-{learner[:16]}.txt"
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _answers_counted(experience: float) -> int:
    """The answers a state had taken, from a feature row's ``experience`` (its inverse)."""
    return round(math.expm1(float(experience) * math.log(1001.0)))


def _stored_answers(pipe: _Pipeline) -> dict[str, int]:
    return dict(
        pipe.query(
            "SELECT learner_id, count(*) FROM events WHERE event_type = 'answer_submit' "
            "GROUP BY learner_id"
        )
    )


def _features_off(pipe: _Pipeline, answers: dict[str, int]) -> int:
    """Learners whose stored feature rows never reach the number of answers stored.

    The ``experience`` feature is ``log1p(answers) / log(1001)`` of the answers the state had
    taken. A row is stored by the first processing of its event (the sinks keep the first
    write), so where records were taken out of order (late, after a hole) and a worker died
    before its state reached the changelog, the replacement counts them in another order
    and some rows keep the first count: this can be off while the state is right.
    """
    column = EVENT_FEATURE_INDEX["experience"] + 1
    reached = dict(pipe.query(f"SELECT learner_id, max(vector[{column}]) FROM features GROUP BY 1"))
    off = 0
    for learner, count in answers.items():
        value = reached.get(learner)
        expected = math.log1p(count) / math.log(1001.0)
        if value is None or not math.isclose(value, expected, rel_tol=1e-6):
            off += 1
    return off


def _fault_kill(
    pipe: _Pipeline,
    records: list[Record],
    report: FaultReport,
    rng: random.Random,
    kills: int,
    progress: Progress,
) -> None:
    step = len(records) // (kills + 1) + 1
    stretches = [records[k : k + step] for k in range(0, len(records), step)]
    worker = pipe.start_worker()
    _produce(pipe.bootstrap, pipe.topic(LMS_EVENTS.name), stretches[0])
    sent = len(stretches[0])
    for n, stretch in enumerate(stretches[1:], start=1):
        _produce(pipe.bootstrap, pipe.topic(LMS_EVENTS.name), stretch)
        # somewhere in this stretch, at a random moment of a batch's life
        pipe.wait_for_stored(sent + rng.randrange(len(stretch)), progress)
        time.sleep(rng.uniform(0.0, 0.5))
        if rng.random() < 0.5:
            replacement = pipe.start_worker()
            pipe.stop(worker)
            how = "replacement started first"
        else:
            pipe.stop(worker)
            replacement = pipe.start_worker()
            how = "replacement started after"
        worker = replacement
        sent += len(stretch)
        report.interventions.append(f"SIGKILL {n} at {max(pipe.stored(), 0):,} stored ({how})")
        progress(f"  SIGKILL {n} of {kills}: {report.interventions[-1]}")


def _produce_behind(pipe: _Pipeline, records: list[Record], rate: float) -> threading.Thread:
    """Produce ``records`` at ``rate`` on a thread of their own while a fault plays out."""
    producing = threading.Thread(
        target=_produce,
        args=(pipe.bootstrap, pipe.topic(LMS_EVENTS.name), records, rate),
        daemon=True,
    )
    producing.start()
    return producing


def _fault_outage(
    pipe: _Pipeline,
    records: list[Record],
    report: FaultReport,
    postgres: services.ServiceHandle,
    restart: Callable[[], services.ServiceHandle],
    outage_s: float,
    rate: float,
    progress: Progress,
) -> services.ServiceHandle:
    pipe.start_worker()
    producing = _produce_behind(pipe, records, rate)
    pipe.wait_for_stored(len(records) // 3, progress)
    progress(f"  stopping PostgreSQL for {outage_s:.0f}s under {rate:,.0f} events/s offered")
    postgres.stop()
    stopped = time.monotonic()
    while time.monotonic() - stopped < outage_s:
        pipe.check_workers()
        time.sleep(0.5)
    postgres = restart()
    report.interventions.append(
        f"PostgreSQL stopped {time.monotonic() - stopped:.0f}s under {rate:,.0f} events/s"
    )
    progress("  PostgreSQL started again")
    producing.join()
    return postgres


def _fault_rebalance(
    pipe: _Pipeline, records: list[Record], report: FaultReport, rate: float, progress: Progress
) -> None:
    first = pipe.start_worker()
    producing = _produce_behind(pipe, records, rate)
    pipe.wait_for_stored(len(records) // 4, progress)
    pipe.start_worker()
    report.interventions.append(f"a worker joined at {max(pipe.stored(), 0):,} stored")
    progress(f"  {report.interventions[-1]}")
    pipe.wait_for_stored(len(records) // 2, progress)
    pipe.stop(first, signal.SIGTERM)
    report.interventions.append(f"the first worker left at {max(pipe.stored(), 0):,} stored")
    progress(f"  {report.interventions[-1]}")
    producing.join()


def run_chaos(
    *,
    events: int,
    learners: int,
    faults: Sequence[str],
    kills: int,
    outage_s: float,
    bad: int,
    oversized: int,
    rate: float,
    seed: int,
    quiet_s: float,
    progress: Progress,
    keep_logs: Path | None = None,
    worker_loglevel: str = "warning",
) -> ChaosReport:
    """Start a private stack and run each of ``faults``; return what each left behind.

    Args:
        events: good events produced per fault.
        learners: learners of the simulated class.
        faults: which of :data:`FAULTS` to run.
        kills: SIGKILLs of the ``kill`` fault.
        outage_s: how long the ``outage`` fault stops PostgreSQL.
        bad: bad records of the ``bad`` fault, ``oversized`` of them 2 MB.
        oversized: 2 MB records among ``bad``.
        rate: events/s offered while PostgreSQL is stopped and while workers come and go.
        seed: seed of the class, the kill points and the bad records.
        quiet_s: how long the final check waits with no new event stored before it counts
            what is missing.
        progress: where progress lines go.
        keep_logs: where the workers' logs of a failed fault are copied (to
            ``<fault>-seed<seed>/``), with the history of its first disagreeing learners;
            the stack's own folder goes when the run ends.
        worker_loglevel: the workers' log level (``info`` also logs Faust's rebalances).

    Raises:
        ChaosError: when a worker exits on its own or a fault cannot go on.
    """
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown faults {unknown}; choose from {', '.join(FAULTS)}")
    rng = random.Random(seed)
    report = ChaosReport(events=events, learners=learners, seed=seed)
    report.machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
    start = datetime.now(UTC) - timedelta(days=1)
    progress(f"simulating a class of {learners} learners, {events:,} events")
    cohort = list(generate_cohort(learners, events, seed, start=start))
    produced = {str(e["event_id"]) for e in cohort}
    records = _keyed(cohort, Pseudonymiser(Settings().pseudonym_key_bytes()))
    with tempfile.TemporaryDirectory(prefix="tutorstream-chaos-") as tmp:
        root = Path(tmp)
        broker = services.start_broker(root)
        pg_port = services.free_port()
        postgres = services.start_postgres(root / "pg", root, port=pg_port, durable=True)

        def restart() -> services.ServiceHandle:
            return services.start_postgres(root / "pg", root, port=pg_port, durable=True)

        try:
            for name in [f for f in FAULTS if f in faults]:
                progress(f"fault {name}")
                pipe = _Pipeline(broker.url, postgres.url, root, name, worker_loglevel)
                fault = FaultReport(fault=name)
                started = time.monotonic()
                good = produced
                try:
                    if name == "kill":
                        _fault_kill(pipe, records, fault, rng, kills, progress)
                    elif name == "outage":
                        postgres = _fault_outage(
                            pipe, records, fault, postgres, restart, outage_s, rate, progress
                        )
                    elif name == "bad":
                        mixed = list(records)
                        letters = bad_records(bad, min(oversized, bad), rng)
                        for record, _ in letters:
                            mixed.insert(rng.randrange(len(mixed) + 1), record)
                        fault.bad_records = len(letters)
                        kinds = Counter(kind for _, kind in letters)
                        fault.interventions.append(
                            "bad records: " + ", ".join(f"{n} {k}" for k, n in kinds.items())
                        )
                        pipe.start_worker()
                        _produce(pipe.bootstrap, pipe.topic(LMS_EVENTS.name), mixed)
                    else:
                        _fault_rebalance(pipe, records, fault, rate, progress)
                    progress("  checking every event id")
                    _judge(pipe, fault, good, progress, quiet_s)
                finally:
                    pipe.stop_all()
                fault.seconds = time.monotonic() - started
                logs = sorted((root / name).glob("worker-*.log"))
                fault.recoveries = recoveries(logs)
                logs += sorted((root / name).glob("learner-*.txt"))
                if not fault.ok and keep_logs is not None:
                    kept = keep_logs / f"{name}-seed{seed}"
                    kept.mkdir(parents=True, exist_ok=True)
                    for log in logs:
                        shutil.copy2(log, kept / log.name)
                    fault.logs = str(kept)
                    progress(f"  the workers' logs are kept in {kept}")
                report.faults.append(fault)
                progress(f"  {name}: {'ok' if fault.ok else 'FAILED'} ({fault.seconds:.0f}s)")
        finally:
            postgres.stop()
            broker.stop()
    return report


def recoveries(logs: Sequence[Path]) -> dict[str, int]:
    """Count the recovery paths the workers of ``logs`` took (see :data:`RECOVERIES`)."""
    counts = dict.fromkeys((name for name, _ in RECOVERIES), 0)
    for log in logs:
        with log.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                for name, pattern in RECOVERIES:
                    found = pattern.search(line)
                    if found is not None:
                        counts[name] += int(found.group(1)) if pattern.groups else 1
    return counts


def runs_by_fault(reports: Sequence[ChaosReport]) -> dict[str, list[FaultReport]]:
    """Return each fault's reports over ``reports``, faults in the order they ran."""
    by_fault: dict[str, list[FaultReport]] = {}
    for report in reports:
        for fault in report.faults:
            by_fault.setdefault(fault.fault, []).append(fault)
    return by_fault


def format_runs(reports: Sequence[ChaosReport]) -> str:
    """Return, per fault, in how many runs it was clean and the worst figures of any run."""
    lines = [f"chaos, {len(reports)} runs of every fault"]
    for name, runs in runs_by_fault(reports).items():
        clean = sum(f.ok for f in runs)
        lines.append(
            f"{name}: {clean} of {len(runs)} runs clean; at worst {max(f.missing for f in runs)} "
            f"missing, {max(sum(f.duplicated.values()) for f in runs)} duplicated, "
            f"{max(abs(f.dlq_on_topic - f.bad_records) for f in runs)} dead letters off, "
            f"{max(f.state_disagrees for f in runs)} learners' state disagreeing; "
            f"{min(f.seconds for f in runs):,.0f}-{max(f.seconds for f in runs):,.0f} s"
        )
        taken = Counter[str]()
        for f in runs:
            taken.update(f.recoveries)
        if any(taken.values()):
            lines.append(
                f"{name}: recovered over the runs: "
                + ", ".join(f"{n:,} {what}" for what, n in taken.items() if n)
            )
    return "\n".join(lines)


def format_table(report: ChaosReport) -> str:
    """Return the report as a printable table, one column per fault."""
    faults = report.faults
    rows: list[tuple[str, list[str]]] = [
        ("produced", [f"{f.produced:,}" for f in faults]),
        ("stored", [f"{f.stored:,}" for f in faults]),
        ("missing", [f"{f.missing:,}" for f in faults]),
    ]
    for table in [*TABLES, "interventions topic"]:
        rows.append((f"duplicated: {table}", [str(f.duplicated.get(table, 0)) for f in faults]))
    rows += [
        ("interventions stored", [f"{f.interventions_stored:,}" for f in faults]),
        ("interventions on topic", [f"{f.interventions_on_topic:,}" for f in faults]),
        ("bad records", [f"{f.bad_records:,}" for f in faults]),
        ("DLQ on topic", [f"{f.dlq_on_topic:,}" for f in faults]),
        (
            "DLQ metric",
            ["-" if f.dlq_metric is None else f"{f.dlq_metric:,.0f}" for f in faults],
        ),
        ("whole payloads kept", [f"{f.payloads_kept:,}" for f in faults]),
        ("learners' state disagrees", [f"{f.state_disagrees:,}" for f in faults]),
        ("feature rows counting otherwise", [f"{f.features_off:,}" for f in faults]),
        *(
            (f"recovered: {what}", [f"{f.recoveries.get(what, 0):,}" for f in faults])
            for what, _ in RECOVERIES
        ),
        ("seconds", [f"{f.seconds:,.0f}" for f in faults]),
        ("verdict", ["ok" if f.ok else "FAILED" for f in faults]),
    ]
    width = max(len(label) for label, _ in rows)
    cols = [max(len(f.fault), *(len(v[i]) for _, v in rows)) for i, f in enumerate(faults)]
    lines = [
        f"chaos, {report.events:,} events from {report.learners} learners per fault, "
        f"seed {report.seed}, {report.machine.get('cpus')} CPUs",
        " " * width + "  " + "  ".join(f.fault.rjust(c) for f, c in zip(faults, cols, strict=True)),
    ]
    for label, values in rows:
        cells = "  ".join(v.rjust(c) for v, c in zip(values, cols, strict=True))
        lines.append(f"{label.ljust(width)}  {cells}")
    for f in faults:
        for line in f.interventions:
            lines.append(f"  {f.fault}: {line}")
        for entry in f.disagreeing:
            off = entry.get("first_off")
            where = (
                f"; the count went off at answer {off['rank']} (counted {off['counted']}), "
                f"after event {off['after_event']} of {off['after_time']}"
                if off
                else ""
            )
            lines.append(
                f"  {f.fault}: learner {entry['learner']}: {entry['answers_stored']} answers "
                f"stored, {entry.get('answers_in_state', '?')} in its state, "
                f"{entry.get('answers_in_features', '?')} in its feature rows{where}"
            )
        if f.logs:
            lines.append(f"  {f.fault}: the workers' logs are in {f.logs}")
    return "\n".join(lines)

"""``tutorstream bench api``: statements accepted per second, and live-feed delivery latency.

Needs httpx (the ``dev`` extra); the command imports this module only when it runs.

The API runs under uvicorn in a process of its own (uvloop, httptools), on loopback, against the
broker and database it is given. Two measurements:

* **ingest**: several concurrent clients POST batches of xAPI statements to
  ``/xapi/statements``; each answer means the batch is validated, stored (pseudonymised) and
  confirmed on ``lms.events.v1``. Reported: statements/s and per-request latency p50/p99. The
  baseline in the same run sends the same records straight to the broker with the API's own
  producer, the same way (batches confirmed, as many at once as there are clients), so the
  ratio is what HTTP, validation, pseudonymisation and the database cost.
* **live feed**: many server-sent event clients are connected; interventions are produced to
  ``tutor.interventions.v1`` and the time from produce to arrival at each client is measured
  (the clients run in this process; the clocks are the same machine's). Two layouts: clients
  spread over classes (each intervention reaches a few), and all clients on one class (each
  intervention reaches all of them). The baseline is a plain consumer of the topic reading the
  same interventions, with no API in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
import psycopg
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaPartition
from psycopg import sql

from api.delivery import PRODUCER_OVERRIDES, Delivery, Outgoing
from api.feed import CONSUMER_OVERRIDES
from api.keys import create_key
from common.kafka import consumer_config, producer_config
from schemas.normalise import pseudonymiser_for
from schemas.records import BehaviouralState, Intervention
from schemas.topics import LMS_EVENTS, TUTOR_INTERVENTIONS
from tutorstream import services
from tutorstream.bench.records import xapi_statement
from tutorstream.bench.report import align, ratio

Progress = Callable[[str], None]

STATEMENTS_FLOOR: Final = 5_000.0
INGEST_P99_FLOOR_MS: Final = 200.0
FEED_P99_FLOOR_MS: Final = 100.0
BENCH_KEY: Final = "tutorstream-bench-pseudonym-key-0123456789"


@dataclass(frozen=True)
class BenchTarget:
    """Where the API under test finds its services (topics and schema already made)."""

    bootstrap: str
    database_url: str
    schema: str
    topic_prefix: str


@dataclass
class BenchPlan:
    """How much to measure.

    Attributes:
        clients: concurrent ingest clients.
        batches: batches sent in the measured ingest run (after a warm-up).
        batch_size: statements per batch.
        feed_clients: live-feed clients connected at once.
        spread_classes: classes the clients are spread over in the first feed layout.
        spread_events: interventions produced in the first layout.
        spread_rate: interventions per second in the first layout.
        one_class_events: interventions produced when every client follows one class.
        one_class_rate: interventions per second then.
    """

    clients: int = 4
    batches: int = 400
    batch_size: int = 100
    feed_clients: int = 1000
    spread_classes: int = 100
    spread_events: int = 300
    spread_rate: float = 30.0
    one_class_events: int = 40
    one_class_rate: float = 4.0

    @classmethod
    def smoke(cls) -> BenchPlan:
        """A run of a few seconds, for CI."""
        return cls(
            clients=2,
            batches=20,
            feed_clients=40,
            spread_classes=8,
            spread_events=30,
            spread_rate=30.0,
            one_class_events=10,
            one_class_rate=5.0,
        )


@dataclass
class Latencies:
    """Latencies in seconds, summarised in milliseconds."""

    values: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Return count, p50, p99 and max (ms)."""
        if not self.values:
            return {"count": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": 0.0}
        ordered = sorted(self.values)

        def pick(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        return {
            "count": len(ordered),
            "p50_ms": round(pick(0.50), 2),
            "p99_ms": round(pick(0.99), 2),
            "max_ms": round(ordered[-1] * 1000, 2),
        }


# ---------------------------------------------------------------------- the server


@contextlib.contextmanager
def api_server(
    target: BenchTarget,
    log_path: Path,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run the API under uvicorn (uvloop, httptools) in a child process; yield its URL.

    ``port`` (a free one when ``None``) and ``extra_env`` serve benchmarks that must know the
    URL beforehand or set more of the API's settings (the console's).
    """
    port = port or services.free_port()
    env = {
        **os.environ,
        "TUTORSTREAM_KAFKA_BOOTSTRAP": target.bootstrap,
        "TUTORSTREAM_DATABASE_URL": target.database_url,
        "TUTORSTREAM_STORE__DB_SCHEMA": target.schema,
        "TUTORSTREAM_TOPIC_PREFIX": target.topic_prefix,
        "TUTORSTREAM_PSEUDONYM_KEY": BENCH_KEY,
        "TUTORSTREAM_API__RATE_PER_S": "0",
        "TUTORSTREAM_API__HEARTBEAT_S": "1",
        "TUTORSTREAM_API__POOL_MAX": "10",
        **(extra_env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:app_from_environment",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the API exited with {process.returncode}; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API was not ready within 60 s; see {log_path}")
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _keys(target: BenchTarget) -> dict[str, str]:
    with psycopg.connect(target.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(target.schema)))
        return {
            "ingest": create_key(conn, "bench ingest", ["ingest"]).token,
            "admin": create_key(conn, "bench admin", ["admin"]).token,
        }


# ---------------------------------------------------------------------- ingest


def statement_batches(count: int, size: int, seed: int = 7) -> list[list[dict[str, Any]]]:
    """Return ``count`` batches of ``size`` realistic xAPI statements, each with a fresh id."""
    rng = random.Random(seed)
    return [[xapi_statement(rng, b * size + i) for i in range(size)] for b in range(count)]


class _ProgressLine:
    def __init__(self, what: str, total: int, unit: str, progress: Progress) -> None:
        self.what, self.total, self.unit, self.progress = what, total, unit, progress
        self.started = self.last = time.monotonic()

    def update(self, done: int, scale: int = 1, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < 2.0:
            return
        self.last = now
        rate = done * scale / max(now - self.started, 1e-9)
        left = (self.total - done) * scale / rate if rate > 0 else float("inf")
        self.progress(
            f"{self.what}: {done:,}/{self.total:,} ({100 * done / max(self.total, 1):.0f}%) "
            f"{rate:,.0f} {self.unit}/s, ETA {left:,.0f} s"
        )


async def _post_batches(
    url: str, token: str, bodies: list[bytes], clients: int, line: _ProgressLine | None, size: int
) -> tuple[Latencies, float, int]:
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Experience-API-Version": "1.0.3",
        "Content-Type": "application/json",
    }
    latencies = Latencies()
    pending = list(reversed(bodies))
    failures = 0
    done = 0

    async def client() -> None:
        nonlocal failures, done
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as http:
            while pending:
                body = pending.pop()
                started = time.perf_counter()
                response = await http.post("/xapi/statements", content=body)
                latencies.values.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures += 1
                done += 1
                if line is not None:
                    line.update(done, size)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    if line is not None:
        line.update(done, size, final=True)
    return latencies, elapsed, failures


async def _direct(
    target: BenchTarget, batches: list[list[dict[str, Any]]], clients: int
) -> tuple[Latencies, float]:
    """Send the same records straight to the broker, batches confirmed, ``clients`` at once."""
    pseudonymiser = pseudonymiser_for(BENCH_KEY.encode())
    topic = f"{target.topic_prefix}{LMS_EVENTS.name}"
    delivery = Delivery(target.bootstrap)
    delivery.start()
    latencies = Latencies()
    records = [
        [
            Outgoing(topic, pseudonymiser.xapi_agent(s["actor"]).encode(), orjson.dumps(s))
            for s in batch
        ]
        for batch in batches
    ]
    pending = list(reversed(records))
    # Warm up as the API was: the producer id and the metadata are obtained once, at start.
    await delivery.send(records[0][:1])

    async def client() -> None:
        while pending:
            batch = pending.pop()
            started = time.perf_counter()
            await delivery.send(batch)
            latencies.values.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        delivery.close()
    return latencies, elapsed


def _ingest(
    url: str, token: str, target: BenchTarget, plan: BenchPlan, progress: Progress
) -> dict[str, Any]:
    warmup = max(4, plan.clients * 2)
    batches = statement_batches(plan.batches + warmup, plan.batch_size)
    bodies = [orjson.dumps(batch) for batch in batches]
    progress(f"ingest: warm-up, {warmup} batches")
    asyncio.run(_post_batches(url, token, bodies[:warmup], plan.clients, None, plan.batch_size))
    line = _ProgressLine("ingest", plan.batches, "statements", progress)
    latencies, elapsed, failures = asyncio.run(
        _post_batches(url, token, bodies[warmup:], plan.clients, line, plan.batch_size)
    )
    statements = plan.batches * plan.batch_size
    with psycopg.connect(target.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(target.schema)))
        row = conn.execute("SELECT count(*) FROM xapi_statements").fetchone()
        stored = int(row[0]) if row else 0
    progress(f"direct to broker: {plan.batches:,} batches, {plan.clients} at once")
    direct_latencies, direct_elapsed = asyncio.run(_direct(target, batches[warmup:], plan.clients))
    api_rate = statements / elapsed
    direct_rate = statements / direct_elapsed
    return {
        "clients": plan.clients,
        "batch_size": plan.batch_size,
        "batches": plan.batches,
        "statements": statements,
        "failed_requests": failures,
        "stored_in_database": stored,
        "elapsed_s": round(elapsed, 3),
        "statements_per_s": round(api_rate, 1),
        "request_latency": latencies.summary(),
        "baseline_direct_to_broker": {
            "statements_per_s": round(direct_rate, 1),
            "batch_latency": direct_latencies.summary(),
        },
        "ratio_api_to_direct": round(ratio(api_rate, direct_rate), 3),
    }


# ---------------------------------------------------------------------- live feed


class _FeedClient:
    """One SSE connection; records each intervention's produce-to-arrival time."""

    def __init__(self, class_id: str) -> None:
        self.class_id = class_id
        self.caught_up = asyncio.Event()
        self.received: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    async def run(self, host: str, port: int, token: str, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        writer.write(
            (
                f"GET /classes/{self.class_id}/feed HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"feed answered {status!r}")
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        event = b""
        try:
            while not stop.is_set():
                line = await reader.readline()
                if not line:
                    return
                if b":" not in line:
                    # blank lines, and the chunk-size lines of the chunked transfer encoding
                    continue
                if line.startswith(b"event: "):
                    event = line[7:].strip()
                elif line.startswith(b"id: ") and event == b"heartbeat":
                    self.caught_up.set()
                elif line.startswith(b"data: ") and event == b"intervention":
                    arrived = time.time()
                    data = line[6:]
                    start = data.index(b'"created_at":"') + 14
                    created = datetime.fromisoformat(data[start : data.index(b'"', start)].decode())
                    ident_at = data.index(b'"intervention_id":"') + 19
                    self.received[data[ident_at : ident_at + 36].decode()] = (
                        arrived - created.timestamp()
                    )
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


class _DirectReader:
    """A plain consumer of the interventions topic: the baseline a feed client is compared to."""

    def __init__(self, target: BenchTarget) -> None:
        self.topic = f"{target.topic_prefix}{TUTOR_INTERVENTIONS.name}"
        self.consumer = Consumer(
            consumer_config(target.bootstrap, f"bench-{uuid.uuid4().hex}", **CONSUMER_OVERRIDES)
        )
        partitions = len(
            self.consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        )
        ends = [
            KafkaPartition(
                self.topic,
                p,
                self.consumer.get_watermark_offsets(KafkaPartition(self.topic, p), timeout=10)[1],
            )
            for p in range(partitions)
        ]
        self.consumer.assign(ends)
        self.latencies: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                message = self.consumer.poll(0.05)
                if message is None or message.error() is not None:
                    continue
                arrived = time.time()
                value = message.value() or b""
                if b'"created_at":"' not in value:
                    continue
                record = orjson.loads(value)
                created = datetime.fromisoformat(record["created_at"]).timestamp()
                self.latencies[record["intervention_id"]] = arrived - created
        finally:
            self.consumer.close()

    def close(self) -> Latencies:
        self.stop.set()
        self.thread.join(timeout=10)
        return Latencies(list(self.latencies.values()))


def _produce_interventions(
    target: BenchTarget, classes: list[str], count: int, rate: float, sent: list[tuple[str, str]]
) -> None:
    producer = Producer(producer_config(target.bootstrap, **PRODUCER_OVERRIDES))
    topic = f"{target.topic_prefix}{TUTOR_INTERVENTIONS.name}"
    # A new idempotent producer first obtains its producer id (half a second on Tansu): do
    # that before the clock starts, as a running stream worker has long done.
    producer.produce(topic, b"{}", b"warm-up")
    producer.flush(30)
    started = time.monotonic()
    for index in range(count):
        due = started + index / rate
        while (wait := due - time.monotonic()) > 0:
            producer.poll(min(wait, 0.01))
        class_id = classes[index % len(classes)]
        learner = uuid.uuid4().hex * 2
        record = Intervention.create(
            learner_id=learner,
            event_id=f"bench-{uuid.uuid4().hex}",
            state=BehaviouralState.GAMING,
            confidence=0.9,
            prompt="What have you tried on your own so far?",
            model_name="bench",
            model_version="1",
            created_at=datetime.now(UTC),
            class_id=class_id,
        )
        producer.produce(topic, record.model_dump_json().encode(), learner.encode())
        producer.poll(0)
        sent.append((record.intervention_id, class_id))
    producer.flush(30)


async def _feed_layout(
    url: str,
    token: str,
    target: BenchTarget,
    clients: int,
    classes: int,
    events: int,
    rate: float,
    label: str,
    progress: Progress,
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    class_ids = [f"bench-{label}-{uuid.uuid4().hex[:6]}-{n}" for n in range(classes)]
    feed = [_FeedClient(class_ids[n % classes]) for n in range(clients)]
    stop = asyncio.Event()
    for number, client in enumerate(feed):
        client.task = asyncio.create_task(client.run(host, int(port), token, stop))
        if number % 100 == 99:
            await asyncio.sleep(0.05)  # do not flood the listen backlog
    line = _ProgressLine(f"feed {label}: connecting", clients, "clients", progress)
    deadline = time.monotonic() + 120
    while True:
        ready = sum(client.caught_up.is_set() for client in feed)
        line.update(ready)
        if ready == clients:
            break
        failed = [c.task for c in feed if c.task is not None and c.task.done()]
        if failed:
            failed[0].result()
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {ready}/{clients} feed clients caught up in 120 s")
        await asyncio.sleep(0.2)
    progress(f"feed {label}: {clients:,} clients live; producing {events} interventions")
    direct = _DirectReader(target)
    sent: list[tuple[str, str]] = []
    producer = threading.Thread(
        target=_produce_interventions, args=(target, class_ids, events, rate, sent)
    )
    producer.start()
    followers: dict[str, int] = {}
    for client in feed:
        followers[client.class_id] = followers.get(client.class_id, 0) + 1
    line = _ProgressLine(f"feed {label}", events, "interventions", progress)
    expected = 0
    deadline = time.monotonic() + events / rate + 60
    while True:
        await asyncio.sleep(0.25)
        expected = sum(followers[class_id] for _, class_id in sent)
        got = sum(len(client.received) for client in feed)
        line.update(len(sent))
        if not producer.is_alive() and got >= expected:
            break
        if time.monotonic() > deadline:
            break
    producer.join()
    stop.set()
    for client in feed:
        if client.task is not None:
            client.task.cancel()
    await asyncio.gather(*(c.task for c in feed if c.task is not None), return_exceptions=True)
    baseline = direct.close()
    latencies = Latencies([value for client in feed for value in client.received.values()])
    delivered = len(latencies.values)
    return {
        "clients": clients,
        "classes": classes,
        "clients_per_class": clients // classes,
        "interventions": events,
        "rate_per_s": rate,
        "deliveries_expected": expected,
        "deliveries": delivered,
        "lost": expected - delivered,
        "latency": latencies.summary(),
        "baseline_plain_consumer_latency": baseline.summary(),
    }


def _feed(url: str, token: str, target: BenchTarget, plan: BenchPlan, progress: Progress) -> Any:
    spread = asyncio.run(
        _feed_layout(
            url,
            token,
            target,
            plan.feed_clients,
            plan.spread_classes,
            plan.spread_events,
            plan.spread_rate,
            "spread",
            progress,
        )
    )
    one = asyncio.run(
        _feed_layout(
            url,
            token,
            target,
            plan.feed_clients,
            1,
            plan.one_class_events,
            plan.one_class_rate,
            "one-class",
            progress,
        )
    )
    return {"spread_over_classes": spread, "all_on_one_class": one}


# ---------------------------------------------------------------------- the run


def run_api_bench(
    target: BenchTarget, plan: BenchPlan, progress: Progress, log_dir: Path
) -> dict[str, Any]:
    """Run both measurements against a fresh API process; return the report."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    tokens = _keys(target)
    with api_server(target, log_dir / "api.log") as url:
        progress(f"API at {url} (uvicorn, uvloop, httptools; one process)")
        ingest = _ingest(url, tokens["ingest"], target, plan, progress)
        feed = _feed(url, tokens["admin"], target, plan, progress)
    spread = feed["spread_over_classes"]
    return {
        "benchmark": "api",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "plan": plan.__dict__,
        "ingest": ingest,
        "live_feed": feed,
        "floors": {
            "statements_per_s": {
                "floor": STATEMENTS_FLOOR,
                "measured": ingest["statements_per_s"],
                "met": ingest["statements_per_s"] >= STATEMENTS_FLOOR,
            },
            "ingest_p99_ms": {
                "floor": INGEST_P99_FLOOR_MS,
                "measured": ingest["request_latency"]["p99_ms"],
                "met": ingest["request_latency"]["p99_ms"] < INGEST_P99_FLOOR_MS,
            },
            "feed_p99_ms": {
                "floor": FEED_P99_FLOOR_MS,
                "measured": spread["latency"]["p99_ms"],
                "met": spread["latency"]["p99_ms"] < FEED_P99_FLOOR_MS and spread["lost"] == 0,
            },
        },
    }


def format_table(report: dict[str, Any]) -> str:
    """Return the report as a text table."""
    ingest = report["ingest"]
    base = ingest["baseline_direct_to_broker"]
    rows = [
        ("measurement", "rate", "p50 ms", "p99 ms", "note"),
        (
            f"ingest xAPI, {ingest['clients']} clients x {ingest['batch_size']}/batch",
            f"{ingest['statements_per_s']:,.0f} stmt/s",
            f"{ingest['request_latency']['p50_ms']:.1f}",
            f"{ingest['request_latency']['p99_ms']:.1f}",
            f"ratio to direct {ingest['ratio_api_to_direct']:.2f}; "
            f"failed {ingest['failed_requests']}",
        ),
        (
            "baseline: same records direct to broker",
            f"{base['statements_per_s']:,.0f} stmt/s",
            f"{base['batch_latency']['p50_ms']:.1f}",
            f"{base['batch_latency']['p99_ms']:.1f}",
            "per confirmed batch",
        ),
    ]
    for name, layout in report["live_feed"].items():
        plain = layout["baseline_plain_consumer_latency"]
        rows.append(
            (
                f"feed {layout['clients']:,} SSE clients, {layout['clients_per_class']}/class",
                f"{layout['deliveries']:,} deliveries",
                f"{layout['latency']['p50_ms']:.1f}",
                f"{layout['latency']['p99_ms']:.1f}",
                f"{name.replace('_', ' ')}; lost {layout['lost']}",
            )
        )
        rows.append(
            (
                "  baseline: topic to a plain consumer",
                f"{plain['count']:,} records",
                f"{plain['p50_ms']:.1f}",
                f"{plain['p99_ms']:.1f}",
                "same interventions, no API",
            )
        )
    lines = align(rows)
    lines.append("")
    for name, floor in report["floors"].items():
        verdict = "met" if floor["met"] else "NOT met"
        lines.append(f"floor {name}: {floor['floor']:g}, measured {floor['measured']:g}: {verdict}")
    return "\n".join(lines)

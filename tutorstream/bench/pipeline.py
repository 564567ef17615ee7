"""End-to-end pipeline benchmark on a private embedded stack.

Two phases, one or more worker processes (``--workers``), the shipped model:

1. **sustained throughput**: a simulated cohort is produced as fast as the producer goes and the
   clock runs from the first record sent until every event is a durable row; the baseline is a
   plain Kafka consumer reading the same records in the same run (the ratio is what the whole
   pipeline costs against merely reading the topic);
2. **latency at a fixed offered load**: a fresh cohort is offered at a steady rate, and each
   intervention's latency is its arrival on ``tutor.interventions.v1`` minus the moment its
   triggering event was handed to the producer.

The workers run the store's maintenance (the PostgreSQL fallback's aggregate refresh; its
retention hourly) every :data:`MAINTENANCE_INTERVAL_S` seconds, more often than the default, so
both phases include it. The worker's ``tutorstream_stage_seconds_total`` gives the time spent
per stage. After the throughput phase the same events are rebuilt by ``tutorstream replay run
--mode rebuild`` (one process, into a schema of its own): the same normalising, featurising,
scoring, deciding and storing without the stream machinery, so the worker's CPU per event
against the rebuild's is what Faust, the changelogs and the publishing cost. ``compare_workers``
runs the throughput phase again with that many workers on a fresh stack, for the scale-out ratio.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from common.kafka import consumer_config, producer_config
from schemas.pseudonym import Pseudonymiser
from schemas.topics import CATALOGUE, LMS_EVENTS, TUTOR_INTERVENTIONS
from streams.store import migrate
from tutorstream import kafka, services
from tutorstream.bench.report import ratio
from tutorstream.cohort import generate_cohort
from tutorstream.settings import Settings

Progress = Callable[[str], None]

MAINTENANCE_INTERVAL_S = 5
"""How often the bench's workers run the store's maintenance (default: every 30 s)."""


@dataclass
class PipelineReport:
    """Figures of one run."""

    learners: int
    events: int
    workers: int = 1
    produce_s: float = 0.0
    durable_s: float = 0.0
    events_per_s: float = 0.0
    consume_baseline_per_s: float = 0.0
    offered_rate: float = 0.0
    offered_events: int = 0
    interventions: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_1k: dict[str, float] = field(default_factory=dict)
    mean_batch: float = 0.0
    worker_cpu_us: float = 0.0
    rebuild_cpu_us: float = 0.0
    rebuild_postgres_cpu_us: float = 0.0
    rebuild_per_s: float = 0.0
    worker_to_rebuild_cpu: float = 0.0
    scale_out: dict[str, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return dict(self.__dict__)


def _count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0


def _produce(
    producer: Producer, events: list[dict[str, Any]], rate: float, sent_at: dict[str, float]
) -> None:
    # keyed like `tutorstream produce` and the API: by the learner's pseudonym, so each
    # record lands on the partition whose worker holds that learner
    pseudonymiser = Pseudonymiser(Settings().pseudonym_key_bytes())
    keys = {
        str(e["learner_id"]): pseudonymiser.native_learner(str(e["learner_id"])).encode()
        for e in events
    }
    start = time.perf_counter()
    for n, event in enumerate(events):
        if rate > 0:
            due = start + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        key = keys[str(event["learner_id"])]
        kafka.produce_waiting(producer, LMS_EVENTS.name, key, orjson.dumps(event))
        sent_at[str(event["event_id"])] = time.time()
        producer.poll(0)
    producer.flush(60)


def _metrics_page(port: int) -> str:
    # the standard library's client, so this benchmark runs on the core install
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode("utf-8"))


def _cpu_snapshot(groups: dict[str, int]) -> dict[str, float]:
    out = {name: sum(services.process_tree(pid).values()) for name, pid in groups.items()}
    out["producer"] = time.process_time()
    return out


def _mean_batch(metrics_text: str) -> float:
    totals = {"sum": 0.0, "count": 0.0}
    for kind, value in re.findall(
        r"^tutorstream_batch_size_(sum|count) ([0-9.e+-]+)$", metrics_text, re.M
    ):
        totals[kind] += float(value)
    return totals["sum"] / totals["count"] if totals["count"] else 0.0


def _stage_seconds(metrics_text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for match in re.finditer(
        r'^tutorstream_stage_seconds_total\{stage="([a-z]+)"\} ([0-9.e+-]+)$', metrics_text, re.M
    ):
        out[match.group(1)] = float(match.group(2))
    return out


def run_pipeline_bench(
    learners: int,
    events: int,
    rate: float,
    latency_events: int,
    progress: Progress,
    workers: int = 1,
    *,
    latency: bool = True,
    rebuild: bool = True,
) -> PipelineReport:
    """Start a private stack and ``workers`` workers, run the phases, return the figures.

    Args:
        learners: learners of the simulated cohort.
        events: events of the throughput phase.
        rate: offered events/s of the latency phase.
        latency_events: events of the latency phase.
        progress: where progress lines go.
        workers: worker processes sharing the partitions.
        latency: run the latency phase.
        rebuild: rebuild the same events with the replay afterwards, for the CPU ratio.
    """
    report = PipelineReport(learners=learners, events=events, offered_rate=rate, workers=workers)
    report.machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="tutorstream-bench-") as tmp:
        root = Path(tmp)
        broker = services.start_broker(root)
        postgres = services.start_postgres(root / "pg", root, durable=True)
        running: list[subprocess.Popen[bytes]] = []
        ports: list[int] = []
        try:
            kafka.create_topics(broker.url, CATALOGUE)
            migrate(postgres.url)
            env = dict(os.environ)
            env.update(
                TUTORSTREAM_KAFKA_BOOTSTRAP=broker.url,
                TUTORSTREAM_DATABASE_URL=postgres.url,
                TUTORSTREAM_APP_ID=f"bench-{uuid.uuid4().hex[:6]}",
                # six times as often as by default, so the latency phase always meets the
                # store's maintenance (and its first, whole-history refresh is long done)
                TUTORSTREAM_STORE__MAINTENANCE_INTERVAL=f"PT{MAINTENANCE_INTERVAL_S}S",
            )
            for n in range(workers):
                ports.append(services.free_port())
                running.append(
                    subprocess.Popen(
                        services.worker_command(ports[-1]),
                        env=env | {"TUTORSTREAM_DATA_DIR": str(root / f"streams-{n}")},
                        stdout=(root / f"worker-{n}.log").open("wb"),
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            producer = Producer(producer_config(broker.url))
            progress("warming up: worker joins its group and scores a first class")
            warm = list(generate_cohort(5, 300, seed=1, start=datetime.now(UTC)))
            _produce(producer, warm, 0, {})
            _wait_rows(postgres.url, len(warm), 180, progress, running)

            cohort = list(generate_cohort(learners, events, seed=2, start=datetime.now(UTC)))
            progress(f"throughput: {len(cohort)} events from {learners} learners, all at once")
            # where the machine's CPU goes per event: each service runs in its own group
            groups = {f"worker-{n}": w.pid for n, w in enumerate(running)}
            groups |= {"broker": broker.pid, "postgres": postgres.pid}
            cpu_before = _cpu_snapshot(groups)
            started = time.perf_counter()
            _produce(producer, cohort, 0, {})
            report.produce_s = time.perf_counter() - started
            _wait_rows(postgres.url, len(warm) + len(cohort), 900, progress, running)
            report.durable_s = time.perf_counter() - started
            cpu_after = _cpu_snapshot(groups)
            report.cpu_ms_per_1k = {
                name: 1e6 * (cpu_after[name] - cpu_before[name]) / len(cohort) for name in cpu_after
            }
            report.events_per_s = len(cohort) / report.durable_s
            report.consume_baseline_per_s = kafka.read_rate(
                broker.url, LMS_EVENTS, len(warm) + len(cohort)
            )
            report.worker_cpu_us = sum(
                ms for name, ms in report.cpu_ms_per_1k.items() if name.startswith("worker-")
            )
            if rebuild:
                progress(f"rebuild: the same {len(warm) + len(cohort)} events, one process")
                figures = _rebuild_figures(broker.url, postgres, progress)
                report.rebuild_per_s = figures["events_per_s"]
                report.rebuild_cpu_us = figures["replay_cpu_us"]
                report.rebuild_postgres_cpu_us = figures["postgres_cpu_us"]
                report.worker_to_rebuild_cpu = ratio(report.worker_cpu_us, report.rebuild_cpu_us)
            if not latency:
                return report

            progress(f"latency: {latency_events} events offered at {rate:.0f}/s")
            offered = list(
                generate_cohort(
                    max(30, learners // 4), latency_events, seed=3, start=datetime.now(UTC)
                )
            )
            report.offered_events = len(offered)
            latencies = _latency_phase(broker.url, producer, offered, rate)
            report.interventions = len(latencies)
            if latencies:
                arr = np.array(latencies) * 1000.0
                report.latency_ms = {
                    f"p{q}": float(np.percentile(arr, q)) for q in (50, 95, 99)
                } | {"max": float(arr.max())}
            pages = [_metrics_page(port) for port in ports]
            for page in pages:
                for stage, seconds in _stage_seconds(page).items():
                    report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + seconds
            report.mean_batch = _mean_batch("\n".join(pages))
        finally:
            _stop_workers(running)
            postgres.stop()
            broker.stop()
    return report


def _rebuild_figures(
    bootstrap: str, postgres: services.ServiceHandle, progress: Progress
) -> dict[str, float]:
    """Rebuild the events topic into a schema of its own in this process; return its figures."""
    from streams.replay.pool import RebuildSpec
    from streams.store import StoreSettings
    from tutorstream.bench.replay import timed_rebuild

    schema = "bench_rebuild"
    migrate(postgres.url, schema=schema)
    spec = RebuildSpec(
        database_url=postgres.url,
        store=StoreSettings(db_schema=schema),
        partitions=LMS_EVENTS.partitions,
    )
    return timed_rebuild(bootstrap, spec, 1, postgres.pid, progress)


def _stop_workers(running: list[subprocess.Popen[bytes]]) -> None:
    for worker in running:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in running:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def _wait_rows(
    url: str,
    expected: int,
    timeout: float,
    progress: Progress,
    running: list[subprocess.Popen[bytes]],
) -> None:
    started = time.perf_counter()
    last = -1.0
    while time.perf_counter() - started < timeout:
        for worker in running:
            if worker.poll() is not None:
                raise RuntimeError(f"a worker exited with {worker.returncode}")
        done = _count(url)
        now = time.perf_counter() - started
        if done >= expected:
            return
        if now - last >= 5:
            rate = done / now if now else 0.0
            eta = (expected - done) / rate if rate else float("inf")
            progress(f"  {done}/{expected} durable rows, {rate:,.0f}/s, ETA {eta:,.0f}s")
            last = now
        time.sleep(0.25)
    raise RuntimeError(f"only {_count(url)}/{expected} rows after {timeout:.0f}s")


def _latency_phase(
    bootstrap: str, producer: Producer, events: list[dict[str, Any]], rate: float
) -> list[float]:
    topic = TUTOR_INTERVENTIONS.name
    quick: dict[str, Any] = {"fetch.wait.max.ms": 10}
    consumer = Consumer(consumer_config(bootstrap, f"bench-{uuid.uuid4().hex}", **quick))
    parts = kafka.wait_for_topics(bootstrap, [topic])[topic]
    start_at = []
    for p in range(parts):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), 10)
        start_at.append(TopicPartition(topic, p, high))
    consumer.assign(start_at)
    sent_at: dict[str, float] = {}
    arrivals: list[tuple[str, float]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for message in consumer.consume(1000, 0.05):
                if message.error() is None:
                    now = time.time()
                    event_id = orjson.loads(message.value() or b"{}").get("event_id")
                    arrivals.append((str(event_id), now))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    _produce(producer, events, rate, sent_at)
    time.sleep(5.0)
    stop.set()
    reader.join(10)
    consumer.close()
    return [at - sent_at[e] for e, at in arrivals if e in sent_at]


_OVERLAPPING = frozenset({"confirm", "changelog"})


def format_table(report: PipelineReport) -> str:
    """Return the report as a printable table."""
    # waiting for the broker's acks of a batch ("confirm") or of a snapshot's changelog values
    # ("changelog") overlaps the next batches' stages: not in the sum
    total = sum(v for k, v in report.stage_seconds.items() if k not in _OVERLAPPING) or 1.0
    lines = [
        f"pipeline, {report.learners} learners, {report.events} events, "
        f"{report.workers} worker(s), {report.machine.get('cpus')} CPUs",
        f"  sustained throughput   {report.events_per_s:>10,.0f} events/s "
        f"(produce {report.produce_s:.1f}s, durable after {report.durable_s:.1f}s)",
        f"  baseline: Kafka read   {report.consume_baseline_per_s:>10,.0f} events/s "
        f"(ratio {ratio(report.events_per_s, report.consume_baseline_per_s):.3f})",
        f"  offered load           {report.offered_rate:>10,.0f} events/s "
        f"({report.offered_events} events, {report.interventions} interventions)",
    ]
    for key, value in report.latency_ms.items():
        lines.append(f"  event-to-intervention  {key:>4} {value:>8.1f} ms")
    if report.cpu_ms_per_1k:
        lines.append("  CPU per 1,000 events (throughput phase, all threads of each process):")
        for name, ms in sorted(report.cpu_ms_per_1k.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {name:<10} {ms:>8.0f} ms")
        lines.append(f"    {'total':<10} {sum(report.cpu_ms_per_1k.values()):>8.0f} ms")
    if report.rebuild_cpu_us:
        lines.append(
            f"  worker CPU per event   {report.worker_cpu_us:>10,.0f} us against the rebuild "
            f"replay's {report.rebuild_cpu_us:,.0f} us over the same events "
            f"(ratio {report.worker_to_rebuild_cpu:.2f}; rebuild {report.rebuild_per_s:,.0f} "
            f"events/s, its PostgreSQL {report.rebuild_postgres_cpu_us:,.0f} us)"
        )
    if report.scale_out:
        lines.append(
            f"  {report.scale_out['workers']:.0f} workers            "
            f"{report.scale_out['events_per_s']:>10,.0f} events/s "
            f"(ratio {report.scale_out['ratio']:.2f} to {report.workers} worker(s))"
        )
    lines.append(f"  mean micro-batch       {report.mean_batch:>10,.0f} records (both phases)")
    lines.append("  worker time by stage:")
    for stage, seconds in sorted(report.stage_seconds.items(), key=lambda kv: -kv[1]):
        if stage in _OVERLAPPING:
            lines.append(f"    {stage:<10} {seconds:>8.2f}s  (overlaps the next batches)")
        else:
            lines.append(f"    {stage:<10} {seconds:>8.2f}s  {seconds / total:>6.1%}")
    return "\n".join(lines)

"""Replay benchmark on a private embedded stack: events/s exported (JSONL, Parquet) and rebuilt.

A simulated cohort is produced to ``lms.events.v1``; the baseline is a plain Kafka consumer
reading (and parsing) the same records in the same run, so each mode's ratio is what a replay
costs against merely reading the topic. Rebuild runs twice: over an empty store (every row is
new) and again over the same history (every row is already there, the case of a replay of
processed history).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.runtime import LearnerModel
from schemas.topics import LMS_EVENTS
from streams.policy import InterventionPolicy
from streams.replay import (
    JsonlExport,
    ParquetExport,
    Progress,
    Rebuild,
    Replay,
    Selection,
    run_sync,
)
from streams.store import StoreSink, migrate
from tutorstream import kafka, services
from tutorstream.cohort import generate_cohort
from tutorstream.producer import ProgressLine, produce_records, records_from_events
from tutorstream.settings import Settings

Say = Callable[[str], None]

EXPORT_FLOOR = 20_000.0
REBUILD_FLOOR = 10_000.0


@dataclass
class ReplayReport:
    """Figures of one run (events/s)."""

    learners: int
    events: int
    baseline_per_s: float = 0.0
    export_per_s: float = 0.0
    export_parquet_per_s: float = 0.0
    rebuild_per_s: float = 0.0
    rebuild_again_per_s: float = 0.0
    floors: dict[str, float] = field(
        default_factory=lambda: {"export": EXPORT_FLOOR, "rebuild": REBUILD_FLOOR}
    )
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return dict(self.__dict__)


def _produce(bootstrap: str, events: list[dict[str, Any]]) -> None:
    # the same path as `tutorstream produce --cohort`: keyed by pseudonym, with a progress line
    report = produce_records(
        records_from_events(events, "cohort"),
        bootstrap=bootstrap,
        topic=LMS_EVENTS.name,
        key=Settings().pseudonym_key_bytes(),
        compression="none",  # as the figures in README were measured
        progress=ProgressLine(len(events)),
        flush_timeout=120.0,
    )
    if report.failed:
        raise RuntimeError(f"the cohort did not reach the topic: {report.summary()}")


def _timed(bootstrap: str, output: Any, say: Say) -> float:
    key = Settings().pseudonym_key_bytes()
    last = [0.0]

    def show(progress: Progress) -> None:
        if time.monotonic() - last[0] >= 2.0:
            last[0] = time.monotonic()
            say(progress.line())

    replay = Replay(
        bootstrap=bootstrap,
        selection=Selection(topics=(LMS_EVENTS.name,)),
        pseudonym_key=key,
        replay_id=uuid.uuid4().hex[:8],
        batch_size=5000,
        # the settle time past the captured end is waiting, not work: leave it out of the rate
        settle_s=0.2,
        on_progress=show,
    )
    started = time.perf_counter()
    done = run_sync(replay, output)
    return done.events / (time.perf_counter() - started)


def run_replay_bench(learners: int, events: int, say: Say) -> ReplayReport:
    """Start a private stack, produce a cohort, time a plain read, export and rebuild."""
    report = ReplayReport(learners=learners, events=events)
    report.machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="tutorstream-bench-replay-") as tmp:
        root = Path(tmp)
        broker = services.start_broker(root)
        postgres = services.start_postgres(root / "pg", root, durable=True)
        try:
            kafka.create_topics(broker.url, [LMS_EVENTS])
            migrate(postgres.url)
            cohort = list(generate_cohort(learners, events, seed=2, start=datetime.now(UTC)))
            say(f"producing {len(cohort):,} events from {learners} learners")
            _produce(broker.url, cohort)
            report.baseline_per_s = kafka.read_rate(broker.url, LMS_EVENTS, len(cohort))
            say("export")
            report.export_per_s = _timed(broker.url, JsonlExport(root / "export.jsonl"), say)
            say("export to Parquet")
            report.export_parquet_per_s = _timed(
                broker.url, ParquetExport(root / "export-parquet"), say
            )
            # the rebuild scores on a thread of its own beside the featurising one: a second
            # onnxruntime thread only contends with them for the cores (see Rebuild)
            model = LearnerModel.load(intra_op_threads=1)

            def rebuild() -> Rebuild:
                return Rebuild(
                    model,
                    StoreSink(postgres.url),
                    InterventionPolicy(),
                    LMS_EVENTS.partitions,
                )

            say("rebuild into an empty store")
            report.rebuild_per_s = _timed(broker.url, rebuild(), say)
            say("rebuild again over the same history (no row changes)")
            report.rebuild_again_per_s = _timed(broker.url, rebuild(), say)
        finally:
            postgres.stop()
            broker.stop()
    return report


def format_table(report: ReplayReport) -> str:
    """Return the report as a printable table."""
    base = max(report.baseline_per_s, 1.0)

    def row(label: str, rate: float, floor: float | None) -> str:
        verdict = "" if floor is None else ("  ok" if rate >= floor else f"  BELOW {floor:,.0f}")
        return f"  {label:<26} {rate:>10,.0f} events/s  ratio {rate / base:.3f}{verdict}"

    return "\n".join(
        [
            f"replay, {report.learners} learners, {report.events} events, "
            f"{report.machine.get('cpus')} CPUs",
            row("baseline: Kafka read", report.baseline_per_s, None),
            row("export (JSON lines)", report.export_per_s, EXPORT_FLOOR),
            row("export (Parquet)", report.export_parquet_per_s, EXPORT_FLOOR),
            row("rebuild, empty store", report.rebuild_per_s, REBUILD_FLOOR),
            row("rebuild, same history", report.rebuild_again_per_s, REBUILD_FLOOR),
        ]
    )

"""Replay benchmark on a private embedded stack: events/s exported (JSONL, Parquet) and rebuilt.

A simulated cohort is produced to ``lms.events.v1``; the baseline is a plain Kafka consumer
reading (and parsing) the same records in the same run, so each mode's ratio is what a replay
costs against merely reading the topic. Rebuild runs twice: over an empty store (every row is
new) and again over the same history (every row is already there, the case of a replay of
processed history). Both rebuilds run again in parallel processes, each holding a share of the
partitions (``tutorstream replay run --processes N``), and their ratio to the one-process run of
the same run is reported; the parallel figures include starting the processes and loading the
model in each, which the one-process figures (model loaded beforehand) leave out.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.topics import LMS_EVENTS
from streams.replay.outputs import JsonlExport, ParquetExport
from streams.replay.plan import Selection
from streams.replay.pool import RebuildSpec, run_rebuild
from streams.replay.reader import Progress, Replay, run_sync
from streams.store import StoreSettings, migrate
from tutorstream import kafka, services
from tutorstream.bench.report import ratio
from tutorstream.cohort import generate_cohort
from tutorstream.producer import ProgressLine, produce_records, records_from_events
from tutorstream.settings import Settings

Say = Callable[[str], None]

EXPORT_FLOOR = 20_000.0
REBUILD_FLOOR = 10_000.0
PARALLEL_SCHEMA = "rebuild_parallel"


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
    processes: int = 2
    rebuild_parallel_per_s: float = 0.0
    rebuild_parallel_again_per_s: float = 0.0
    runs: dict[str, dict[str, float]] = field(default_factory=dict)
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


def _replay(bootstrap: str, say: Say) -> Replay:
    key = Settings().pseudonym_key_bytes()
    last = [0.0]

    def show(progress: Progress) -> None:
        if time.monotonic() - last[0] >= 2.0:
            last[0] = time.monotonic()
            say(progress.line())

    return Replay(
        bootstrap=bootstrap,
        selection=Selection(topics=(LMS_EVENTS.name,)),
        pseudonym_key=key,
        replay_id=uuid.uuid4().hex[:8],
        batch_size=5000,
        # the settle time past the captured end is waiting, not work: leave it out of the rate
        settle_s=0.2,
        on_progress=show,
    )


@dataclass
class _Clock:
    """Wall time and CPU of the replay's processes and of PostgreSQL, over one run."""

    postgres_pid: int
    wall: float = 0.0
    replay_cpu: float = 0.0
    postgres_cpu: float = 0.0

    def __enter__(self) -> _Clock:
        self.wall, self.replay_cpu, self.postgres_cpu = self._now()
        return self

    def __exit__(self, *_exc: object) -> None:
        wall, replay_cpu, postgres_cpu = self._now()
        self.wall = wall - self.wall
        self.replay_cpu = replay_cpu - self.replay_cpu
        self.postgres_cpu = postgres_cpu - self.postgres_cpu

    def _now(self) -> tuple[float, float, float]:
        # this process and the workers it has waited for (a parallel rebuild's); PostgreSQL
        # with the backends it has reaped, closed by the replay's sinks
        own = resource.getrusage(resource.RUSAGE_SELF)
        workers = resource.getrusage(resource.RUSAGE_CHILDREN)
        replay = own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime
        postgres = sum(
            cpu + _reaped_cpu_s(pid)
            for pid, cpu in services.process_tree(self.postgres_pid).items()
        )
        return time.perf_counter(), replay, postgres

    def figures(self, events: int) -> dict[str, float]:
        """Return events/s and CPU microseconds per event (replay processes, PostgreSQL)."""
        per_event = 1e6 / max(events, 1)
        return {
            "events_per_s": events / self.wall,
            "replay_cpu_us": self.replay_cpu * per_event,
            "postgres_cpu_us": self.postgres_cpu * per_event,
        }


def _reaped_cpu_s(pid: int) -> float:
    """Return the CPU seconds of ``pid``'s children that it has waited for (cutime + cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _timed(bootstrap: str, output: Any, say: Say) -> float:
    replay = _replay(bootstrap, say)
    started = time.perf_counter()
    done = run_sync(replay, output)
    return done.events / (time.perf_counter() - started)


def timed_rebuild(
    bootstrap: str, spec: RebuildSpec, processes: int, postgres_pid: int, say: Say
) -> dict[str, float]:
    """Rebuild every record of ``lms.events.v1`` into ``spec``'s store; return its figures.

    The figures are :meth:`_Clock.figures`: events/s, and CPU microseconds per event of the
    replay's processes and of PostgreSQL.
    """
    replay = _replay(bootstrap, say)
    if processes == 1:
        # the model loaded beforehand, as the figures in README were measured
        output = spec.build()
        with _Clock(postgres_pid) as clock:
            done = run_sync(replay, output)
    else:
        # starting the workers, each loading the model, is part of the run
        with _Clock(postgres_pid) as clock:
            done = run_rebuild(replay, spec, processes)
    return clock.figures(done.events)


def run_replay_bench(learners: int, events: int, say: Say, processes: int = 2) -> ReplayReport:
    """Start a private stack, produce a cohort, time a plain read, export and rebuild.

    Args:
        learners: learners in the simulated cohort.
        events: events produced and replayed.
        say: where progress lines go.
        processes: worker processes of the parallel rebuild, compared with one process.
    """
    report = ReplayReport(learners=learners, events=events, processes=processes)
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
            for label, processes_used, schema in (
                ("rebuild", 1, "public"),
                ("rebuild_parallel", processes, PARALLEL_SCHEMA),
            ):
                # each starts from an empty store of its own, then replays the same history
                migrate(postgres.url, schema=schema)
                spec = RebuildSpec(
                    database_url=postgres.url,
                    store=StoreSettings(db_schema=schema),
                    partitions=LMS_EVENTS.partitions,
                )
                for again in (False, True):
                    say(
                        f"rebuild in {processes_used} process(es) "
                        + (
                            "again over the same history (no row changes)"
                            if again
                            else "into an empty store"
                        )
                    )
                    report.runs[label + ("_again" if again else "")] = timed_rebuild(
                        broker.url, spec, processes_used, postgres.pid, say
                    )
            report.rebuild_per_s = report.runs["rebuild"]["events_per_s"]
            report.rebuild_again_per_s = report.runs["rebuild_again"]["events_per_s"]
            report.rebuild_parallel_per_s = report.runs["rebuild_parallel"]["events_per_s"]
            report.rebuild_parallel_again_per_s = report.runs["rebuild_parallel_again"][
                "events_per_s"
            ]
        finally:
            postgres.stop()
            broker.stop()
    return report


def format_table(report: ReplayReport) -> str:
    """Return the report as a printable table."""
    n = report.processes

    def row(label: str, rate: float, floor: float | None) -> str:
        verdict = "" if floor is None else ("  ok" if rate >= floor else f"  BELOW {floor:,.0f}")
        against = ratio(rate, report.baseline_per_s)
        return f"  {label:<26} {rate:>10,.0f} events/s  ratio {against:.3f}{verdict}"

    return "\n".join(
        [
            f"replay, {report.learners} learners, {report.events} events, "
            f"{report.machine.get('cpus')} CPUs",
            row("baseline: Kafka read", report.baseline_per_s, None),
            row("export (JSON lines)", report.export_per_s, EXPORT_FLOOR),
            row("export (Parquet)", report.export_parquet_per_s, EXPORT_FLOOR),
            row("rebuild, empty store", report.rebuild_per_s, REBUILD_FLOOR),
            row("rebuild, same history", report.rebuild_again_per_s, REBUILD_FLOOR),
            row(f"rebuild, {n} proc, empty store", report.rebuild_parallel_per_s, REBUILD_FLOOR),
            row(
                f"rebuild, {n} proc, same history",
                report.rebuild_parallel_again_per_s,
                REBUILD_FLOOR,
            ),
            *(
                f"  {label:<26} CPU per event: replay {run['replay_cpu_us']:,.0f} us, "
                f"PostgreSQL {run['postgres_cpu_us']:,.0f} us"
                for label, run in report.runs.items()
            ),
            f"  {n} processes against 1 in this run: empty store "
            f"{ratio(report.rebuild_parallel_per_s, report.rebuild_per_s):.2f}x, same history "
            f"{ratio(report.rebuild_parallel_again_per_s, report.rebuild_again_per_s):.2f}x",
        ]
    )

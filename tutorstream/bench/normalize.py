"""The normalisation benchmark behind ``tutorstream bench normalize``.

For each inbound format it builds a corpus of realistic, distinct records (many learners, items,
skills and classes, drawn from a seeded generator), then times, on one thread and so one core:

- :func:`schemas.normalise.normalise` over the raw bytes (parse, validate, pseudonymise, map);
- ``json.loads`` and ``orjson.loads`` over the same bytes, as the baseline of bare parsing.

Rates are events per CPU-second of this process (``time.process_time``), so other work on a shared
machine does not count against them; wall-clock rates are reported alongside.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from schemas.events import UnmodelledEvent
from schemas.normalise import normalise
from schemas.profiles.compiled import builtin
from schemas.pseudonym import Pseudonymiser
from tutorstream.bench.records import caliper_envelope, native_event, xapi_statement
from tutorstream.bench.report import ratio

XAPI_FLOOR_PER_S: Final = 50_000
"""Required xAPI statements normalised per second per core."""

BENCH_KEY: Final = b"tutorstream-bench-pseudonym-key-0123456789"


@dataclass(frozen=True, slots=True)
class Corpus:
    """Encoded records of one format and the number of events they hold."""

    name: str
    records: list[bytes]
    events: int


def build_corpora(records: int, seed: int = 7, batch: int = 100) -> list[Corpus]:
    """Build one corpus per format, ``records`` events each (xAPI also in arrays of ``batch``)."""
    rng = random.Random(seed)
    statements = [xapi_statement(rng, i) for i in range(records)]
    batches = [
        orjson.dumps(statements[start : start + batch]) for start in range(0, records, batch)
    ]
    return [
        Corpus("xapi", [orjson.dumps(s) for s in statements], records),
        Corpus(f"xapi[{batch}]", batches, records),
        Corpus(
            "caliper", [orjson.dumps(caliper_envelope(rng, i)) for i in range(records)], records
        ),
        Corpus("native", [orjson.dumps(native_event(rng, i)) for i in range(records)], records),
    ]


@dataclass(slots=True)
class Timing:
    """CPU and wall seconds of each timed pass over a corpus."""

    events_per_pass: int
    cpu_s: list[float]
    wall_s: list[float]

    @property
    def events(self) -> int:
        """Events processed over all passes."""
        return self.events_per_pass * len(self.cpu_s)

    @property
    def best_per_s(self) -> float:
        """Events per CPU-second in the fastest pass (least disturbed by other work)."""
        return self.events_per_pass / max(min(self.cpu_s), 1e-9)

    @property
    def mean_per_s(self) -> float:
        """Events per CPU-second over all passes."""
        return self.events / max(sum(self.cpu_s), 1e-9)

    @property
    def wall_per_s(self) -> float:
        """Events per wall-clock second over all passes."""
        return self.events / max(sum(self.wall_s), 1e-9)


def _timed(run: Callable[[list[bytes]], int], records: list[bytes], timing: Timing) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    timing.events_per_pass = run(records)
    timing.cpu_s.append(time.process_time() - cpu0)
    timing.wall_s.append(time.perf_counter() - wall0)


def _run_normalise(pseudonymiser: Pseudonymiser) -> Callable[[list[bytes]], int]:
    # through the built-in statement profile, as a worker with no profile files reads them;
    # unmodelled statements are statements read too
    profile = builtin()

    def run(records: list[bytes]) -> int:
        count = 0
        unmodelled: list[UnmodelledEvent] = []
        for record in records:
            count += len(normalise(record, pseudonymiser, profile=profile, unmodelled=unmodelled))
        return count + len(unmodelled)

    return run


def _run_parser(parse: Callable[[bytes], Any], per_record: int) -> Callable[[list[bytes]], int]:
    def run(records: list[bytes]) -> int:
        for record in records:
            parse(record)
        return len(records) * per_record

    return run


@dataclass(frozen=True, slots=True)
class FormatResult:
    """The figures of one format; rates are events per CPU-second of one thread."""

    format: str
    events: int
    bytes_per_record: float
    events_per_s: float
    mean_events_per_s: float
    wall_events_per_s: float
    json_loads_events_per_s: float
    orjson_loads_events_per_s: float
    ratio_vs_json_loads: float
    ratio_vs_orjson_loads: float


def run_benchmark(
    records: int = 20_000,
    rounds: int = 5,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark and return the report (what ``--out`` writes as JSON).

    Each round times normalisation and both parsers back to back on the same corpus, so a burst
    of other work on a shared machine hits all three alike; ``events_per_s`` is the fastest
    round, the least disturbed one, and ``mean_events_per_s`` the average over all rounds.
    """
    pseudonymiser = Pseudonymiser(BENCH_KEY)
    progress(f"building corpora: {records:,} events per format, {rounds} rounds")
    corpora = build_corpora(records)
    results: list[FormatResult] = []
    total_steps = len(corpora) * rounds
    step = 0
    started = time.perf_counter()
    for corpus in corpora:
        per_record = corpus.events // len(corpus.records)
        runs = {
            "normalise": _run_normalise(pseudonymiser),
            "json.loads": _run_parser(json.loads, per_record),
            "orjson.loads": _run_parser(orjson.loads, per_record),
        }
        timings = {label: Timing(0, [], []) for label in runs}
        # One warm-up pass so caches and the allocator are in their steady state.
        runs["normalise"](corpus.records[: max(1, len(corpus.records) // 10)])
        for _ in range(rounds):
            for label, run in runs.items():
                _timed(run, corpus.records, timings[label])
            step += 1
            elapsed = time.perf_counter() - started
            eta = elapsed / step * (total_steps - step)
            latest = timings["normalise"]
            rate = latest.events_per_pass / max(latest.cpu_s[-1], 1e-9)
            progress(
                f"[{step}/{total_steps}] {corpus.name:<10} round {len(latest.cpu_s)}: "
                f"{rate:>10,.0f} events/s normalised "
                f"({corpus.events:,} events a round, ETA {eta:.0f}s)"
            )
        normalised, plain, fast = (
            timings["normalise"],
            timings["json.loads"],
            timings["orjson.loads"],
        )
        results.append(
            FormatResult(
                format=corpus.name,
                events=normalised.events,
                bytes_per_record=sum(map(len, corpus.records)) / len(corpus.records),
                events_per_s=normalised.best_per_s,
                mean_events_per_s=normalised.mean_per_s,
                wall_events_per_s=normalised.wall_per_s,
                json_loads_events_per_s=plain.best_per_s,
                orjson_loads_events_per_s=fast.best_per_s,
                ratio_vs_json_loads=ratio(normalised.best_per_s, plain.best_per_s),
                ratio_vs_orjson_loads=ratio(normalised.best_per_s, fast.best_per_s),
            )
        )
    xapi = next(result for result in results if result.format == "xapi")
    return {
        "benchmark": "normalize",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "note": "events per CPU-second of one thread, i.e. per core; best round",
        },
        "records_per_format": records,
        "rounds": rounds,
        "profile": builtin().label,
        "results": [asdict(result) for result in results],
        "floor": {
            "xapi_events_per_s": XAPI_FLOOR_PER_S,
            "measured": xapi.events_per_s,
            "met": xapi.events_per_s >= XAPI_FLOOR_PER_S,
        },
    }


def table(report: dict[str, Any]) -> Iterator[str]:
    """Yield the report as the lines of a plain-text table."""
    yield (
        f"{'format':<10} {'events/s':>10} {'mean/s':>10} {'json.loads/s':>13} {'ratio':>6} "
        f"{'orjson.loads/s':>15} {'ratio':>6} {'bytes/rec':>10}"
    )
    for row in report["results"]:
        yield (
            f"{row['format']:<10} {row['events_per_s']:>10,.0f} {row['mean_events_per_s']:>10,.0f} "
            f"{row['json_loads_events_per_s']:>13,.0f} {row['ratio_vs_json_loads']:>6.2f} "
            f"{row['orjson_loads_events_per_s']:>15,.0f} {row['ratio_vs_orjson_loads']:>6.2f} "
            f"{row['bytes_per_record']:>10,.0f}"
        )
    floor = report["floor"]
    verdict = "met" if floor["met"] else "NOT met"
    load = ", ".join(f"{value:.1f}" for value in report["machine"]["load_average"])
    yield (
        f"xAPI floor {floor['xapi_events_per_s']:,} statements/s per core: {verdict} "
        f"({floor['measured']:,.0f}/s; load average {load} on {report['machine']['cpus']} CPUs)"
    )

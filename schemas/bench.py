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
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from schemas.caliper import CALIPER_V1P2
from schemas.events import UnmodelledEvent
from schemas.normalise import normalise
from schemas.profiles.compiled import builtin
from schemas.pseudonym import Pseudonymiser
from schemas.vocabulary import (
    EXT_ATTEMPT,
    EXT_DIFFICULTY,
    EXT_HINT_COUNT,
    EXT_HINT_LEVEL,
    EXT_SKILLS,
    TUTORSTREAM_XAPI,
    VERB_ANSWERED,
    VERB_ATTEMPTED,
    VERB_COMPLETED,
    VERB_EXPERIENCED,
    VERB_REQUESTED_HINT,
)

XAPI_FLOOR_PER_S: Final = 50_000
"""Required xAPI statements normalised per second per core."""

BENCH_KEY: Final = b"tutorstream-bench-pseudonym-key-0123456789"
_EPOCH: Final = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)
_SKILLS: Final = tuple(
    f"{topic}.{step}"
    for topic in ("fractions", "decimals", "ratios", "equations", "geometry", "probability")
    for step in ("compare", "add", "multiply", "solve", "explain")
)
_XAPI_VERBS: Final = (
    (VERB_ATTEMPTED, 1),
    (VERB_ANSWERED, 5),
    (VERB_REQUESTED_HINT, 1),
    (VERB_COMPLETED, 1),
    (VERB_EXPERIENCED, 1),
)
_CALIPER_ACTIONS: Final = (("Started", 1), ("Completed", 5), ("Skipped", 1))


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([choice for choice, _ in choices], [w for _, w in choices])[0]


def _when(rng: random.Random, index: int) -> str:
    moment = _EPOCH + timedelta(seconds=index * 3 + rng.random())
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def xapi_statement(rng: random.Random, index: int) -> dict[str, Any]:
    """Return one realistic xAPI statement as a tutor's LMS would send it."""
    learner = rng.randrange(5000)
    item = rng.randrange(800)
    verb = _weighted(rng, _XAPI_VERBS)
    statement: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "actor": (
            {
                "objectType": "Agent",
                "name": f"Learner {learner}",
                "mbox": f"mailto:learner{learner}@school.example.edu",
            }
            if learner % 2
            else {
                "objectType": "Agent",
                "account": {"homePage": "https://lms.example.edu", "name": f"s{learner:06d}"},
            }
        ),
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
        "object": {
            "objectType": "Activity",
            "id": f"https://lms.example.edu/items/{item}",
            "definition": {
                "name": {"en-US": f"Item {item}"},
                "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
                "interactionType": "fill-in",
                "extensions": {
                    EXT_SKILLS: [_SKILLS[item % len(_SKILLS)], _SKILLS[(item * 7) % len(_SKILLS)]],
                    EXT_DIFFICULTY: round(rng.uniform(-2, 2), 3),
                    EXT_HINT_COUNT: 3,
                },
            },
        },
        "context": {
            "registration": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "contextActivities": {
                "grouping": [
                    {
                        "id": f"https://lms.example.edu/classes/{learner % 40}",
                        "definition": {"type": TUTORSTREAM_XAPI + "activities/class"},
                    }
                ]
            },
            "extensions": {EXT_ATTEMPT: rng.randint(1, 4)},
        },
        "timestamp": _when(rng, index),
    }
    if verb == VERB_ANSWERED:
        correct = rng.random() < 0.6
        statement["result"] = {
            "success": correct,
            "response": str(rng.randrange(100)),
            "duration": f"PT{rng.uniform(2, 90):.2f}S",
            "score": {"scaled": 1.0 if correct else 0.0},
        }
    elif verb == VERB_REQUESTED_HINT:
        statement["result"] = {"extensions": {EXT_HINT_LEVEL: rng.randint(1, 3)}}
    return statement


def caliper_envelope(rng: random.Random, index: int) -> dict[str, Any]:
    """Return one Caliper 1.2 envelope carrying one AssessmentItemEvent."""
    learner = rng.randrange(5000)
    item = rng.randrange(800)
    action = _weighted(rng, _CALIPER_ACTIONS)
    base = "https://lms.example.edu"
    event: dict[str, Any] = {
        "@context": CALIPER_V1P2,
        "id": f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "type": "AssessmentItemEvent",
        "profile": "AssessmentProfile",
        "actor": {"id": f"{base}/users/{learner}", "type": "Person"},
        "action": action,
        "object": {
            "id": f"{base}/assess/{item // 10}/items/{item}",
            "type": "AssessmentItem",
            "name": f"Item {item}",
            "isPartOf": {"id": f"{base}/assess/{item // 10}", "type": "Assessment"},
            "extensions": {EXT_SKILLS: [_SKILLS[item % len(_SKILLS)]], EXT_DIFFICULTY: 0.4},
        },
        "eventTime": _when(rng, index),
        "edApp": {"id": base, "type": "SoftwareApplication"},
        "group": {"id": f"{base}/classes/{learner % 40}", "type": "CourseSection"},
        "session": {"id": f"{base}/sessions/{rng.getrandbits(64):016x}", "type": "Session"},
    }
    if action == "Completed":
        event["generated"] = {
            "id": f"{base}/assess/{item // 10}/items/{item}/users/{learner}/responses/1",
            "type": "FillinBlankResponse",
            "attempt": {
                "id": f"{base}/assess/{item // 10}/items/{item}/users/{learner}/attempts/1",
                "type": "Attempt",
                "count": rng.randint(1, 3),
                "duration": f"PT{rng.randint(2, 90)}S",
            },
            "values": [str(rng.randrange(100))],
        }
    return {
        "sensor": f"{base}/sensors/1",
        "sendTime": event["eventTime"],
        "dataVersion": CALIPER_V1P2,
        "data": [event],
    }


def native_event(rng: random.Random, index: int) -> dict[str, Any]:
    """Return one native event."""
    item = rng.randrange(800)
    return {
        "event_id": f"n-{rng.getrandbits(64):016x}",
        "learner_id": f"s{rng.randrange(5000):06d}",
        "class_id": f"class-{rng.randrange(40)}",
        "item_id": f"item-{item}",
        "skill_ids": [_SKILLS[item % len(_SKILLS)]],
        "event_type": "answer_submit",
        "timestamp": _when(rng, index),
        "correct": rng.random() < 0.6,
        "response": str(rng.randrange(100)),
        "attempt": rng.randint(1, 4),
        "duration_s": round(rng.uniform(2, 90), 2),
    }


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
                ratio_vs_json_loads=normalised.best_per_s / plain.best_per_s,
                ratio_vs_orjson_loads=normalised.best_per_s / fast.best_per_s,
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

"""A simulated class producing native events: the demo, `produce --cohort`, boards, benchmarks.

The learners come from the learner simulator (:mod:`inference.lab.simulator`), the same one the
model is trained on: learners with known skills and behavioural states (wheel-spinning, hint
abuse, gaming) work through an LMS's skill-builder sequence. Their events are turned into the
native format an LMS would send, in time order across the class.

The simulator names learners by synthetic pseudonyms; here they stand in for the LMS's own
learner ids, which the pipeline pseudonymises again at ingest like any other. Responses are
likewise the simulator's response hashes, standing in for answer text: equal answers stay equal.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Final

from inference.lab.simulator import CohortConfig, EventColumns, simulate_cohort

FAMILY: Final = "bkt"
"""Simulator family of the generated class."""

_EVENTS_PER_PROBLEM_GUESS: Final = 5.0
_MAX_ROUNDS: Final = 6
_COURSE_EVENTS: Final = 20_000
"""Events of one simulated course of :func:`class_stream` (a second of simulation)."""
_SEED_STRIDE: Final = 1_000_000
"""Seeds of a stream's later courses: ``seed + n * stride``, apart from any other run's seed
below the stride, so their event ids never repeat another run's."""
_BETWEEN_COURSES: Final = timedelta(minutes=1)


def simulate_class(learners: int, problems_per_learner: int, seed: int) -> EventColumns:
    """Simulate a class of the generator's family: the columns every generator here reads.

    Args:
        learners: learners in the class (classes of 30 in the simulator).
        problems_per_learner: mean problems each learner works.
        seed: seed of the simulation.
    """
    return simulate_cohort(
        CohortConfig(
            family=FAMILY,
            n_learners=learners,
            seed=seed,
            problems_per_learner=problems_per_learner,
        )
    )


def _columns(learners: int, events: int, seed: int) -> EventColumns:
    """Simulate enough problems per learner to give at least ``events`` events."""
    problems = max(2, math.ceil(events / learners / _EVENTS_PER_PROBLEM_GUESS))
    for _ in range(_MAX_ROUNDS):
        columns = simulate_class(learners, problems, seed)
        if len(columns) >= events:
            return columns
        # Grow by the shortfall seen, with a margin, so few rounds are needed.
        problems = math.ceil(problems * 1.2 * events / max(len(columns), 1)) + 1
    return columns


def _native(columns: EventColumns, row: int, shift: timedelta) -> dict[str, Any]:
    event = columns.learning_event(row)
    native: dict[str, Any] = event.model_dump(
        mode="json", exclude_none=True, exclude={"source", "response_hash", "timestamp"}
    )
    native["timestamp"] = (
        (event.timestamp + shift).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    if event.response_hash is not None:
        native["response"] = event.response_hash
    return native


def generate_cohort(
    learners: int,
    events: int,
    seed: int,
    *,
    start: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the first ``events`` native events of a simulated class, in time order.

    The same arguments give the same events, event ids included.

    Args:
        learners: learners in the class (classes of 30 in the simulator).
        events: how many events to yield in all.
        seed: seed of the simulation.
        start: when the first event happens; the simulator's course start when ``None``.

    Yields:
        Native events (``schemas.native.NativeEvent`` fields), timestamps as ISO 8601 UTC.

    Raises:
        ValueError: when ``learners`` is below 1 or ``events`` below 0.
    """
    if learners < 1:
        raise ValueError("a cohort needs at least one learner")
    if events < 0:
        raise ValueError("events must be 0 or more")
    if events == 0:
        return
    columns = _columns(learners, events, seed)
    order = columns.time_order()[:events]
    shift = timedelta(0)
    if start is not None:
        shift = start - columns.learning_event(int(order[0])).timestamp
    for row in order.tolist():
        yield _native(columns, row, shift)


def class_stream(
    learners: int, seed: int, *, start: datetime, course_events: int = _COURSE_EVENTS
) -> Iterator[dict[str, Any]]:
    """Yield a simulated class's native events without end, in time order.

    Each simulated course is :func:`generate_cohort` of ``course_events`` events. When one is
    out, the next begins a minute after its last event, with learners of its own in the same
    classes (the class ids of ``seed``), so a class keeps working for as long as it is read
    (the demo, until Ctrl-C). Timestamps follow the simulated course, not the wall clock: the
    model reads the gaps between a learner's events.

    Args:
        learners: learners in the class (classes of 30 in the simulator).
        seed: seed of the first course; the n-th after it is ``seed + n * 1,000,000``.
        start: when the first event happens.
        course_events: events of one course.

    Raises:
        ValueError: when ``learners`` or ``course_events`` is below 1.
    """
    if learners < 1 or course_events < 1:
        raise ValueError("a class stream needs at least one learner and one event per course")
    at = start
    for course in itertools.count():
        course_seed = seed + course * _SEED_STRIDE
        own, first = f"class-{FAMILY}-{course_seed}-", f"class-{FAMILY}-{seed}-"
        last: str | None = None
        for event in generate_cohort(learners, course_events, course_seed, start=at):
            class_id = event.get("class_id")
            if course and isinstance(class_id, str) and class_id.startswith(own):
                event["class_id"] = first + class_id[len(own) :]
            last = event["timestamp"]
            yield event
        if last is None:
            return
        at = datetime.fromisoformat(last.replace("Z", "+00:00")) + _BETWEEN_COURSES


def labelled_cohort(
    learners: int, problems_per_learner: int, seed: int, *, start: datetime
) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield a simulated class's native events in time order, each with its true state.

    For tests and benchmarks that judge the pipeline against the simulator's ground truth.

    Args:
        learners: learners in the class.
        problems_per_learner: mean problems each learner works.
        seed: seed of the simulation.
        start: when the first event happens.

    Yields:
        ``(native event, true behavioural state name)``.
    """
    from inference.states import STATES

    columns = simulate_class(learners, problems_per_learner, seed)
    order = columns.time_order()
    if len(order) == 0:
        return
    shift = start - columns.learning_event(int(order[0])).timestamp
    for row in order.tolist():
        yield _native(columns, row, shift), STATES[int(columns.state[row])]

"""A simulated class of learners producing native events, for the demo and the producer.

Each learner has an ability; each skill a difficulty. A learner works through items skill by
skill: starts a problem, sometimes asks for hints, answers (correct with a probability that grows
with ability, attempts and hints), views feedback after a wrong answer, and completes the problem
once correct or out of attempts. Learners work side by side, so their events interleave in time
order the way a class's events reach the LMS.

The learner ids are the LMS's own (``student-0001``): pseudonymising them is the pipeline's job.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SKILLS: tuple[tuple[str, float], ...] = (
    ("fractions.add", -0.8),
    ("fractions.compare", -0.3),
    ("decimals.order", 0.0),
    ("ratios.scale", 0.4),
    ("equations.linear", 0.8),
    ("percent.change", 1.2),
)
"""Skills of the simulated course with their difficulty (logit scale)."""

ITEMS_PER_SKILL = 8
CLASS_SIZE = 25
MAX_ATTEMPTS = 3
HINTS_PER_ITEM = 3
_EPOCH = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class _Learner:
    index: int
    learner_id: str
    class_id: str
    ability: float
    hint_seeking: float
    rng: random.Random


def _learner_events(learner: _Learner, start: datetime) -> Iterator[dict[str, Any]]:
    """Yield one learner's events forever, in time order (the caller stops at its count)."""
    rng = learner.rng
    now = start
    session = 0
    while True:
        session += 1
        session_id = f"{learner.learner_id}-s{session}"
        for skill_index, (skill, difficulty) in enumerate(SKILLS):
            practice = 0.0
            for k in range(ITEMS_PER_SKILL):
                item_id = f"{skill}.{k + 1:02d}"
                base = {
                    "learner_id": learner.learner_id,
                    "class_id": learner.class_id,
                    "session_id": session_id,
                    "item_id": item_id,
                    "skill_ids": [skill],
                }
                item_difficulty = difficulty + rng.gauss(0.0, 0.3)
                yield {
                    **base,
                    "event_type": "problem_start",
                    "timestamp": now,
                    "item_difficulty": round(item_difficulty, 3),
                    "hint_count": HINTS_PER_ITEM,
                }
                hints = 0
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    now += timedelta(seconds=rng.uniform(8, 50))
                    logit = learner.ability - item_difficulty + 0.35 * practice + 0.4 * hints
                    # Learners who find the item hard ask for hints before answering.
                    while hints < HINTS_PER_ITEM and rng.random() < learner.hint_seeking * (
                        1.0 - _sigmoid(logit)
                    ):
                        hints += 1
                        yield {
                            **base,
                            "event_type": "hint_request",
                            "timestamp": now,
                            "hint_level": hints,
                            "hint_count": HINTS_PER_ITEM,
                        }
                        now += timedelta(seconds=rng.uniform(5, 25))
                        logit += 0.4
                    correct = rng.random() < _sigmoid(logit)
                    answer = f"{rng.randint(1, 9)}/{rng.randint(2, 12)}"
                    duration = round(rng.uniform(5, 90), 1)
                    yield {
                        **base,
                        "event_type": "answer_submit",
                        "timestamp": now,
                        "correct": correct,
                        "response": answer,
                        "attempt": attempt,
                        "duration_s": duration,
                    }
                    if correct:
                        break
                    now += timedelta(seconds=rng.uniform(2, 15))
                    yield {**base, "event_type": "feedback_view", "timestamp": now}
                now += timedelta(seconds=rng.uniform(1, 5))
                yield {
                    **base,
                    "event_type": "problem_complete",
                    "timestamp": now,
                    "correct": correct,
                    "hint_level": hints,
                }
                practice += 1.0 if correct else 0.5
                now += timedelta(seconds=rng.uniform(3, 20))
            if skill_index % 2 == 1:
                now += timedelta(seconds=rng.uniform(60, 300))
        now += timedelta(hours=rng.uniform(12, 48))


def generate_cohort(
    learners: int,
    events: int,
    seed: int,
    *,
    start: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield ``events`` native events of a class of ``learners``, in time order.

    The same arguments give the same events, event ids included.

    Args:
        learners: learners in the cohort (grouped into classes of 25).
        events: how many events to yield in all.
        seed: seed of the random generator.
        start: when the first learners begin; a fixed date when ``None``.

    Yields:
        Native events (``schemas.native.NativeEvent`` fields), timestamps as ISO 8601 UTC.

    Raises:
        ValueError: when ``learners`` is below 1 or ``events`` below 0.
    """
    if learners < 1:
        raise ValueError("a cohort needs at least one learner")
    if events < 0:
        raise ValueError("events must be 0 or more")
    origin = start or _EPOCH
    master = random.Random(seed)
    queue: list[tuple[datetime, int, dict[str, Any], Iterator[dict[str, Any]]]] = []
    for index in range(learners):
        rng = random.Random(master.getrandbits(64))
        learner = _Learner(
            index=index,
            learner_id=f"student-{index + 1:04d}",
            class_id=f"class-{index // CLASS_SIZE + 1:02d}",
            ability=rng.gauss(0.0, 1.0),
            hint_seeking=rng.uniform(0.1, 0.9),
            rng=rng,
        )
        # Learners log in over the first ten minutes, not all at the same second.
        stream = _learner_events(learner, origin + timedelta(seconds=rng.uniform(0, 600)))
        first = next(stream)
        queue.append((first["timestamp"], index, first, stream))
    heapq.heapify(queue)
    for n in range(events):
        timestamp, index, event, stream = heapq.heappop(queue)
        yield {
            "event_id": f"cohort-{seed}-{n}",
            **event,
            "timestamp": timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        following = next(stream)
        heapq.heappush(queue, (following["timestamp"], index, following, stream))

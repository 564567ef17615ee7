"""Simulate a cohort: learners work through an LMS's skill-builder sequence.

The LMS gives items of one skill at a time in curriculum order and moves a learner on after
three correct first answers in a row or after a fixed number of problems, whichever comes
first; learners moved on without mastery come back to the skill at the end. That is how
wheel-spinning arises: a learner sent on without a prerequisite keeps failing the next skill.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from inference.lab.curriculum import Curriculum, make_curriculum
from inference.lab.simulator.columns import EventColumns, ObjectTable, to_microseconds
from inference.lab.simulator.learners import FAMILIES, EventLog, SimulatedLearner

SIMULATION_PSEUDONYM_KEY = b"tutorstream-simulated-learners"
"""HMAC key of simulated learner pseudonyms (simulated learners have no real identity)."""

COURSE_START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CohortConfig:
    """What to simulate.

    Attributes:
        family: ``bkt`` or ``irt``.
        n_learners: Learners in the cohort.
        seed: Seed; the same configuration gives the same events.
        problems_per_learner: Mean problems a learner works (learners differ by up to 40%).
        n_skills: Skills in the curriculum.
        items_per_skill: Items per skill.
        curriculum_seed: Seed of the curriculum, shared by cohorts of the same course.
        class_size: Learners per class.
        max_problems_per_skill: Problems after which the LMS moves a learner on regardless.
    """

    family: str = "bkt"
    n_learners: int = 100
    seed: int = 0
    problems_per_learner: int = 120
    n_skills: int = 12
    items_per_skill: int = 8
    curriculum_seed: int = 0
    class_size: int = 30
    max_problems_per_skill: int = 10


def learner_pseudonym(family: str, seed: int, index: int) -> str:
    """Return the pseudonymous id of a simulated learner (keyed HMAC of a synthetic id)."""
    raw = f"sim:{family}:{seed}:{index}".encode()
    return hmac.new(SIMULATION_PSEUDONYM_KEY, raw, hashlib.sha256).hexdigest()


def learner_seed(seed: int, index: int, family: str) -> int:
    """Return the seed of one learner's random stream (independent of cohort size)."""
    tag = sum(family.encode())
    return int(np.random.SeedSequence([seed, index, tag]).generate_state(2, np.uint64)[0])


def make_learner(
    family: str,
    curriculum: Curriculum,
    objects: ObjectTable,
    seed: int,
    index: int,
    class_size: int = 30,
) -> SimulatedLearner:
    """Create learner ``index`` of a cohort, deterministically from ``seed``.

    Raises:
        ValueError: If ``family`` is not a simulator family.
    """
    try:
        cls = FAMILIES[family]
    except KeyError:
        known = sorted(FAMILIES)
        raise ValueError(f"unknown simulator family {family!r}; known: {known}") from None
    klass = index // class_size
    class_rng = np.random.default_rng(np.random.SeedSequence([seed, klass, 0xC1A55]))
    class_gaming = float(class_rng.lognormal(0.0, 0.3))
    class_offset_us = int(class_rng.integers(0, 5)) * 3600 * 1_000_000
    lrng = np.random.default_rng(np.random.SeedSequence([seed, index, 0x57A27]))
    start = to_microseconds(COURSE_START) + class_offset_us
    start += int(lrng.integers(0, 3600)) * 1_000_000
    return cls(index, curriculum, objects, learner_seed(seed, index, family), start, class_gaming)


class SkillBuilderSequence:
    """The LMS's default order: one skill at a time, moved on by three in a row or a cap.

    Args:
        curriculum: The curriculum.
        max_problems_per_skill: Problems after which a learner is moved on regardless.
        seed: Seed of the item choice within a skill.
    """

    def __init__(self, curriculum: Curriculum, max_problems_per_skill: int, seed: int) -> None:
        self.curriculum = curriculum
        self.cap = max_problems_per_skill
        self.rng = np.random.default_rng(seed)
        self.queue = [s.index for s in curriculum.skills]
        self.done = [False] * len(curriculum.skills)
        self.on_skill = 0
        self.streak = 0
        self.last_item = -1
        self.revisited: set[int] = set()

    def next_item(self) -> int:
        """Return the next item to present."""
        if not self.queue:
            # Review: everything passed or revisited once; practise a random skill.
            skill = int(self.rng.integers(0, len(self.curriculum.skills)))
        else:
            skill = self.queue[0]
        items = self.curriculum.items_by_skill[skill]
        choice = int(items[int(self.rng.integers(0, len(items)))])
        if choice == self.last_item and len(items) > 1:
            choice = int(items[(items.index(choice) + 1) % len(items)])
        self.last_item = choice
        return choice

    def record(self, first_correct: bool) -> None:
        """Record the first-answer outcome of the last item and move on when due."""
        if not self.queue:
            return
        self.on_skill += 1
        self.streak = self.streak + 1 if first_correct else 0
        if self.streak >= 3 or self.on_skill >= self.cap:
            skill = self.queue.pop(0)
            if self.streak >= 3:
                self.done[skill] = True
            elif skill not in self.revisited:
                # Sent on without mastery: the LMS brings the skill back once at the end.
                self.revisited.add(skill)
                self.queue.append(skill)
            self.on_skill = 0
            self.streak = 0


def simulate_cohort(
    config: CohortConfig,
    progress: Callable[[int, int, int], None] | None = None,
) -> EventColumns:
    """Simulate a cohort and return its events in columns.

    Args:
        config: What to simulate.
        progress: Called as ``progress(learners_done, n_learners, events_so_far)``.

    Returns:
        The events, learner by learner, each learner's in time order.
    """
    curriculum = make_curriculum(config.n_skills, config.items_per_skill, config.curriculum_seed)
    objects = ObjectTable.from_curriculum(curriculum)
    log = EventLog()
    for index in range(config.n_learners):
        learner = make_learner(
            config.family, curriculum, objects, config.seed, index, config.class_size
        )
        seq = SkillBuilderSequence(
            curriculum, config.max_problems_per_skill, learner_seed(config.seed, index, "lms")
        )
        n_problems = int(config.problems_per_learner * (0.6 + 0.8 * learner.rng.random()))
        for _ in range(n_problems):
            item = seq.next_item()
            start = len(log)
            learner.work_on(item, log)
            seq.record(_first_answer_correct(log, start))
        if progress is not None:
            progress(index + 1, config.n_learners, len(log))
    return columns_from_log(log, objects, config)


def _first_answer_correct(log: EventLog, start: int) -> bool:
    for i in range(start, len(log)):
        c = log.correct[i]
        if c >= 0:
            return c == 1
    return False


def columns_from_log(log: EventLog, objects: ObjectTable, config: CohortConfig) -> EventColumns:
    """Freeze an :class:`EventLog` into :class:`EventColumns`."""
    n = config.n_learners
    return EventColumns(
        learner=np.asarray(log.learner, dtype=np.int32),
        seq=np.asarray(log.seq, dtype=np.int32),
        event_type=np.asarray(log.event_type, dtype=np.int8),
        t_us=np.asarray(log.t_us, dtype=np.int64),
        session=np.asarray(log.session, dtype=np.int32),
        obj=np.asarray(log.obj, dtype=np.int32),
        correct=np.asarray(log.correct, dtype=np.int8),
        response=np.asarray(log.response, dtype=np.int16),
        attempt=np.asarray(log.attempt, dtype=np.int16),
        duration_s=np.asarray(log.duration_s, dtype=np.float64),
        hint_level=np.asarray(log.hint_level, dtype=np.int16),
        hint_count=np.asarray(log.hint_count, dtype=np.int16),
        relation=np.asarray(log.relation, dtype=np.int8),
        score=np.asarray(log.score, dtype=np.float64),
        state=np.asarray(log.state, dtype=np.int8),
        p_correct=np.asarray(log.p_correct, dtype=np.float64),
        objects=objects,
        learner_ids=tuple(learner_pseudonym(config.family, config.seed, i) for i in range(n)),
        class_ids=tuple(
            f"class-{config.family}-{config.seed}-{i // config.class_size:03d}" for i in range(n)
        ),
        family=config.family,
        seed=config.seed,
    )

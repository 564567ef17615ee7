"""Columnar simulated events: the fast form for training, convertible to :class:`LearningEvent`.

One :class:`EventColumns` holds a cohort's events as numpy arrays plus the small string tables
(object ids, skill ids, response hashes, pseudonyms) needed to rebuild each event exactly. The
feature code reads both forms through the same scalar entry point, so training and serving see
identical values.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from inference.lab.curriculum import Curriculum
from schemas.events import EventType, LearningEvent, ResourceRelation, SourceFormat

EVENT_TYPES: tuple[EventType, ...] = tuple(EventType)
"""Event types in code order: ``EVENT_TYPES[code]``."""
EVENT_TYPE_CODE: dict[EventType, int] = {t: i for i, t in enumerate(EVENT_TYPES)}
RELATIONS: tuple[ResourceRelation, ...] = tuple(ResourceRelation)
"""Resource relations in code order: ``RELATIONS[code]``."""
RELATION_CODE: dict[ResourceRelation, int] = {r: i for i, r in enumerate(RELATIONS)}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_microseconds(moment: datetime) -> int:
    """Return an aware datetime as integer microseconds since the Unix epoch (exact)."""
    return (moment - EPOCH) // _MICROSECOND


def from_microseconds(t_us: int) -> datetime:
    """Return integer microseconds since the Unix epoch as an aware UTC datetime (exact)."""
    return EPOCH + timedelta(microseconds=int(t_us))


@dataclass(frozen=True, slots=True)
class ObjectTable:
    """Everything a learner can act on: curriculum items, then resources, then media.

    Attributes:
        object_ids: Identifier of each object as an LMS reports it.
        skill_ids: Skill ids of each object.
        lms_difficulty: Difficulty the LMS reports for the object, or ``None``.
        hint_count: Hints each object offers (0 for resources and media).
        response_hashes: Response hashes of each object (empty for resources and media).
        n_items: Objects ``[0, n_items)`` are curriculum items with the same indices.
    """

    object_ids: tuple[str, ...]
    skill_ids: tuple[tuple[str, ...], ...]
    lms_difficulty: tuple[float | None, ...]
    hint_count: tuple[int, ...]
    response_hashes: tuple[tuple[str, ...], ...]
    n_items: int

    @classmethod
    def from_curriculum(cls, curriculum: Curriculum, resources_per_skill: int = 4) -> ObjectTable:
        """Build the table: items, ``resources_per_skill`` resources and one video per skill."""
        ids: list[str] = []
        skills: list[tuple[str, ...]] = []
        lms: list[float | None] = []
        hints: list[int] = []
        hashes: list[tuple[str, ...]] = []
        for item in curriculum.items:
            ids.append(item.item_id)
            skills.append(curriculum.skill_ids(item))
            lms.append(item.lms_difficulty)
            hints.append(item.hint_count)
            hashes.append(item.response_hashes)
        for skill in curriculum.skills:
            for k in range(resources_per_skill):
                ids.append(f"res-{skill.index:02d}-{k}")
                skills.append((skill.skill_id,))
                lms.append(None)
                hints.append(0)
                hashes.append(())
        for skill in curriculum.skills:
            ids.append(f"video-{skill.index:02d}")
            skills.append((skill.skill_id,))
            lms.append(None)
            hints.append(0)
            hashes.append(())
        return cls(
            tuple(ids),
            tuple(skills),
            tuple(lms),
            tuple(hints),
            tuple(hashes),
            len(curriculum.items),
        )

    def resource(self, skill: int, k: int, resources_per_skill: int = 4) -> int:
        """Return the object index of resource ``k`` of skill ``skill``."""
        return self.n_items + skill * resources_per_skill + k

    def video(self, skill: int, n_skills: int, resources_per_skill: int = 4) -> int:
        """Return the object index of the video of skill ``skill``."""
        return self.n_items + n_skills * resources_per_skill + skill


@dataclass(slots=True)
class EventColumns:
    """A cohort's simulated events in columns, in emission order per learner.

    Missing values: ``obj``, ``response``, ``relation``, ``hint_level`` and ``correct`` use -1;
    ``attempt`` and ``hint_count`` use 0; ``duration_s`` and ``score`` and ``p_correct`` use NaN.

    Attributes:
        learner: Learner index in the cohort.
        seq: Event number within the learner's stream.
        event_type: Code into :data:`EVENT_TYPES`.
        t_us: Timestamp, integer microseconds since the Unix epoch.
        session: Session number within the learner's stream.
        obj: Object index into :attr:`objects`.
        correct: 1 correct, 0 wrong, -1 not an answer.
        response: Response option (index into the object's response hashes).
        attempt: Attempt number on the item (answers only).
        duration_s: Time spent, seconds.
        hint_level: Hint depth (hints only).
        hint_count: Hints the item offers (hints only).
        relation: Code into :data:`RELATIONS` (resource views only).
        score: Scaled score (problem completions only).
        state: Ground-truth behavioural state index at the event.
        p_correct: The simulator's true probability that this answer is correct (answers only).
        objects: The object table.
        learner_ids: Pseudonymous id of each learner.
        class_ids: Class id of each learner.
        family: Simulator family that produced the events.
        seed: Seed of the cohort.
    """

    learner: npt.NDArray[np.int32]
    seq: npt.NDArray[np.int32]
    event_type: npt.NDArray[np.int8]
    t_us: npt.NDArray[np.int64]
    session: npt.NDArray[np.int32]
    obj: npt.NDArray[np.int32]
    correct: npt.NDArray[np.int8]
    response: npt.NDArray[np.int16]
    attempt: npt.NDArray[np.int16]
    duration_s: npt.NDArray[np.float64]
    hint_level: npt.NDArray[np.int16]
    hint_count: npt.NDArray[np.int16]
    relation: npt.NDArray[np.int8]
    score: npt.NDArray[np.float64]
    state: npt.NDArray[np.int8]
    p_correct: npt.NDArray[np.float64]
    objects: ObjectTable
    learner_ids: tuple[str, ...]
    class_ids: tuple[str, ...]
    family: str
    seed: int

    def __len__(self) -> int:
        return int(self.learner.shape[0])

    def event_id(self, i: int) -> str:
        """Return the stable event id of row ``i``."""
        return f"sim-{self.family}-{self.seed}-{int(self.learner[i])}-{int(self.seq[i])}"

    def session_id(self, i: int) -> str:
        """Return the session id of row ``i``."""
        return f"{self.learner_ids[int(self.learner[i])][:12]}-s{int(self.session[i])}"

    def learning_event(self, i: int) -> LearningEvent:
        """Return row ``i`` as a validated :class:`LearningEvent`."""
        learner = int(self.learner[i])
        code = int(self.event_type[i])
        obj = int(self.obj[i])
        objects = self.objects
        correct = int(self.correct[i])
        response = int(self.response[i])
        attempt = int(self.attempt[i])
        duration = float(self.duration_s[i])
        hint_level = int(self.hint_level[i])
        hint_count = int(self.hint_count[i])
        relation = int(self.relation[i])
        score = float(self.score[i])
        return LearningEvent(
            event_id=self.event_id(i),
            learner_id=self.learner_ids[learner],
            class_id=self.class_ids[learner],
            session_id=self.session_id(i),
            item_id=objects.object_ids[obj] if obj >= 0 else None,
            skill_ids=objects.skill_ids[obj] if obj >= 0 else (),
            event_type=EVENT_TYPES[code],
            timestamp=from_microseconds(int(self.t_us[i])),
            correct=None if correct < 0 else bool(correct),
            response_hash=objects.response_hashes[obj][response] if response >= 0 else None,
            attempt=attempt if attempt > 0 else None,
            duration_s=None if math.isnan(duration) else duration,
            hint_level=hint_level if hint_level >= 0 else None,
            hint_count=hint_count if hint_count > 0 else None,
            item_difficulty=objects.lms_difficulty[obj] if obj >= 0 else None,
            resource_relation=RELATIONS[relation] if relation >= 0 else None,
            score_scaled=None if math.isnan(score) else score,
            source=SourceFormat.NATIVE,
        )

    def learning_events(
        self, order: npt.NDArray[np.int64] | None = None
    ) -> Iterator[LearningEvent]:
        """Yield the rows as :class:`LearningEvent` s, in ``order`` (default: row order)."""
        rows = range(len(self)) if order is None else order.tolist()
        for i in rows:
            yield self.learning_event(i)

    def time_order(self) -> npt.NDArray[np.int64]:
        """Return row indices sorted by timestamp (ties by learner, then event number).

        This is the order a stream sees a cohort in, and the order training replays it in.
        """
        return np.lexsort((self.seq, self.learner, self.t_us)).astype(np.int64)

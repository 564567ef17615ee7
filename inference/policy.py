"""Next-item policy and its closed-loop evaluation in the simulator.

Mastery learning in course order: the policy works on the first skill of the course that is
not yet mastered and whose prerequisite skills are, asks a scorer for the learner's chance of
success on each of that skill's items, and picks the one closest to a target (0.8 by default:
practice the learner mostly gets right, which keeps failures, and the gaming that follows them,
down while a skill is learnt, and proves a known skill in few items). A skill counts as mastered
once the features' knowledge-tracing estimate reaches 0.95 (Corbett & Anderson) and the scorer
expects success on its items, and stays so until the estimate falls back below 0.5, so that one
slip does not send the learner back. A skill the learner spins on is set aside and its doubtful
prerequisites come back. When every skill looks mastered, a skill whose estimate is not yet
sure is reviewed, the least certain first; once every estimate is sure, the one resting on the
fewest answers, the likeliest to have been passed on a few lucky answers or to be short of
practice where ability grows with it. The scorer is
any callable from query features ``[K, Q]`` to probabilities ``[K]``: the ONNX model's runtime,
BKT, a logistic regression, or, in the simulator only, the oracle.

This is the serving side: the stream worker imports it, so it imports nothing of the lab. The
closed-loop evaluation in the simulator is :mod:`inference.lab.closed_loop`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from inference.features import (
    EVENT_FEATURES,
    QUERY_FEATURE_INDEX,
    FeatureExtractor,
    ItemNorms,
    LearnerFeatureState,
)
from schemas.records import RECOMMENDATION_REASON_MAX

Scorer = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
"""Maps query features ``[K, Q]`` to predicted success ``[K]``."""


@runtime_checkable
class ItemScorer(Protocol):
    """A scorer that also reads the learner's recent events (the ONNX runtime is one)."""

    def score_items(
        self,
        query: npt.ArrayLike,
        events: npt.ArrayLike | None = None,
        mask: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.float32]:
        """Return ``[K]`` success probabilities for query ``[K, Q]`` and window ``[T, F]``."""
        ...


def window_arrays(
    recent: Sequence[list[float]], window: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Return ``(events [T, F], mask [T])`` of the last ``window`` feature rows, left-padded."""
    events = np.zeros((window, len(EVENT_FEATURES)), dtype=np.float32)
    mask = np.zeros(window, dtype=np.bool_)
    rows = list(recent)[-window:]
    if rows:
        events[window - len(rows) :] = np.asarray(rows, dtype=np.float32)
        mask[window - len(rows) :] = True
    return events, mask


DEFAULT_TARGET = 0.8
"""Predicted success the policy aims for (tuned in closed loop on learner seeds 11 to 22)."""
REASON_MAX = RECOMMENDATION_REASON_MAX
"""Longest reason, in characters: what a recommendation record carries for tutors."""
MASTERY_THRESHOLD = 0.95
"""Knowledge-tracing mastery estimate at which a skill counts as mastered (Corbett & Anderson)."""
KEEP_THRESHOLD = 0.5
"""Estimate below which a skill once mastered counts as unmastered again (about three misses in
a row): a lower bar to stay than to enter, so one slip does not undo a skill."""
MIN_ATTEMPTS = 3
"""First answers on a skill before the policy trusts its mastery estimate."""
MIN_RECENT_CORRECT = 0.6
"""Recent first-answer success on a skill below which it does not become mastered."""
MASTERY_SUCCESS = 0.7
"""Mean predicted success on a skill's items needed before it becomes mastered."""
KEEP_SUCCESS = 0.6
"""Mean predicted success on a skill's items needed for it to stay mastered."""
SPIN_ATTEMPTS = 5
"""First answers without a rise in mastery after which a skill counts as spinning."""
SURE_MASTERY = 0.99
"""Mastery estimate above which a skill counts as surely mastered: a prerequisite is not
revisited for a spinning skill, and a review goes by the evidence behind the estimates."""

_MASTERY = QUERY_FEATURE_INDEX["skill_mastery"]
# Position of the best mastery estimate so far in a skill's statistics list (the layout is
# documented on LearnerFeatureState).
_BEST_MASTERY = 3


@dataclass(frozen=True, slots=True)
class CourseItem:
    """An item as the policy sees it: an id and the skills it exercises (main skill first)."""

    item_id: str
    skill_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CourseMap:
    """The items of a course and the prerequisite graph of its skills.

    Attributes:
        items: The items, in the course's own order (a skill's prerequisites come first).
        prerequisites: For each skill id, the skill ids that must be mastered first.
    """

    items: tuple[CourseItem, ...]
    prerequisites: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The chosen item, its predicted success and a one-line reason for the tutor.

    Attributes:
        item_id: The recommended item.
        predicted_success: The scorer's probability of a correct answer.
        reason: One line saying why this item.
        candidates: How many items the policy chose among (those of the chosen skill).
    """

    item_id: str
    predicted_success: float
    reason: str
    candidates: int


class Mode(StrEnum):
    """Why the policy practises the skill it chose."""

    LEARN = "learn"
    """The first skill in course order that is unmastered and whose prerequisites are mastered."""
    REVISIT = "revisit"
    """A doubtful prerequisite of a skill the learner spins on."""
    REVIEW = "review"
    """No unmastered skill can be practised (usually: all look mastered); the least certain
    skill, or when all are sure the one with the fewest first answers, is reviewed."""


@dataclass(frozen=True, slots=True)
class Choice:
    """What :meth:`NextItemPolicy.choose` picked.

    Attributes:
        index: The chosen item's index in the course.
        skill_id: The skill practised (the item's main skill).
        candidates: Indices of the items of that skill the item was chosen among.
        mode: Why that skill.
        set_aside: Skills set aside because the learner spins on them.
    """

    index: int
    skill_id: str
    candidates: list[int]
    mode: Mode
    set_aside: tuple[str, ...] = ()


def skill_mastery(learner: LearnerFeatureState, skill_id: str) -> float:
    """Return the knowledge-tracing mastery estimate of a skill (the prior if unseen)."""
    return learner.skill_view(skill_id).mastery


def looks_mastered(
    learner: LearnerFeatureState,
    skill_id: str,
    threshold: float = MASTERY_THRESHOLD,
    keep: float = KEEP_THRESHOLD,
) -> bool:
    """Return whether the features say a skill is mastered.

    A skill becomes mastered when the knowledge-tracing estimate reaches ``threshold`` after at
    least :data:`MIN_ATTEMPTS` first answers, with recent success of at least
    :data:`MIN_RECENT_CORRECT`, so that a few lucky guesses do not pass it. Once the estimate
    has reached ``threshold`` the skill stays mastered while the estimate is at least ``keep``.
    """
    view = learner.skill_view(skill_id)
    if (
        view.mastery >= threshold
        and view.attempts >= MIN_ATTEMPTS
        and view.recent_correct >= MIN_RECENT_CORRECT
    ):
        return True
    stats = learner.skills.get(skill_id)
    reached = stats is not None and stats[_BEST_MASTERY] >= threshold
    return reached and view.attempts >= MIN_ATTEMPTS and view.mastery >= keep


def _entering(learner: LearnerFeatureState, skill_id: str, threshold: float) -> bool:
    # Mastered on the estimate's current value rather than kept on an earlier one.
    view = learner.skill_view(skill_id)
    return view.mastery >= threshold and view.attempts >= MIN_ATTEMPTS


class NextItemPolicy:
    """Mastery learning in course order, at a target predicted success.

    The skill practised is the first one in course order that is not mastered (see
    :func:`looks_mastered`) and whose prerequisites are. A skill the learner spins on (no rise
    in mastery for :data:`SPIN_ATTEMPTS` answers) is set aside while anything else can be
    practised, and its prerequisites that are not surely mastered come back first, since a
    missing prerequisite is the usual cause. When every skill is mastered, the least certain
    one is reviewed, or, when all are sure, the one with the fewest first answers (see
    :meth:`review_skill`). Among the skill's items (the one just worked on left out) the policy
    picks the one whose predicted success is closest to ``target``.

    Args:
        course: Items and skill prerequisites.
        scorer: Query features ``[K, Q]`` to predicted success ``[K]``.
        target: Predicted success to aim for.
        mastery_threshold: Knowledge-tracing estimate at which a skill becomes mastered.
        keep_threshold: Estimate below which a mastered skill counts as unmastered again.
    """

    def __init__(
        self,
        course: CourseMap,
        scorer: Scorer,
        target: float = DEFAULT_TARGET,
        mastery_threshold: float = MASTERY_THRESHOLD,
        keep_threshold: float = KEEP_THRESHOLD,
    ) -> None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"target: must lie strictly between 0 and 1, got {target}")
        if not 0.0 <= keep_threshold <= mastery_threshold:
            raise ValueError(
                f"keep_threshold: must lie between 0 and mastery_threshold, got {keep_threshold}"
            )
        self.course = course
        self.scorer = scorer
        self.target = target
        self.mastery_threshold = mastery_threshold
        self.keep_threshold = keep_threshold
        self.extractor = FeatureExtractor()
        # Skills in course order (of their first item) and the items whose main skill each is.
        self._skill_items: dict[str, list[int]] = {}
        for k, item in enumerate(course.items):
            if item.skill_ids:
                self._skill_items.setdefault(item.skill_ids[0], []).append(k)

    def mastered(
        self, learner: LearnerFeatureState, scores: npt.NDArray[np.float64] | None = None
    ) -> dict[str, bool]:
        """Return for every skill of the course whether it counts as mastered.

        With ``scores`` (predicted success on every course item) a skill must also be expected
        to go well: mean predicted success on its items of at least :data:`MASTERY_SUCCESS`,
        or :data:`KEEP_SUCCESS` to stay mastered. The estimate alone ignores how hard the items
        were, and a policy that serves easy items would otherwise pass skills too early.
        """
        skills = set(self._skill_items)
        skills.update(p for ps in self.course.prerequisites.values() for p in ps)
        out = {}
        for s in skills:
            known = looks_mastered(learner, s, self.mastery_threshold, self.keep_threshold)
            members = self._skill_items.get(s)
            if known and scores is not None and members:
                expected = float(np.mean(scores[members]))
                bar = (
                    MASTERY_SUCCESS
                    if _entering(learner, s, self.mastery_threshold)
                    else KEEP_SUCCESS
                )
                known = expected >= bar
            out[s] = known
        return out

    def plan(
        self, learner: LearnerFeatureState, scores: npt.NDArray[np.float64] | None = None
    ) -> tuple[str, Mode, tuple[str, ...]]:
        """Return ``(skill to practise, why, skills set aside as spinning)``.

        Args:
            learner: The learner's feature state.
            scores: Predicted success on every course item, or ``None`` to judge mastery by
                the knowledge-tracing estimate alone.
        """
        mastered = self.mastered(learner, scores)
        prerequisites = self.course.prerequisites
        ready = [
            s
            for s in self._skill_items
            if not mastered[s]
            and all(mastered.get(p, True) for p in prerequisites.get(s, ()))
            and self._practicable(learner, s)
        ]
        if not ready:
            return self.review_skill(learner), Mode.REVIEW, ()
        spinning = tuple(s for s in ready if learner.skill_view(s).since_gain >= SPIN_ATTEMPTS)
        doubtful = [
            p
            for s in spinning
            for p in prerequisites.get(s, ())
            if p in self._skill_items
            and skill_mastery(learner, p) < SURE_MASTERY
            and all(mastered.get(q, True) for q in prerequisites.get(p, ()))
            and self._practicable(learner, p)
        ]
        # Course order puts prerequisites first, so a doubtful one is practised before the rest.
        rest = [s for s in self._skill_items if s in doubtful or (s in ready and s not in spinning)]
        if not rest:
            return ready[0], Mode.LEARN, ()
        skill = rest[0]
        return skill, (Mode.LEARN if skill in ready else Mode.REVISIT), spinning

    def review_skill(self, learner: LearnerFeatureState) -> str:
        """Return the skill to review when every skill looks mastered.

        A skill whose estimate is below :data:`SURE_MASTERY` is doubted, and the least certain
        of those is reviewed. Once every estimate is sure, the estimates no longer tell the
        skills apart, and the count of first answers behind them does: a few lucky answers can
        pass a skill that is not known, and where ability grows with practice the least
        practised skill is the likeliest to fall short. Among equals, the later skill in course
        order, which builds on the others. In closed loop on learner seeds 11 to 22 with the
        shipped model as scorer, going by the estimate alone took 9% more events to mastery on
        the IRT family and no fewer on BKT.
        """
        doubted = [s for s in self._skill_items if skill_mastery(learner, s) < SURE_MASTERY]
        if doubted:
            return min(doubted, key=lambda s: skill_mastery(learner, s))
        return min(reversed(self._skill_items), key=lambda s: learner.skill_view(s).attempts)

    def _practicable(self, learner: LearnerFeatureState, skill_id: str) -> bool:
        # A skill whose only item is the one just worked on waits a turn.
        return any(
            self.course.items[k].item_id != learner.cur_item for k in self._skill_items[skill_id]
        )

    def query_matrix(
        self,
        learner: LearnerFeatureState,
        norms: Mapping[str, ItemNorms],
        items: Sequence[int] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Return the query features ``[K, Q]`` of the learner and ``items`` (default: all)."""
        rows = []
        for k in range(len(self.course.items)) if items is None else items:
            item = self.course.items[k]
            rows.append(
                self.extractor.query_list(
                    learner, norms.get(item.item_id), item.item_id, item.skill_ids
                )
            )
        return np.asarray(rows, dtype=np.float32)

    def choose(
        self,
        learner: LearnerFeatureState,
        scores: npt.NDArray[np.float64],
        target: float | None = None,
    ) -> Choice:
        """Return the choice given the predicted success on every course item."""
        skill, mode, set_aside = self.plan(learner, scores)
        members = self._skill_items[skill]
        candidates = [k for k in members if self.course.items[k].item_id != learner.cur_item]
        candidates = candidates or members
        best = pick_closest(
            scores[candidates], self.target if target is None else target, learner.n_answers
        )
        return Choice(candidates[best], skill, candidates, mode, set_aside)

    def recommend(
        self,
        learner: LearnerFeatureState,
        norms: Mapping[str, ItemNorms],
        scorer: Scorer | None = None,
    ) -> Recommendation:
        """Return the next item for a learner.

        Args:
            learner: The learner's feature state.
            norms: Item norms by item id (missing items count as unseen).
            scorer: Overrides the policy's scorer for this call.
        """
        query = self.query_matrix(learner, norms)
        p = np.asarray((scorer or self.scorer)(query), dtype=np.float64).reshape(-1)
        if p.shape[0] != len(self.course.items):
            raise ValueError(
                f"scorer: returned {p.shape[0]} scores for {len(self.course.items)} items"
            )
        choice = self.choose(learner, p)
        item = self.course.items[choice.index]
        return Recommendation(
            item.item_id, float(p[choice.index]), self.reason(learner, choice, p),
            len(choice.candidates),
        )  # fmt: skip

    def reason(
        self, learner: LearnerFeatureState, choice: Choice, scores: npt.NDArray[np.float64]
    ) -> str:
        """Return the one-line reason for a choice, at most :data:`REASON_MAX` characters."""
        skill = choice.skill_id
        mastery = f"{skill} (mastery {skill_mastery(learner, skill):.0%})"
        if choice.mode is Mode.REVIEW:
            done = all(self.mastered(learner, scores).values())
            answers = learner.skill_view(skill).attempts
            which = (
                "the least certain"
                if skill_mastery(learner, skill) < SURE_MASTERY
                else "the one on the fewest answers"
            )
            why = (
                ("all skills look mastered" if done else "no unmastered skill is ready")
                + f"; reviews {which}, {skill} (mastery {skill_mastery(learner, skill):.0%} "
                f"on {answers} answers)"
            )
        elif choice.mode is Mode.REVISIT:
            why = f"revisits {mastery}, prerequisite of {_names(choice.set_aside)} (no gain there)"
        else:
            why = f"practises {mastery}, first unmastered skill that is ready"
            if choice.set_aside:
                why += f" ({_names(choice.set_aside)} set aside: no gain)"
        item = self.course.items[choice.index]
        line = (
            f"{item.item_id}: {why}; predicted success {scores[choice.index]:.0%}, closest to "
            f"the {self.target:.0%} target of {len(choice.candidates)} items"
        )
        return line if len(line) <= REASON_MAX else line[: REASON_MAX - 1] + "…"


def _names(skills: Sequence[str], shown: int = 2) -> str:
    """Name a few skills and count the rest, to keep a reason on one short line."""
    head = ", ".join(skills[:shown])
    return head if len(skills) <= shown else f"{head} and {len(skills) - shown} more"


def pick_closest(p: npt.NDArray[np.float64], target: float, turn: int) -> int:
    """Return the index of the score closest to ``target``.

    Ties (a scorer that cannot tell items of a skill apart) are broken by rotating through the
    tied items with ``turn`` (the learner's answer count), so the learner does not get the same
    item over and over.
    """
    gap = np.abs(p - target)
    tied = np.flatnonzero(gap <= gap.min() + 1e-6)
    return int(tied[turn % len(tied)])


def bkt_scorer(slip: float = 0.1, guess: float = 0.25) -> Scorer:
    """Return a scorer from the query's knowledge-tracing mastery: ``m(1-s) + (1-m)g``."""

    def score(query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        m = query[:, _MASTERY].astype(np.float64)
        return (m * (1 - slip) + (1 - m) * guess).astype(np.float32)

    return score

"""Closed-loop evaluation of the next-item policy in the learner simulator.

:func:`closed_loop` runs simulated learners under a policy until they truly master every skill
and reports the events it took, against a fixed curriculum order, random choice and a
maximum-information choice. The policy itself, which the stream serves, is
:class:`inference.policy.NextItemPolicy`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

from inference.features import FeatureExtractor, ItemNorms, LearnerFeatureState
from inference.lab.baselines import SoftmaxRegression
from inference.lab.curriculum import Curriculum, make_curriculum
from inference.lab.dataset import WindowDataset
from inference.lab.simulator.cohort import make_learner
from inference.lab.simulator.columns import ObjectTable
from inference.lab.simulator.learners import EventLog, SimulatedLearner
from inference.policy import (
    DEFAULT_TARGET,
    CourseItem,
    CourseMap,
    ItemScorer,
    NextItemPolicy,
    Scorer,
    bkt_scorer,
    window_arrays,
)


def course_map(curriculum: Curriculum) -> CourseMap:
    """Build the course map of a simulated curriculum."""
    return CourseMap(
        items=tuple(CourseItem(i.item_id, curriculum.skill_ids(i)) for i in curriculum.items),
        prerequisites={
            s.skill_id: tuple(curriculum.skills[p].skill_id for p in s.prerequisites)
            for s in curriculum.skills
        },
    )


def query_scorer(data: WindowDataset) -> Scorer:
    """Return a logistic regression on the query features alone, fitted on ``data``.

    A stand-in for the model's scorer where no model is at hand (and a baseline for it).
    """
    regression = SoftmaxRegression().fit(data.Q, data.y_next.astype(np.int64), 2)

    def score(query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return regression.predict_proba(query)[:, 1]

    return score


POLICIES = ("target", "fixed", "random", "max_info")
"""Policies :func:`closed_loop` compares; ``target`` is :class:`NextItemPolicy`."""


@dataclass(frozen=True, slots=True)
class ClosedLoopConfig:
    """A closed-loop run.

    Attributes:
        family: Simulator family.
        n_learners: Learners per policy (the same learners for every policy).
        seed: Seed of the learners.
        n_skills: Skills of the (small) curriculum.
        items_per_skill: Items per skill.
        curriculum_seed: Seed of the curriculum.
        max_problems: Problems after which a learner who has not mastered everything is
            censored (counted at the events used so far).
        warmup_learners: Learners whose random practice warms the item norms first.
        target: Target success of the ``target`` policy.
    """

    family: str = "bkt"
    n_learners: int = 40
    seed: int = 7
    n_skills: int = 6
    items_per_skill: int = 6
    curriculum_seed: int = 3
    max_problems: int = 400
    warmup_learners: int = 30
    target: float = DEFAULT_TARGET


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """Time to mastery of one policy.

    Attributes:
        policy: Policy name.
        scorer: Scorer name (``-`` for policies that use none).
        mean_events: Mean events until every skill was truly mastered (censored runs count
            their events so far).
        median_events: Median of the same.
        mean_problems: Mean problems until mastery.
        mastered_share: Share of learners who mastered everything within the cap.
        n_learners: Learners run.
    """

    policy: str
    scorer: str
    mean_events: float
    median_events: float
    mean_problems: float
    mastered_share: float
    n_learners: int


@dataclass
class ClosedLoopReport:
    """Outcomes of all policies, with ratios against fixed order."""

    config: ClosedLoopConfig
    outcomes: list[PolicyOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def outcome(self, policy: str, scorer: str = "-") -> PolicyOutcome:
        """Return the outcome of a policy (and scorer)."""
        for o in self.outcomes:
            if o.policy == policy and o.scorer == scorer:
                return o
        raise KeyError(f"{policy}/{scorer}")

    def reduction_vs_fixed(self, policy: str, scorer: str = "-") -> float:
        """Return ``1 - mean_events(policy) / mean_events(fixed)``."""
        return 1.0 - self.outcome(policy, scorer).mean_events / self.outcome("fixed").mean_events

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict."""
        fixed = self.outcome("fixed").mean_events
        return {
            "config": asdict(self.config),
            "outcomes": [
                {**asdict(o), "reduction_vs_fixed": 1.0 - o.mean_events / fixed}
                for o in self.outcomes
            ],
            "seconds": self.seconds,
        }

    def table(self) -> str:
        """Return a plain-text table."""
        fixed = self.outcome("fixed").mean_events
        lines = [
            f"{'policy':<10} {'scorer':<10} {'mean events':>12} {'median':>8} "
            f"{'problems':>9} {'mastered':>9} {'vs fixed':>9}"
        ]
        for o in self.outcomes:
            lines.append(
                f"{o.policy:<10} {o.scorer:<10} {o.mean_events:>12.1f} {o.median_events:>8.0f} "
                f"{o.mean_problems:>9.1f} {o.mastered_share:>9.0%} "
                f"{1.0 - o.mean_events / fixed:>+9.1%}"
            )
        return "\n".join(lines)


class _LearnerFeed:
    """Feeds a simulated learner's new log rows into feature state and shared item norms."""

    def __init__(self, objects: ObjectTable, norms: dict[str, ItemNorms]) -> None:
        self.objects = objects
        self.norms = norms
        self.extractor = FeatureExtractor()

    def feed(
        self,
        state: LearnerFeatureState,
        log: EventLog,
        start: int,
        recent: deque[list[float]] | None = None,
    ) -> None:
        objects = self.objects
        for i in range(start, len(log)):
            o = log.obj[i]
            r = log.response[i]
            item_id = objects.object_ids[o] if o >= 0 else None
            norms = None
            if item_id is not None:
                norms = self.norms.get(item_id)
                if norms is None:
                    norms = self.norms[item_id] = ItemNorms()
            row = self.extractor.observe(
                state,
                norms,
                log.event_type[i],
                log.t_us[i],
                objects.skill_ids[o] if o >= 0 else (),
                log.correct[i],
                objects.response_hashes[o][r] if r >= 0 else None,
                log.attempt[i],
                log.duration_s[i],
                log.hint_level[i],
                log.hint_count[i],
                objects.lms_difficulty[o] if o >= 0 else None,
                log.relation[i],
                log.score[i],
                item_id,
            )
            if recent is not None:
                recent.append(row)


def _fixed_order(curriculum: Curriculum) -> list[int]:
    # A textbook sequence: skills in order, each skill's items from easiest to hardest.
    order: list[int] = []
    for items in curriculum.items_by_skill:
        order.extend(sorted(items, key=lambda i: curriculum.items[i].difficulty))
    return order


_Chooser = Callable[[LearnerFeatureState, int, deque[list[float]]], int]


def _run_learner(
    learner: SimulatedLearner,
    choose: _Chooser,
    feed: _LearnerFeed,
    max_problems: int,
    window: int,
) -> tuple[int, int, bool]:
    state = LearnerFeatureState()
    log = EventLog()
    recent: deque[list[float]] = deque(maxlen=window)
    for problem in range(max_problems):
        if learner.all_mastered():
            return len(log), problem, True
        item = choose(state, problem, recent)
        start = len(log)
        learner.work_on(item, log)
        feed.feed(state, log, start, recent)
    return len(log), max_problems, learner.all_mastered()


def closed_loop(
    config: ClosedLoopConfig,
    scorers: Mapping[str, Scorer | ItemScorer | None],
    progress: Callable[[str], None] | None = None,
) -> ClosedLoopReport:
    """Run the same simulated learners under each policy until they master every skill.

    Args:
        config: The run.
        scorers: Scorers for the ``target`` and ``max_info`` policies by name: a
            :data:`Scorer`, an :class:`ItemScorer` (given the learner's last ``window`` events,
            its ``window`` attribute, default 32), or ``None`` for the simulator's oracle (each
            learner's true chance).
        progress: Called with a line after each policy.

    Returns:
        Time to mastery per policy and scorer.
    """
    t0 = time.perf_counter()
    curriculum = make_curriculum(config.n_skills, config.items_per_skill, config.curriculum_seed)
    objects = ObjectTable.from_curriculum(curriculum)
    course = course_map(curriculum)
    index_of = {item.item_id: k for k, item in enumerate(curriculum.items)}
    warm = _warm_norms(config, curriculum, objects)
    fixed = _fixed_order(curriculum)
    report = ClosedLoopReport(config)

    runs: list[tuple[str, str, Scorer | ItemScorer | None]] = [
        ("fixed", "-", None),
        ("random", "-", None),
    ]
    for name, scorer in scorers.items():
        runs.append(("target", name, scorer))
        runs.append(("max_info", name, scorer))

    for policy_name, scorer_name, scorer in runs:
        norms = {k: ItemNorms.from_dict(v.to_dict()) for k, v in warm.items()}
        feed = _LearnerFeed(objects, norms)
        rng = np.random.default_rng([config.seed, 0x9A7D])
        events: list[int] = []
        problems: list[int] = []
        done: list[bool] = []
        for index in range(config.n_learners):
            learner = make_learner(config.family, curriculum, objects, config.seed, index)
            choose = _chooser(
                policy_name, scorer, learner, course, norms, index_of, fixed, rng, config
            )
            n_events, n_problems, mastered = _run_learner(
                learner, choose, feed, config.max_problems, _window_of(scorer)
            )
            events.append(n_events)
            problems.append(n_problems)
            done.append(mastered)
        outcome = PolicyOutcome(
            policy=policy_name,
            scorer=scorer_name,
            mean_events=float(np.mean(events)),
            median_events=float(np.median(events)),
            mean_problems=float(np.mean(problems)),
            mastered_share=float(np.mean(done)),
            n_learners=config.n_learners,
        )
        report.outcomes.append(outcome)
        if progress is not None:
            progress(
                f"{policy_name}/{scorer_name}: {outcome.mean_events:.0f} events to mastery "
                f"({time.perf_counter() - t0:.0f} s)"
            )
    report.seconds = time.perf_counter() - t0
    return report


def _window_of(scorer: Scorer | ItemScorer | None) -> int:
    return int(getattr(scorer, "window", 32))


def _chooser(
    policy: str,
    scorer: Scorer | ItemScorer | None,
    learner: SimulatedLearner,
    course: CourseMap,
    norms: dict[str, ItemNorms],
    index_of: dict[str, int],
    fixed: list[int],
    rng: np.random.Generator,
    config: ClosedLoopConfig,
) -> _Chooser:
    if policy == "fixed":
        return lambda state, problem, recent: fixed[problem % len(fixed)]
    if policy == "random":
        n = len(course.items)
        return lambda state, problem, recent: int(rng.integers(0, n))

    items = learner.curriculum.items

    def oracle(query: npt.NDArray[np.float32], eligible: list[int]) -> npt.NDArray[np.float32]:
        return np.array([learner.p_know(items[k]) for k in eligible], dtype=np.float32)

    # Maximum information of a Bernoulli answer is at p = 0.5 (p(1-p) is largest there).
    target = config.target if policy == "target" else 0.5
    chooser = NextItemPolicy(course, lambda q: q[:, 0], target=target)
    window = _window_of(scorer)
    everything = list(range(len(course.items)))

    def choose(state: LearnerFeatureState, problem: int, recent: deque[list[float]]) -> int:
        query = chooser.query_matrix(state, norms)
        if scorer is None:
            p = oracle(query, everything)
        elif isinstance(scorer, ItemScorer):
            events, mask = window_arrays(recent, window)
            p = scorer.score_items(query, events, mask)
        else:
            p = scorer(query)
        choice = chooser.choose(state, np.asarray(p, dtype=np.float64))
        return index_of[course.items[choice.index].item_id]

    return choose


def _warm_norms(
    config: ClosedLoopConfig, curriculum: Curriculum, objects: ObjectTable
) -> dict[str, ItemNorms]:
    """Item norms after warm-up learners practised random items (the course's history)."""
    norms: dict[str, ItemNorms] = {}
    feed = _LearnerFeed(objects, norms)
    rng = np.random.default_rng([config.seed, 0x3A4F])
    n_items = len(curriculum.items)
    for index in range(config.warmup_learners):
        learner = make_learner(config.family, curriculum, objects, config.seed + 7919, index)
        state = LearnerFeatureState()
        log = EventLog()
        for _ in range(3 * n_items):
            start = len(log)
            learner.work_on(int(rng.integers(0, n_items)), log)
            feed.feed(state, log, start)
    return norms


def time_to_mastery_ratio(report: ClosedLoopReport, scorer: str) -> float:
    """Return mean events of the target policy over fixed order (below 0.75 meets the floor)."""
    fixed = report.outcome("fixed").mean_events
    return report.outcome("target", scorer).mean_events / fixed if fixed else math.nan


def evaluate_policies(
    model: ItemScorer,
    family: str = "bkt",
    n_learners: int = 40,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Closed-loop time to mastery with ``model`` as the scorer, beside the oracle and BKT.

    Args:
        model: The learner model's runtime (anything with ``score_items``).
        family: Simulator family.
        n_learners: Learners per policy.
        seed: Seed of the learners.
        progress: Called with a line after each policy.

    Returns:
        A JSON-ready dict: ``speedup_vs_fixed`` (``1 - events(target with model) /
        events(fixed order)``), the per-policy ``outcomes``, the ``config`` and a ``table``.
    """
    config = ClosedLoopConfig(family=family, n_learners=n_learners, seed=seed)
    report = closed_loop(
        config, {"model": model, "oracle": None, "bkt": bkt_scorer()}, progress=progress
    )
    result = report.to_dict()
    result["speedup_vs_fixed"] = report.reduction_vs_fixed("target", "model")
    result["table"] = report.table()
    return result

"""An observable ceiling for next-answer prediction: what the events can tell at best.

The oracle (:attr:`EventColumns.p_correct`) knows each learner's latent knowledge: in the BKT
family which skills are known, in the IRT family the exact ability on each skill. No model that
only sees events can know that, so the oracle's AUC is not a reachable target. This module
computes a reference that is reachable in principle and still generous: a Bayesian filter per
learner that is told everything the simulator knows *except* the latent knowledge, and infers
that knowledge from the learner's events.

What the filter is given (more than any event-only model has):

* the learner's true learning parameters: in the BKT family the learn rate of every skill and
  the carelessness and guessing multipliers behind slip and guess; in the IRT family slip and
  learning rate; in both, the help-seeking propensity and speed;
* the learner's prior knowledge, as :data:`Prior` chooses: ``true`` (default) gives the
  learner's own prior (BKT: each skill's probability of being known at the start; IRT: the
  general ability, so only each skill's deviation from it is unknown); ``population`` gives
  the population's prior and infers the general ability from the events (and from the learning
  rates, which depend on it);
* the true behavioural state at every event, used as the condition the simulator's formulas
  depend on (practice quality, answer formula, hints, timing). The filter does not use what the
  state sequence implies about knowledge (a wheel-spinning spell only starts on a skill that is
  not mastered), so that this part of the truth does not leak the latent;
* for each predicted answer, the conditions under which the oracle evaluates it: the item, the
  attempt, the state, hints and bottom-out hint, responses already tried, whether corrective
  feedback was read. Where those happen after the decision (a hint between the decision and
  the answer), the filter knows them as the oracle does; evidence about knowledge is used only
  up to and including the decision event.

What it infers: the posterior over the latent knowledge, updated with the simulator's own
likelihoods of what the events show. With ``evidence="answers"`` only the correctness of each
answer; with ``evidence="full"`` (default) also which wrong response was given (anchored
repeats do not depend on knowledge), how many hints an engaged learner asked for before an
answer (the hint hazard falls with knowledge) and the time of an engaged first answer (sure
answers come quicker). Knowledge grows between answers through the simulator's learning step,
with the practice quality of the true state. The prediction is the posterior mixture of the
oracle's formula over the latent knowledge.

Exact or approximate:

* BKT: exact given the inputs above. The filter runs over the joint known/unknown state of all
  skills (``2**S`` states, times ability grid points with ``prior="population"``), so the
  learn rate's prerequisite blocking and two-skill items are exact. What it misses: durations
  are logged to the millisecond (so a feedback dwell logged as 4.000 s may have been read;
  one answer in 39,049 of the 200-learner evaluation cohort) and the population prior's
  ability grid (25 points) and quadrature.
* IRT: approximate. Each skill's unknown deviation has a grid posterior (41 points, per point
  of a 33-point ability grid with ``prior="population"``); growth is deterministic per grid
  point. Two approximations couple the skills: the prerequisite factor of the learning step
  uses, for each prerequisite, the posterior expectation of its factor (not the joint), and an
  answer on a two-skill item updates each skill's grid with the other skill's posterior
  marginalised out (an assumed-density step). An approximate filter is in expectation no better
  than the exact one, so the IRT figure errs low; by how much was not measured.

AUC is not strictly bounded by the Bayes posterior on a finite sample, so a model may come
within noise of or, by chance, slightly above this figure; the gap oracle minus ceiling is the
part of the oracle's advantage that comes from the latent knowledge itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from inference.lab.curriculum import Curriculum, Item, make_curriculum
from inference.lab.dataset import next_answer_rows
from inference.lab.simulator.cohort import CohortConfig, learner_seed, simulate_cohort
from inference.lab.simulator.columns import (
    EVENT_TYPE_CODE,
    RELATION_CODE,
    EventColumns,
    ObjectTable,
)
from inference.lab.simulator.learners import (
    MAX_ATTEMPTS,
    BKTLearner,
    IRTLearner,
    SimulatedLearner,
    logit,
    sigmoid,
)
from inference.states import (
    ANCHORING,
    CONFIRMATION,
    GAMING,
    NONE,
    OVERCONFIDENCE,
    WHEEL_SPINNING,
)
from schemas.events import EventType, ResourceRelation

Evidence = Literal["answers", "full"]
"""What the filter learns from: answer correctness only, or every event the simulator draws
from knowledge (correctness, wrong response, engaged hint requests, engaged first-answer time)."""

FloatArray = npt.NDArray[np.float64]

_START = EVENT_TYPE_CODE[EventType.PROBLEM_START]
_ANSWER = EVENT_TYPE_CODE[EventType.ANSWER_SUBMIT]
_HINT = EVENT_TYPE_CODE[EventType.HINT_REQUEST]
_FEEDBACK = EVENT_TYPE_CODE[EventType.FEEDBACK_VIEW]
_RESOURCE = EVENT_TYPE_CODE[EventType.RESOURCE_VIEW]
_CONTRADICTS = RELATION_CODE[ResourceRelation.CONTRADICTS]

_ENGAGED_HINTS = (NONE, WHEEL_SPINNING)
_QUALITY = {
    OVERCONFIDENCE: 0.4,
    ANCHORING: 0.15,
    CONFIRMATION: 0.3,
    GAMING: 0.05,
    WHEEL_SPINNING: 0.05,
}
_QUICK_SHARE = 0.04
_TIME_SIGMA = 0.35
_MAX_JOINT_SKILLS = 16
_SQRT_2PI = math.sqrt(2.0 * math.pi)


# ---------------------------------------------------------------------------- event trace


@dataclass(frozen=True, slots=True)
class AnswerContext:
    """The conditions of one answer, rebuilt from the events of its problem.

    Attributes:
        row: Row of the answer in the cohort's columns.
        item: The item answered.
        state: True behavioural state at the answer.
        attempt: Attempt number on the item.
        hints: Hints taken on the problem before the answer.
        bottom_out: Whether the bottom-out hint had been shown.
        tried: Wrong responses given earlier on the problem.
        last_wrong: The last wrong response, or -1.
        feedback_read: Whether corrective feedback counts as read for this retry.
        phase_hints: Hints asked for right before this answer.
        hint_phase: Whether an engaged hint phase preceded the answer (hints can be declined).
        correct: Whether the answer was correct.
        response: Response given (0 is the correct one).
        duration_s: Time of the answer as logged.
    """

    row: int
    item: Item
    state: int
    attempt: int
    hints: int
    bottom_out: bool
    tried: frozenset[int]
    last_wrong: int
    feedback_read: bool
    phase_hints: int
    hint_phase: bool
    correct: bool
    response: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class HintContext:
    """An engaged learner's hint request: the ``index``-th of the phase before ``attempt``."""

    attempt: int
    index: int
    state: int
    item: Item


@dataclass(slots=True)
class _ProblemTrace:
    item: Item
    hints: int = 0
    phase_start_hints: int = 0
    answers: int = 0
    tried: set[int] = field(default_factory=set)
    last_wrong: int = -1
    feedback_read: bool = True


def trace_learner(
    cols: EventColumns, rows: range, curriculum: Curriculum
) -> dict[int, AnswerContext | HintContext]:
    """Rebuild the conditions of each answer and engaged hint of one learner from the events.

    Args:
        cols: The cohort's events.
        rows: The learner's rows, in order.
        curriculum: The cohort's curriculum.

    Returns:
        For each answer row its :class:`AnswerContext`, for each hint an engaged learner asked
        for its :class:`HintContext`.
    """
    out: dict[int, AnswerContext | HintContext] = {}
    prob: _ProblemTrace | None = None
    for i in rows:
        code = int(cols.event_type[i])
        if code == _START:
            prob = _ProblemTrace(curriculum.items[int(cols.obj[i])])
        elif prob is None:
            continue
        elif code == _HINT:
            state = int(cols.state[i])
            if state in _ENGAGED_HINTS:
                index = prob.hints - prob.phase_start_hints
                out[i] = HintContext(prob.answers + 1, index, state, prob.item)
            prob.hints += 1
        elif code == _ANSWER:
            state = int(cols.state[i])
            attempt = int(cols.attempt[i])
            hint_count = prob.item.hint_count
            correct = int(cols.correct[i]) == 1
            response = int(cols.response[i])
            out[i] = AnswerContext(
                row=i,
                item=prob.item,
                state=state,
                attempt=attempt,
                hints=prob.hints,
                bottom_out=prob.hints >= hint_count,
                tried=frozenset(prob.tried),
                last_wrong=prob.last_wrong,
                feedback_read=prob.feedback_read,
                phase_hints=prob.hints - prob.phase_start_hints,
                hint_phase=state in _ENGAGED_HINTS and prob.phase_start_hints < hint_count,
                correct=correct,
                response=response,
                duration_s=float(cols.duration_s[i]),
            )
            prob.answers += 1
            prob.phase_start_hints = prob.hints
            if response > 0:
                prob.tried.add(response)
                prob.last_wrong = response
            if not correct and attempt < MAX_ATTEMPTS:
                prob.feedback_read = False
        elif code == _FEEDBACK:
            if float(cols.duration_s[i]) > 4.0:
                prob.feedback_read = True
        elif code == _RESOURCE and int(cols.relation[i]) == _CONTRADICTS:
            prob.feedback_read = True
    return out


# ---------------------------------------------------------------------------- likelihoods


def answer_probability(p_known: FloatArray, ctx: AnswerContext) -> tuple[FloatArray, float]:
    """Return ``(p_other, repeat)`` of an answer, as the simulator draws it.

    The answer is correct with probability ``(1 - repeat) * p_other``; ``repeat`` is the chance
    of resending the last wrong response.

    Args:
        p_known: Probability of a correct first answer from knowledge alone (any shape).
        ctx: The answer's conditions.
    """
    item = ctx.item
    n_options = item.n_options
    guess = 1.0 / n_options
    state = ctx.state
    repeat = 0.0
    if ctx.bottom_out:
        p = np.full_like(p_known, 0.96)
    elif state == GAMING:
        p = np.full_like(p_known, 1.0 / max(1, n_options - len(ctx.tried)))
    elif state == OVERCONFIDENCE:
        weight = min(0.85, max(0.1, 0.35 + 0.3 * item.difficulty))
        p = p_known * (1.0 - weight) + guess * weight
    elif ctx.attempt == 1:
        p = p_known.copy()
    else:
        gain = 0.3 if ctx.feedback_read else 0.08
        floor = 1.0 / max(1, n_options - len(ctx.tried))
        p = np.minimum(0.97, np.maximum(floor * 0.7, p_known + (1.0 - p_known) * gain))
        if state == ANCHORING:
            repeat = 0.8
        else:
            if state == CONFIRMATION:
                p = 0.5 * p + 0.5 * p_known
            repeat = 0.05
    if ctx.last_wrong <= 0:
        repeat = 0.0
    return p, repeat


def answer_likelihood(p_known: FloatArray, ctx: AnswerContext, evidence: Evidence) -> FloatArray:
    """Return the likelihood of the logged answer (and, with full evidence, its response)."""
    p_other, repeat = answer_probability(p_known, ctx)
    p = (1.0 - repeat) * p_other
    if ctx.correct:
        return p
    if evidence == "answers" or repeat == 0.0:
        return 1.0 - p
    # A resent response can come from the repeat or, rarely, from a fresh pick among options.
    n_options = ctx.item.n_options
    choices = [o for o in range(1, n_options) if o not in ctx.tried] or list(range(1, n_options))
    pick = 0.0
    if ctx.response in choices:
        pick = 0.55 / len(choices) + (0.45 if ctx.response == choices[0] else 0.0)
    same = repeat if ctx.response == ctx.last_wrong else 0.0
    return same + (1.0 - repeat) * (1.0 - p_other) * pick


def _hint_hazard(
    p_known: FloatArray, attempt: int, index: int, state: int, help_seeking: float
) -> FloatArray:
    p = help_seeking * (1.0 - p_known) * (1.6 if state == WHEEL_SPINNING else 1.0)
    if attempt > 1:
        p = p * 0.7
    return np.clip(p * 0.45**index, 0.0, 1.0)


def hint_likelihood(p_known: FloatArray, ctx: HintContext, help_seeking: float) -> FloatArray:
    """Return the likelihood that an engaged learner asks for this hint."""
    return _hint_hazard(p_known, ctx.attempt, ctx.index, ctx.state, help_seeking)


def declined_hint_likelihood(
    p_known: FloatArray, ctx: AnswerContext, help_seeking: float
) -> FloatArray:
    """Return the likelihood that an engaged learner stopped asking for hints and answered."""
    if not ctx.hint_phase or ctx.bottom_out:
        return np.ones_like(p_known)
    hazard = _hint_hazard(p_known, ctx.attempt, ctx.phase_hints, ctx.state, help_seeking)
    return 1.0 - hazard


def duration_likelihood(p_known: FloatArray, ctx: AnswerContext, speed: float) -> FloatArray:
    """Return the density of an engaged first answer's time (flat when knowledge plays no part).

    An engaged first answer takes ``typical * exp(1.2 * (0.55 - p_known))`` times a lognormal
    factor, or, four times in a hundred, a quick fraction of the typical time.
    """
    if ctx.attempt != 1 or ctx.bottom_out or ctx.state in (GAMING, OVERCONFIDENCE):
        return np.ones_like(p_known)
    typical = ctx.item.typical_time_s * speed
    d = ctx.duration_s
    mu = math.log(typical) + 1.2 * (0.55 - p_known)
    if ctx.state == WHEEL_SPINNING:
        mu = mu + math.log(1.3)
    z = (math.log(d) - mu) / _TIME_SIGMA
    slow = np.exp(-0.5 * z * z) / (d * _TIME_SIGMA * _SQRT_2PI)
    quick = 1.0 / (0.2 * typical) if 0.05 * typical <= d <= 0.25 * typical else 0.0
    out: FloatArray = (1.0 - _QUICK_SHARE) * slow + _QUICK_SHARE * quick
    return out


def practice_quality(ctx: AnswerContext) -> float:
    """Return the quality of the practice an answer gives, as the simulator scores it."""
    if ctx.state == NONE:
        q = 1.0 + (0.3 if ctx.hints > 0 and not ctx.bottom_out else 0.0)
        return q * (0.5 if ctx.bottom_out else 1.0)
    return _QUALITY[ctx.state]


def _evidence_likelihood(
    p_known: FloatArray,
    ctx: AnswerContext | HintContext,
    evidence: Evidence,
    help_seeking: float,
    speed: float,
) -> FloatArray:
    if isinstance(ctx, HintContext):
        return hint_likelihood(p_known, ctx, help_seeking)
    lik = answer_likelihood(p_known, ctx, evidence)
    if evidence == "full":
        lik = lik * declined_hint_likelihood(p_known, ctx, help_seeking)
        lik = lik * duration_likelihood(p_known, ctx, speed)
    return lik


# ---------------------------------------------------------------------------- true parameters


class _DrawRecorder(SimulatedLearner):
    """Records a learner's normal draws (the same draws, in the same order)."""

    def __init__(self, index: int, curriculum: Curriculum, objects: ObjectTable, seed: int):
        self.normal_draws: list[float] = []
        super().__init__(index, curriculum, objects, seed, 0)

    def _normal(self, mu: float, sigma: float) -> float:
        value = super()._normal(mu, sigma)
        self.normal_draws.append(value)
        return value


class _RecordedBKT(_DrawRecorder, BKTLearner):
    """A BKT learner that records its normal draws."""


class _RecordedIRT(_DrawRecorder, IRTLearner):
    """An IRT learner that records its normal draws."""


Prior = Literal["true", "population"]
"""What the filter knows of the learner's initial knowledge before any event: ``true`` gives
it the learner's own prior (BKT: each skill's ``l0``; IRT: the general ability, leaving only the
skill deviations unknown); ``population`` gives it the population's prior, with the general
ability inferred from the events (and from the true learning rates it is told, which depend on
the ability too)."""


def _ability_grid(points: int) -> tuple[FloatArray, FloatArray]:
    grid = np.linspace(-4.0, 4.0, points)
    return grid, -0.5 * grid**2


def _normalise_log(log_w: FloatArray) -> FloatArray:
    w = np.exp(log_w - log_w.max())
    out: FloatArray = w / w.sum()
    return out


def bkt_initial_knowledge(learner: _RecordedBKT, prior: Prior = "true") -> FloatArray:
    """Return each skill's probability of being known at the start, per ability grid point.

    With ``prior="true"`` one row: the learner's own ``l0`` (the simulator does not keep it;
    it is rebuilt from the recorded draws, and the learn rates rebuilt from the same draws are
    checked against the learner's own). With ``population`` one row per point of
    :func:`ability_weights`' grid: ``l0`` with the skill's own deviation averaged out.

    Raises:
        RuntimeError: If the draws do not reproduce the learner's learn rates (the
            simulator's draw order changed).
    """
    skills = learner.curriculum.skills
    a = learner.ability
    per_skill = learner.normal_draws[-2 * len(skills) :]
    l0: list[float] = []
    for skill in skills:
        z_known, z_rate = per_skill[2 * skill.index], per_skill[2 * skill.index + 1]
        base = 0.12 + 0.16 * ((skill.index * 0.618) % 1.0)
        if sigmoid(logit(base) + 0.4 * a + z_rate) != learner.learn_rate[skill.index]:
            raise RuntimeError("simulator draw order changed: learn rates do not match")
        l0.append(sigmoid(-0.5 + 0.9 * a - 0.35 * skill.depth + z_known))
    if prior == "true":
        return np.array([l0])
    grid, _ = _ability_grid(_BKT_ABILITY_POINTS)
    nodes, weights = np.polynomial.hermite_e.hermegauss(24)
    weights = weights / weights.sum()
    depth = np.array([s.depth for s in skills], dtype=np.float64)
    x = -0.5 + 0.9 * grid[:, None, None] - 0.35 * depth[None, :, None] + 0.6 * nodes
    out: FloatArray = (1.0 / (1.0 + np.exp(-x))) @ weights
    return out


def ability_weights(learner: SimulatedLearner, points: int) -> FloatArray:
    """Return the posterior of the general ability on a grid, given the true learning rates.

    The ability enters the simulator's learning rates (BKT: each skill's learn rate; IRT: the
    rate), which the filter is told, so they inform the ability before any event.
    """
    grid, log_w = _ability_grid(points)
    if isinstance(learner, BKTLearner):
        for skill in learner.curriculum.skills:
            base = 0.12 + 0.16 * ((skill.index * 0.618) % 1.0)
            z = logit(learner.learn_rate[skill.index]) - logit(base) - 0.4 * grid
            log_w = log_w - 0.5 * (z / 0.4) ** 2
    elif isinstance(learner, IRTLearner):
        z = math.log(learner.rate / learner.rate_base) - 0.2 * grid
        log_w = log_w - 0.5 * (z / learner.rate_sd) ** 2
    return _normalise_log(log_w)


_BKT_ABILITY_POINTS = 25
_IRT_ABILITY_POINTS = 33


# ---------------------------------------------------------------------------- BKT filter


class BKTJointFilter:
    """Forward filter over the joint known/unknown state of all skills of one BKT learner.

    The mass is ``[A, 2**S]``: one joint distribution per ability grid point (``A = 1`` when
    the learner's own initial-knowledge probabilities are given).

    Args:
        learner: The learner as constructed (its parameters; its knowledge flags are not read).
        l0: ``[A, S]`` initial probability of each skill being known, per ability point.
        ability: ``[A]`` prior weight of each ability point.

    Raises:
        ValueError: If the curriculum has too many skills for a joint state.
    """

    def __init__(self, learner: BKTLearner, l0: FloatArray, ability: FloatArray) -> None:
        curriculum = learner.curriculum
        n = len(curriculum.skills)
        if n > _MAX_JOINT_SKILLS:
            raise ValueError(f"n_skills: at most {_MAX_JOINT_SKILLS} for the joint BKT filter")
        self.learner = learner
        states = np.arange(1 << n, dtype=np.int64)
        known = [((states >> s) & 1).astype(bool) for s in range(n)]
        mass = ability[:, None].astype(np.float64)
        for s in range(n):
            column = l0[:, s : s + 1]
            mass = np.concatenate([mass * (1.0 - column), mass * column], axis=1)
        self.mass: FloatArray = mass
        self._unknown = [np.flatnonzero(~known[s]) for s in range(n)]
        self._blocked: list[npt.NDArray[np.bool_]] = []
        for s, skill in enumerate(curriculum.skills):
            blocked = np.zeros(len(self._unknown[s]), dtype=bool)
            for p in skill.prerequisites:
                blocked |= ~known[p][self._unknown[s]]
            self._blocked.append(blocked)
        self._known = known
        self._mask: dict[int, FloatArray] = {}
        self._p_know: dict[int, FloatArray] = {}

    def item_known(self, item: Item) -> FloatArray:
        """Return 1.0 on joint states where all the item's skills are known, else 0.0."""
        mask = self._mask.get(item.index)
        if mask is None:
            both = np.logical_and.reduce([self._known[s] for s in item.skills])
            mask = self._mask[item.index] = both.astype(np.float64)
        return mask

    def p_know(self, item: Item) -> FloatArray:
        """Return ``[unknown, known]`` first-answer success from knowledge alone."""
        values = self._p_know.get(item.index)
        if values is None:
            learner = self.learner
            saved = learner.known
            out = []
            for flag in (False, True):
                learner.known = [flag] * len(saved)
                out.append(learner.p_know(item))
            learner.known = saved
            values = self._p_know[item.index] = np.array(out)
        return values

    def p_all_known(self, item: Item) -> float:
        """Return the posterior probability that all the item's skills are known."""
        return float((self.mass @ self.item_known(item)).sum())

    def observe(self, likelihood: FloatArray, item: Item) -> None:
        """Weigh the joint states by ``[unknown, known]`` likelihoods of an event on ``item``."""
        lu, lk = float(likelihood[0]), float(likelihood[1])
        self.mass *= lu + (lk - lu) * self.item_known(item)
        total = self.mass.sum()
        if total <= 0.0 or not math.isfinite(total):
            raise FloatingPointError("an event has zero likelihood under every knowledge state")
        self.mass /= total

    def learn(self, item: Item, quality: float) -> None:
        """Apply the learning step of one practice opportunity, skill by skill."""
        for s in item.skills:
            unknown = self._unknown[s]
            rate = self.learner.learn_rate[s] * quality
            rates = np.minimum(np.where(self._blocked[s], rate * 0.12, rate), 1.0)
            moved = self.mass[:, unknown] * rates
            self.mass[:, unknown] -= moved
            self.mass[:, unknown | (1 << s)] += moved


# ---------------------------------------------------------------------------- IRT filter


class IRTGridFilter:
    """Grid posterior over each skill's ability of one IRT learner.

    A skill's ability is the learner's general ability (weight 0.8) plus a skill deviation plus
    what practice added. The filter holds ``[A, G]`` grids per skill: ``A`` general-ability
    points (1 when the true ability is given) by ``G`` deviation points, with per-skill weights
    conditional on the ability point and a posterior over ability points.

    Args:
        learner: The learner as constructed (its parameters; its abilities are not read).
        abilities: ``[A]`` general-ability points.
        ability_weight: ``[A]`` their prior weights.
        points: Deviation grid points per skill.
        span: Half-width of the deviation grid in prior standard deviations.
    """

    def __init__(
        self,
        learner: IRTLearner,
        abilities: FloatArray,
        ability_weight: FloatArray,
        points: int = 41,
        span: float = 4.0,
    ) -> None:
        self.learner = learner
        sd = learner.skill_sd
        z = np.linspace(-span * sd, span * sd, points)
        prior = np.exp(-0.5 * (z / sd) ** 2)
        prior /= prior.sum()
        base = learner.ability_weight * abilities[:, None] + z[None, :]
        self.theta: list[FloatArray] = [
            learner.level[s.index] - 1.0 + base for s in learner.curriculum.skills
        ]
        shape = (len(abilities), points)
        self.weight: list[FloatArray] = [
            np.broadcast_to(prior, shape).copy() for _ in learner.curriculum.skills
        ]
        self.log_ability: FloatArray = np.log(np.maximum(ability_weight, 1e-300))

    def _success(self, item: Item, theta: FloatArray) -> FloatArray:
        learner = self.learner
        c = 0.8 / item.n_options
        x = learner.slope * item.discrimination * (theta - item.difficulty)
        out: FloatArray = c + (1.0 - c - learner.slip) * (1.0 / (1.0 + np.exp(-x)))
        return out

    def _grid(self, item: Item) -> tuple[FloatArray, FloatArray]:
        """Return ``(p_know, weight)`` on the item's skills' grid (``[A, G]`` or ``[A, G, G]``)."""
        skills = item.skills
        if len(skills) == 1:
            s = skills[0]
            return self._success(item, self.theta[s]), self.weight[s]
        if len(skills) > 2:
            raise ValueError(f"item {item.index}: the grid filter takes at most two skills")
        s, t = skills
        ability = np.minimum(self.theta[s][:, :, None], self.theta[t][:, None, :])
        weight = self.weight[s][:, :, None] * self.weight[t][:, None, :]
        return self._success(item, ability), weight

    def predict(self, item: Item, outcome: Callable[[FloatArray], FloatArray]) -> float:
        """Return the posterior expectation of ``outcome(p_know)`` on ``item``."""
        p_know, weight = self._grid(item)
        per_ability = (weight * outcome(p_know)).reshape(len(self.log_ability), -1).sum(axis=1)
        return float(_normalise_log(self.log_ability) @ per_ability)

    def observe(self, likelihood: Callable[[FloatArray], FloatArray], item: Item) -> None:
        """Reweigh the item's skills' grids by an event's likelihood (mean-field for two)."""
        p_know, weight = self._grid(item)
        post = weight * likelihood(p_know)
        axes = tuple(range(1, post.ndim))
        evidence = post.sum(axis=axes)
        if not np.all(np.isfinite(evidence)) or evidence.max() <= 0.0:
            raise FloatingPointError("an event has zero likelihood on the whole grid")
        safe = np.where(evidence > 0.0, evidence, 1.0)
        post = post / safe.reshape((-1,) + (1,) * len(axes))
        self.log_ability = self.log_ability + np.log(np.maximum(evidence, 1e-300))
        self.log_ability -= self.log_ability.max()
        skills = item.skills
        if len(skills) == 1:
            self.weight[skills[0]] = post
        else:
            self.weight[skills[0]] = post.sum(axis=2)
            self.weight[skills[1]] = post.sum(axis=1)

    def _prerequisite_factor(self, skill: int) -> FloatArray:
        learner = self.learner
        factor = np.ones(len(self.log_ability))
        for p in learner.curriculum.skills[skill].prerequisites:
            x = 2.0 * (self.theta[p] - learner.level[p])
            factor = np.minimum(factor, (self.weight[p] / (1.0 + np.exp(-x))).sum(axis=1))
        return factor

    def learn(self, item: Item, quality: float) -> None:
        """Move every grid point by the simulator's deterministic learning gain."""
        learner = self.learner
        for s in item.skills:
            p = self._success(item, self.theta[s])
            bell = np.exp(-(((p - 0.65) / 0.22) ** 2))
            zone = np.where(p < 0.65, 0.25 + 0.75 * bell, bell)
            factor = self._prerequisite_factor(s)[:, None]
            self.theta[s] = self.theta[s] + learner.rate * quality * zone * factor


# ---------------------------------------------------------------------------- driving


def _learner_rows(cols: EventColumns) -> list[range]:
    learner = cols.learner
    starts = np.flatnonzero(np.r_[True, learner[1:] != learner[:-1]])
    ends = np.r_[starts[1:], len(learner)]
    return [range(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


@dataclass(slots=True)
class CeilingResult:
    """Per-row ceiling predictions of a cohort.

    Attributes:
        p_next: ``[E]`` p(next answer correct) given the events up to and including each row
            (NaN where the learner has no later answer).
        oracle_matches: BKT: answers whose oracle probability equals the filter's formula at
            one of the two knowledge states (a check that the answer conditions were rebuilt
            right); IRT: answers whose oracle lies within the formula's range over the grid.
        answers: Answers in the cohort.
    """

    p_next: FloatArray
    oracle_matches: int
    answers: int


def ceiling_from_columns(
    cols: EventColumns,
    config: CohortConfig,
    evidence: Evidence = "full",
    prior: Prior = "true",
) -> CeilingResult:
    """Run the ceiling filter over every learner of a simulated cohort.

    Args:
        cols: The cohort's events, as :func:`simulate_cohort` returned them for ``config``.
        config: The cohort's configuration (its family, seed and curriculum).
        evidence: What the filter learns from (see :data:`Evidence`).
        prior: What it knows of initial knowledge (see :data:`Prior`).

    Returns:
        The per-row predictions and the oracle check.

    Raises:
        ValueError: If ``config`` is not the cohort's, or the family has no filter.
    """
    if config.family != cols.family or config.seed != cols.seed:
        raise ValueError("config: family and seed must be those of the cohort")
    if config.family not in ("bkt", "irt"):
        raise ValueError(f"family: no ceiling filter for {config.family!r}")
    curriculum = make_curriculum(config.n_skills, config.items_per_skill, config.curriculum_seed)
    if len(curriculum.items) != cols.objects.n_items:
        raise ValueError("config: the cohort was not simulated with this curriculum")
    nxt = next_answer_rows(cols)
    p_next = np.full(len(cols), np.nan)
    matches = answers = 0
    for rows in _learner_rows(cols):
        index = int(cols.learner[rows.start])
        run = _Run(cols, rows, curriculum, evidence, nxt, p_next)
        seed = learner_seed(config.seed, index, config.family)
        if config.family == "bkt":
            m, n = run.bkt(_RecordedBKT(index, curriculum, cols.objects, seed), prior)
        else:
            m, n = run.irt(_RecordedIRT(index, curriculum, cols.objects, seed), prior)
        matches += m
        answers += n
    return CeilingResult(p_next, matches, answers)


@dataclass(slots=True)
class _Run:
    """One learner's pass: evidence in row order, a prediction after every row."""

    cols: EventColumns
    rows: range
    curriculum: Curriculum
    evidence: Evidence
    nxt: npt.NDArray[np.int64]
    p_next: FloatArray

    def _trace(self) -> dict[int, AnswerContext | HintContext]:
        return trace_learner(self.cols, self.rows, self.curriculum)

    def _uses(self, ctx: AnswerContext | HintContext | None) -> bool:
        return ctx is not None and (self.evidence == "full" or isinstance(ctx, AnswerContext))

    def bkt(self, learner: _RecordedBKT, prior: Prior) -> tuple[int, int]:
        speed, help_seeking = learner.propensities.speed, learner.propensities.help_seeking
        l0 = bkt_initial_knowledge(learner, prior)
        weights = np.ones(1) if prior == "true" else ability_weights(learner, len(l0))
        filt = BKTJointFilter(learner, l0, weights)
        trace = self._trace()
        outcome: dict[int, FloatArray] = {}
        matches = 0
        for i, event in trace.items():
            if isinstance(event, AnswerContext):
                p_other, repeat = answer_probability(filt.p_know(event.item), event)
                outcome[i] = (1.0 - repeat) * p_other
                oracle = float(self.cols.p_correct[i])
                matches += bool(np.any(np.abs(outcome[i] - oracle) < 1e-12))
        for i in self.rows:
            ctx = trace.get(i)
            if ctx is not None and self._uses(ctx):
                p_know = filt.p_know(ctx.item)
                lik = _evidence_likelihood(p_know, ctx, self.evidence, help_seeking, speed)
                filt.observe(lik, ctx.item)
            if isinstance(ctx, AnswerContext):
                filt.learn(ctx.item, practice_quality(ctx))
            j = int(self.nxt[i])
            if j >= 0:
                k = filt.p_all_known(trace[j].item)
                pu, pk = outcome[j]
                self.p_next[i] = k * pk + (1.0 - k) * pu
        return matches, len(outcome)

    def irt(self, learner: _RecordedIRT, prior: Prior) -> tuple[int, int]:
        speed, help_seeking = learner.propensities.speed, learner.propensities.help_seeking
        deviations = learner.normal_draws[-len(learner.curriculum.skills) :]
        a = learner.ability
        for skill, dev in zip(learner.curriculum.skills, deviations, strict=True):
            expected = learner.level[skill.index] - 1.0 + learner.ability_weight * a + dev
            if expected != learner.theta[skill.index]:
                raise RuntimeError("simulator draw order changed: abilities do not match")
        if prior == "true":
            filt = IRTGridFilter(learner, np.array([a]), np.ones(1))
        else:
            grid, _ = _ability_grid(_IRT_ABILITY_POINTS)
            filt = IRTGridFilter(learner, grid, ability_weights(learner, _IRT_ABILITY_POINTS))
        trace = self._trace()
        answers = matches = 0
        cached = -1
        cached_p = math.nan
        for i in self.rows:
            ctx = trace.get(i)
            if ctx is not None and self._uses(ctx):
                filt.observe(self._likelihood(ctx, help_seeking, speed), ctx.item)
                cached = -1
            if isinstance(ctx, AnswerContext):
                answers += 1
                matches += self._within(filt, ctx)
                filt.learn(ctx.item, practice_quality(ctx))
                cached = -1
            j = int(self.nxt[i])
            if j >= 0:
                if cached != j:
                    target = trace[j]
                    assert isinstance(target, AnswerContext)
                    cached, cached_p = j, filt.predict(target.item, _outcome(target))
                self.p_next[i] = cached_p
        return matches, answers

    def _likelihood(
        self, ctx: AnswerContext | HintContext, help_seeking: float, speed: float
    ) -> Callable[[FloatArray], FloatArray]:
        evidence = self.evidence

        def likelihood(p_know: FloatArray) -> FloatArray:
            return _evidence_likelihood(p_know, ctx, evidence, help_seeking, speed)

        return likelihood

    def _within(self, filt: IRTGridFilter, ctx: AnswerContext) -> bool:
        # Before the answer's own evidence would be ideal; the range barely moves with it.
        p_know, _ = filt._grid(ctx.item)
        p = _outcome(ctx)(p_know)
        oracle = float(self.cols.p_correct[ctx.row])
        return bool(p.min() - 1e-9 <= oracle <= p.max() + 1e-9)


def _outcome(ctx: AnswerContext) -> Callable[[FloatArray], FloatArray]:
    def p_correct(p_know: FloatArray) -> FloatArray:
        p_other, repeat = answer_probability(p_know, ctx)
        out: FloatArray = (1.0 - repeat) * p_other
        return out

    return p_correct


def window_targets(cols: EventColumns, stride: int = 1) -> npt.NDArray[np.int64]:
    """Return the decision rows of a cohort's windows, in :class:`WindowDataset` order."""
    nxt = next_answer_rows(cols)
    rows = np.flatnonzero(nxt >= 0).astype(np.int64)
    if stride > 1:
        rows = rows[cols.seq[rows] % stride == 0]
    return rows


def observable_ceiling(
    family: str,
    seed: int,
    n_learners: int,
    *,
    problems_per_learner: int = 120,
    stride: int = 1,
    evidence: Evidence = "full",
    prior: Prior = "true",
    **cohort: int,
) -> FloatArray:
    """Return the observable ceiling's p(next answer correct) for each evaluation window.

    The cohort is simulated as :func:`inference.lab.dataset.build_dataset` simulates it (same
    configuration, same seed), and the result is aligned with its :class:`WindowDataset`:
    element ``k`` predicts ``y_next[k]`` from the events up to ``decision_row[k]``.

    Args:
        family: Simulator family, ``bkt`` or ``irt``.
        seed: Cohort seed.
        n_learners: Learners in the cohort.
        problems_per_learner: Mean problems per learner.
        stride: Keep every ``stride``-th decision point, as the dataset did.
        evidence: What the filter learns from (see :data:`Evidence`).
        prior: What it knows of initial knowledge (see :data:`Prior`).
        **cohort: Other :class:`CohortConfig` fields, as passed to ``build_dataset``.

    Returns:
        ``[N]`` probabilities, one per window.
    """
    config = CohortConfig(
        family=family,
        n_learners=n_learners,
        seed=seed,
        problems_per_learner=problems_per_learner,
        **cohort,
    )
    cols = simulate_cohort(config)
    result = ceiling_from_columns(cols, config, evidence, prior)
    p: FloatArray = result.p_next[window_targets(cols, stride)]
    return p


def ceiling_for_windows(
    cols: EventColumns,
    config: CohortConfig,
    decision_row: npt.NDArray[np.int64],
    evidence: Evidence = "full",
    prior: Prior = "true",
) -> FloatArray:
    """Return the ceiling for the windows with the given decision rows of a simulated cohort.

    Use with a :class:`WindowDataset` built from ``cols``: pass its ``decision_row``.

    Raises:
        ValueError: If a decision row has no later answer.
    """
    p: FloatArray = ceiling_from_columns(cols, config, evidence, prior).p_next[decision_row]
    if np.isnan(p).any():
        raise ValueError("decision_row: a window without a later answer")
    return p

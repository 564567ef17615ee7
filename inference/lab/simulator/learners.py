"""Simulated learners: knowledge that grows with practice and a behavioural state that switches.

Two knowledge families share one behaviour engine:

* :class:`BKTLearner` — each skill is known or not (Bayesian knowledge tracing: learn, slip,
  guess), and a skill is learnt well only once its prerequisites are known.
* :class:`IRTLearner` — each skill has a continuous ability that moves with practice; items
  follow a 3PL-like response function with a slip ceiling.

The behavioural state is a Markov chain with per-learner propensities that drift from session
to session; what each state looks like in events follows the issue's descriptions, with
engaged learners sometimes showing the same surface signs so that no rule separates them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from inference.lab.curriculum import Curriculum, Item
from inference.lab.simulator.columns import EVENT_TYPE_CODE, RELATION_CODE, ObjectTable
from inference.states import (
    ANCHORING,
    CONFIRMATION,
    GAMING,
    NONE,
    OVERCONFIDENCE,
    WHEEL_SPINNING,
)
from schemas.events import EventType, ResourceRelation

_START = EVENT_TYPE_CODE[EventType.PROBLEM_START]
_ANSWER = EVENT_TYPE_CODE[EventType.ANSWER_SUBMIT]
_HINT = EVENT_TYPE_CODE[EventType.HINT_REQUEST]
_FEEDBACK = EVENT_TYPE_CODE[EventType.FEEDBACK_VIEW]
_RESOURCE = EVENT_TYPE_CODE[EventType.RESOURCE_VIEW]
_COMPLETE = EVENT_TYPE_CODE[EventType.PROBLEM_COMPLETE]
_PLAY = EVENT_TYPE_CODE[EventType.MEDIA_PLAY]
_PAUSE = EVENT_TYPE_CODE[EventType.MEDIA_PAUSE]
_SEEK = EVENT_TYPE_CODE[EventType.MEDIA_SEEK]
_MEDIA_DONE = EVENT_TYPE_CODE[EventType.MEDIA_COMPLETE]
_SUPPORTS = RELATION_CODE[ResourceRelation.SUPPORTS]
_CONTRADICTS = RELATION_CODE[ResourceRelation.CONTRADICTS]
_NEUTRAL = RELATION_CODE[ResourceRelation.NEUTRAL]

MAX_ATTEMPTS = 4
"""Answers an item accepts before the LMS shows the solution and closes the problem."""

_NAN = math.nan


def sigmoid(x: float) -> float:
    """Return the logistic function of ``x``, without overflow for large ``|x|``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def logit(p: float) -> float:
    """Return the log-odds of ``p``."""
    return math.log(p / (1.0 - p))


class EventLog:
    """Append-only columns that simulated learners write their events into."""

    __slots__ = (
        "attempt",
        "correct",
        "duration_s",
        "event_type",
        "hint_count",
        "hint_level",
        "learner",
        "obj",
        "p_correct",
        "relation",
        "response",
        "score",
        "seq",
        "session",
        "state",
        "t_us",
    )

    def __init__(self) -> None:
        self.learner: list[int] = []
        self.seq: list[int] = []
        self.event_type: list[int] = []
        self.t_us: list[int] = []
        self.session: list[int] = []
        self.obj: list[int] = []
        self.correct: list[int] = []
        self.response: list[int] = []
        self.attempt: list[int] = []
        self.duration_s: list[float] = []
        self.hint_level: list[int] = []
        self.hint_count: list[int] = []
        self.relation: list[int] = []
        self.score: list[float] = []
        self.state: list[int] = []
        self.p_correct: list[float] = []

    def __len__(self) -> int:
        return len(self.learner)


@dataclass(slots=True)
class Propensities:
    """Per-learner hazards of entering each state and of staying in it.

    Attributes:
        overconfidence: Hazard per problem of becoming overconfident (higher after a streak).
        gaming: Hazard per problem of starting to game (higher when tired or failing).
        anchoring: Hazard, after a wrong answer, of anchoring on the response.
        confirmation: Hazard, after a wrong answer, of seeking confirming material.
        wheel_spinning: Hazard per problem, once stuck on a skill, of spinning on it.
        stay_overconfidence: Chance per problem of staying overconfident.
        stay_gaming: Chance per problem of staying in gaming.
        hint_style: Share of gaming episodes that abuse hints rather than guess.
        help_seeking: How readily the learner asks for a hint when stuck.
        speed: Multiplier on the learner's answer times.
    """

    overconfidence: float
    gaming: float
    anchoring: float
    confirmation: float
    wheel_spinning: float
    stay_overconfidence: float
    stay_gaming: float
    hint_style: float
    help_seeking: float
    speed: float


@dataclass(slots=True)
class _Problem:
    """Bookkeeping of the problem in progress."""

    item: Item
    obj: int
    attempt: int = 0
    hints: int = 0
    bottom_out: bool = False
    tried: set[int] = field(default_factory=set)
    last_wrong: int = -1
    feedback_read: bool = True


class SimulatedLearner:
    """One simulated learner; subclasses supply the knowledge model.

    Args:
        index: Learner index in the cohort.
        curriculum: The curriculum.
        objects: Object table (items, resources, videos) of the curriculum.
        seed: Seed of this learner's random stream.
        start_us: Timestamp of the learner's first event, microseconds since the epoch.
        class_gaming: Class-level multiplier on gaming (classes differ in climate).
    """

    def __init__(
        self,
        index: int,
        curriculum: Curriculum,
        objects: ObjectTable,
        seed: int,
        start_us: int,
        class_gaming: float = 1.0,
    ) -> None:
        self.index = index
        self.curriculum = curriculum
        self.objects = objects
        self.rng = random.Random(seed)
        self.t_us = start_us
        self.seq = 0
        self.session = 0
        self.session_length = 0
        self.in_session = 0
        self.state = NONE
        self.ws_skill = -1
        self.success_streak = 0
        self.failures_recent = 0.0
        n_skills = len(curriculum.skills)
        self.since_gain = [0] * n_skills
        self.practice = [0] * n_skills
        r = self.rng
        self.ability = self._normal(0.0, 1.0)
        self.propensities = Propensities(
            overconfidence=0.02 * self._lognormal(0.8),
            gaming=0.009 * class_gaming * self._lognormal(0.9),
            anchoring=0.14 * self._lognormal(0.7),
            confirmation=0.14 * self._lognormal(0.7),
            wheel_spinning=0.13 * self._lognormal(0.5),
            stay_overconfidence=0.6 + 0.3 * r.random(),
            stay_gaming=0.55 + 0.35 * r.random(),
            hint_style=r.random(),
            help_seeking=0.5 * self._lognormal(0.5),
            speed=self._lognormal(0.3),
        )
        self._new_session(first=True)

    # ------------------------------------------------------------------ random draws
    def _normal(self, mu: float, sigma: float) -> float:
        # Box-Muller on random(): random() is the one draw Python keeps stable across versions.
        r = self.rng.random
        u1 = r() or 1e-12
        return mu + sigma * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * r())

    def _lognormal(self, sigma: float) -> float:
        return math.exp(self._normal(0.0, sigma))

    # ------------------------------------------------------------------ knowledge (family)
    def p_know(self, item: Item) -> float:
        """Return the probability of a correct first answer from knowledge alone."""
        raise NotImplementedError

    def mastered(self, skill: int) -> bool:
        """Return whether the learner truly masters ``skill``."""
        raise NotImplementedError

    def blocked(self, skill: int) -> bool:
        """Return whether the learner cannot currently learn ``skill`` well."""
        raise NotImplementedError

    def _learn(self, item: Item, quality: float) -> None:
        """Apply one practice opportunity of the given quality to the item's skills."""
        raise NotImplementedError

    def all_mastered(self) -> bool:
        """Return whether every skill of the curriculum is mastered."""
        return all(self.mastered(s.index) for s in self.curriculum.skills)

    # ------------------------------------------------------------------ emission
    def _emit(
        self,
        log: EventLog,
        code: int,
        duration_s: float,
        obj: int,
        *,
        correct: int = -1,
        response: int = -1,
        attempt: int = 0,
        hint_level: int = -1,
        hint_count: int = 0,
        relation: int = -1,
        score: float = _NAN,
        p_correct: float = _NAN,
        timed: bool = True,
    ) -> None:
        # Durations are whole milliseconds so that timestamps and durations stay exact.
        ms = max(1, round(duration_s * 1000.0))
        self.t_us += ms * 1000
        log.learner.append(self.index)
        log.seq.append(self.seq)
        log.event_type.append(code)
        log.t_us.append(self.t_us)
        log.session.append(self.session)
        log.obj.append(obj)
        log.correct.append(correct)
        log.response.append(response)
        log.attempt.append(attempt)
        log.duration_s.append(ms / 1000.0 if timed else _NAN)
        log.hint_level.append(hint_level)
        log.hint_count.append(hint_count)
        log.relation.append(relation)
        log.score.append(score)
        log.state.append(self.state)
        log.p_correct.append(p_correct)
        self.seq += 1

    # ------------------------------------------------------------------ sessions and states
    def _new_session(self, first: bool = False) -> None:
        r = self.rng
        if not first:
            self.session += 1
            # One to four days between sessions, at a varying hour.
            self.t_us += int((86400.0 * (1 + 3 * r.random()) + 3600.0 * 4 * r.random()) * 1e6)
            p = self.propensities
            # Propensities drift between sessions: learners change over a course.
            p.overconfidence *= self._lognormal(0.25)
            p.gaming *= self._lognormal(0.25)
            p.anchoring *= self._lognormal(0.2)
            p.confirmation *= self._lognormal(0.2)
        self.session_length = 12 + int(30 * r.random())
        self.in_session = 0
        if self.state in (ANCHORING, CONFIRMATION, GAMING):
            self.state = NONE

    def _state_at_start(self, item: Item) -> None:
        r = self.rng.random
        p = self.propensities
        skill = item.skills[0]
        state = self.state
        fatigue = self.in_session / max(1, self.session_length)
        stuck = not self.mastered(skill) and (
            (self.since_gain[skill] >= 5 and self.blocked(skill)) or self.since_gain[skill] >= 10
        )
        if state == WHEEL_SPINNING:
            if skill != self.ws_skill or self.mastered(skill) or r() < 0.15:
                state = NONE
        elif stuck and r() < p.wheel_spinning:
            state = WHEEL_SPINNING
            self.ws_skill = skill
        elif state in (ANCHORING, CONFIRMATION):
            if r() < 0.6:
                state = NONE
        elif state == OVERCONFIDENCE:
            if r() > p.stay_overconfidence:
                state = NONE
        elif state == GAMING and r() > p.stay_gaming * (0.8 + 0.2 * fatigue):
            state = NONE
        if state == NONE:
            streak = min(self.success_streak, 6)
            if r() < p.overconfidence * (1.0 + 0.5 * streak):
                state = OVERCONFIDENCE
            elif r() < p.gaming * (1.0 + 2.0 * fatigue) * (1.0 + self.failures_recent):
                state = GAMING
        self.state = state

    # ------------------------------------------------------------------ one problem
    def work_on(self, item_index: int, log: EventLog) -> None:
        """Work one problem on item ``item_index``, appending its events to ``log``."""
        if self.in_session >= self.session_length:
            self._new_session()
        self.in_session += 1
        item = self.curriculum.items[item_index]
        skill = item.skills[0]
        r = self.rng.random
        self._state_at_start(item)
        first_of_skill = self.practice[skill] == 0
        for s in item.skills:
            self.practice[s] += 1
        # Engaged learners often watch the skill's video before its first problem.
        if first_of_skill and self.state == NONE and r() < 0.35:
            self._watch_video(skill, log, 60.0 + 120.0 * r())
        self._emit(log, _START, 3.0 + 20.0 * r(), item.index, timed=False)
        prob = _Problem(item, item.index)
        first_correct = False
        while True:
            prob.attempt += 1
            self._hints_before_answer(prob, log)
            correct = self._answer(prob, log)
            if prob.attempt == 1:
                first_correct = correct
            if correct or prob.attempt >= MAX_ATTEMPTS:
                break
            self._after_wrong(prob, log)
        if correct and self.state == NONE and r() < 0.3:
            self._emit(log, _FEEDBACK, 1.0 + 3.0 * r(), prob.obj)
        score = 1.0 if first_correct else (0.5 if correct else 0.0)
        if prob.hints:
            score = min(score, 0.5)
        self._emit(log, _COMPLETE, 0.5 + r(), prob.obj, score=score)
        # Streaks and failures feed the chain (success breeds overconfidence; failure gaming).
        self.success_streak = self.success_streak + 1 if first_correct else 0
        self.failures_recent = 0.7 * self.failures_recent + (0.0 if first_correct else 0.3)
        self.t_us += int((2.0 + 8.0 * r()) * 1e6)

    def _watch_video(self, skill: int, log: EventLog, length_s: float) -> None:
        r = self.rng.random
        video = self.objects.video(skill, len(self.curriculum.skills))
        self._emit(log, _PLAY, 1.0 + 2.0 * r(), video, timed=False)
        watched = length_s * (0.3 + 0.7 * r())
        if r() < 0.3:
            self._emit(log, _SEEK, watched * 0.5, video)
            watched *= 0.5
        if watched > 0.8 * length_s:
            self._emit(log, _MEDIA_DONE, watched, video)
        else:
            self._emit(log, _PAUSE, watched, video)

    def _hints_before_answer(self, prob: _Problem, log: EventLog) -> None:
        r = self.rng.random
        item = prob.item
        state = self.state
        if prob.bottom_out:
            return
        if state == GAMING and r() < self.propensities.hint_style:
            # Hint abuse: click through to the bottom-out hint without reading.
            while prob.hints < item.hint_count:
                prob.hints += 1
                self._emit(
                    log,
                    _HINT,
                    0.6 + 2.2 * r() ** 2,
                    prob.obj,
                    hint_level=prob.hints,
                    hint_count=item.hint_count,
                )
            prob.bottom_out = True
            return
        if state in (NONE, WHEEL_SPINNING):
            p_known = self.p_know(item)
            p_hint = (
                self.propensities.help_seeking
                * (1.0 - p_known)
                * (1.6 if state == WHEEL_SPINNING else 1.0)
            )
            if prob.attempt > 1:
                p_hint *= 0.7
            while prob.hints < item.hint_count and r() < p_hint:
                prob.hints += 1
                # Engaged learners read each hint; a few click on quickly anyway.
                read = 0.8 + 2.0 * r() if r() < 0.06 else 4.0 + 14.0 * r()
                self._emit(
                    log,
                    _HINT,
                    read,
                    prob.obj,
                    hint_level=prob.hints,
                    hint_count=item.hint_count,
                )
                p_hint *= 0.45
            if prob.hints >= item.hint_count:
                prob.bottom_out = True

    def _answer(self, prob: _Problem, log: EventLog) -> bool:
        r = self.rng.random
        item = prob.item
        state = self.state
        n_options = item.n_options
        guess = 1.0 / n_options
        p_known = self.p_know(item)
        typical = item.typical_time_s * self.propensities.speed
        # Chance of resending the last wrong response; the oracle is the marginal over it.
        repeat = 0.0
        if prob.bottom_out:
            p = 0.96
            duration = 2.0 + 5.0 * r()
        elif state == GAMING:
            # Systematic rapid guessing: a new option each time, a couple of seconds each.
            p = 1.0 / max(1, n_options - len(prob.tried))
            duration = 0.8 + 3.5 * r() ** 2
        elif state == OVERCONFIDENCE:
            weight = min(0.85, max(0.1, 0.35 + 0.3 * item.difficulty))
            p = p_known * (1.0 - weight) + guess * weight
            duration = typical * (0.14 + 0.32 * r())
        elif state == ANCHORING and prob.attempt > 1:
            repeat = 0.8
            p = self._retry_p(p_known, prob, guess)
            duration = typical * (0.15 + 0.3 * r())
        else:
            if prob.attempt == 1:
                # Hints help the learner learn; only the bottom-out hint gives the answer away.
                p = p_known
                # Knowing shows in the timing: sure answers come quicker than struggling ones.
                slow = math.exp(1.2 * (0.55 - p_known)) * (1.3 if state == WHEEL_SPINNING else 1.0)
                duration = typical * slow * self._lognormal(0.35)
                # Some engaged answers are quick: the learner just knows it.
                if r() < 0.04:
                    duration = typical * (0.05 + 0.2 * r())
            else:
                p = self._retry_p(p_known, prob, guess)
                duration = typical * (0.3 + 0.5 * r()) * self._lognormal(0.4)
                if state == CONFIRMATION:
                    p = 0.5 * p + 0.5 * p_known
                # Engaged learners occasionally resend the same response (a slip, a misread).
                repeat = 0.05
        if prob.last_wrong <= 0:
            repeat = 0.0
        p_other = p
        p = (1.0 - repeat) * p_other
        correct = r() < p
        if correct:
            response = 0
        elif repeat > 0.0 and r() * (repeat + (1.0 - repeat) * (1.0 - p_other)) < repeat:
            response = prob.last_wrong
        else:
            choices = [o for o in range(1, n_options) if o not in prob.tried] or list(
                range(1, n_options)
            )
            # The first distractor is the common misconception.
            response = choices[0] if r() < 0.45 else choices[int(r() * len(choices))]
        if response > 0:
            prob.tried.add(response)
            prob.last_wrong = response
        self._emit(
            log,
            _ANSWER,
            max(0.3, duration),
            prob.obj,
            correct=int(correct),
            response=response,
            attempt=prob.attempt,
            p_correct=p,
        )
        self._learn(item, self._quality(prob))
        return correct

    def _retry_p(self, p_known: float, prob: _Problem, guess: float) -> float:
        gain = 0.3 if prob.feedback_read else 0.08
        remaining = max(1, prob.item.n_options - len(prob.tried))
        floor = 1.0 / remaining
        return min(0.97, max(floor * 0.7, p_known + (1.0 - p_known) * gain))

    def _quality(self, prob: _Problem) -> float:
        state = self.state
        if state == NONE:
            q = 1.0 + (0.3 if prob.hints > 0 and not prob.bottom_out else 0.0)
            return q * (0.5 if prob.bottom_out else 1.0)
        return {
            OVERCONFIDENCE: 0.4,
            ANCHORING: 0.15,
            CONFIRMATION: 0.3,
            GAMING: 0.05,
            WHEEL_SPINNING: 0.05,
        }[state]

    def _after_wrong(self, prob: _Problem, log: EventLog) -> None:
        r = self.rng.random
        p = self.propensities
        if self.state == NONE:
            if r() < p.anchoring:
                self.state = ANCHORING
            elif r() < p.confirmation:
                self.state = CONFIRMATION
        elif self.state == OVERCONFIDENCE and r() < 0.5 * p.anchoring:
            self.state = ANCHORING
        state = self.state
        skill = prob.item.skills[0]
        if state in (NONE, WHEEL_SPINNING):
            view, dwell, resource = 0.88, 9.0 * self._lognormal(0.6), 0.22
            if state == WHEEL_SPINNING:
                resource = 0.35
            if r() < 0.1:
                dwell = 1.0 + 2.0 * r()  # a skim now and then
            relations = (0.1, 0.6)  # P(supports), P(contradicts)
        elif state == CONFIRMATION:
            view, dwell, resource = 0.6, 2.2 * self._lognormal(0.5), 0.85
            relations = (0.7, 0.1)
        elif state == ANCHORING:
            view, dwell, resource = 0.45, 2.0 * self._lognormal(0.5), 0.05
            relations = (0.3, 0.4)
        elif state == OVERCONFIDENCE:
            view, dwell, resource = 0.4, 1.5 * self._lognormal(0.5), 0.05
            relations = (0.3, 0.4)
        else:
            view, dwell, resource = 0.25, 0.8 + r(), 0.02
            relations = (0.3, 0.4)
        prob.feedback_read = False
        if r() < view:
            self._emit(log, _FEEDBACK, dwell, prob.obj)
            prob.feedback_read = dwell > 4.0
        n_res = 0
        while r() < resource and n_res < 3:
            n_res += 1
            u = r()
            relation = (
                _SUPPORTS
                if u < relations[0]
                else _CONTRADICTS
                if u < relations[0] + relations[1]
                else _NEUTRAL
            )
            dwell_res = 35.0 * self._lognormal(0.6)
            self._emit(
                log,
                _RESOURCE,
                dwell_res,
                self.objects.resource(skill, int(4 * r())),
                relation=relation,
            )
            if relation == _CONTRADICTS:
                prob.feedback_read = True
            resource *= 0.4
        if state == WHEEL_SPINNING and r() < 0.15:
            self._watch_video(skill, log, 60.0 + 120.0 * r())


class BKTLearner(SimulatedLearner):
    """Knowledge as known/unknown skills with learn, slip and guess (Corbett & Anderson).

    A skill's learn rate falls sharply while one of its prerequisites is still unknown.
    """

    def __init__(
        self,
        index: int,
        curriculum: Curriculum,
        objects: ObjectTable,
        seed: int,
        start_us: int,
        class_gaming: float = 1.0,
    ) -> None:
        super().__init__(index, curriculum, objects, seed, start_us, class_gaming)
        a = self.ability
        self.carelessness = self._lognormal(0.4)
        self.guessing = self._lognormal(0.2)
        self.known: list[bool] = []
        self.learn_rate: list[float] = []
        for skill in curriculum.skills:
            l0 = sigmoid(-0.5 + 0.9 * a - 0.35 * skill.depth + self._normal(0.0, 0.6))
            self.known.append(self.rng.random() < l0)
            base = 0.12 + 0.16 * ((skill.index * 0.618) % 1.0)
            self.learn_rate.append(sigmoid(logit(base) + 0.4 * a + self._normal(0.0, 0.4)))

    def p_know(self, item: Item) -> float:
        """Return ``1 - slip`` when all the item's skills are known, else the guess rate."""
        b = item.difficulty
        if all(self.known[s] for s in item.skills):
            slip = (0.08 + 0.15 * sigmoid(1.5 * b - 0.5)) * self.carelessness
            return 1.0 - min(0.45, slip)
        guess = (1.0 / item.n_options + 0.36 * sigmoid(-1.5 * b)) * self.guessing
        return min(0.5, guess)

    def mastered(self, skill: int) -> bool:
        """Return whether the skill is known."""
        return self.known[skill]

    def blocked(self, skill: int) -> bool:
        """Return whether a prerequisite of the skill is unknown."""
        return any(not self.known[p] for p in self.curriculum.skills[skill].prerequisites)

    def _learn(self, item: Item, quality: float) -> None:
        r = self.rng.random
        for s in item.skills:
            if self.known[s]:
                continue
            rate = self.learn_rate[s] * quality * (0.12 if self.blocked(s) else 1.0)
            if r() < rate:
                self.known[s] = True
                self.since_gain[s] = 0
            else:
                self.since_gain[s] += 1


class IRTLearner(SimulatedLearner):
    """Knowledge as a continuous ability per skill that grows with practice.

    Ability on a skill is the learner's general ability plus a small skill-specific deviation
    plus what practice has added (an additive-factors learning curve with diminishing
    returns, scaled by the learner's learning rate, the quality of the practice and how well
    the prerequisites are known, and largest on items of moderate success chance). Responses
    follow a 3PL-like function with a slip ceiling.
    """

    skill_sd = 0.3
    ability_weight = 0.8
    slope = 0.7
    rate_sd = 0.3
    rate_base = 0.45
    mastery_margin = 2.0

    def __init__(
        self,
        index: int,
        curriculum: Curriculum,
        objects: ObjectTable,
        seed: int,
        start_us: int,
        class_gaming: float = 1.0,
    ) -> None:
        super().__init__(index, curriculum, objects, seed, start_us, class_gaming)
        a = self.ability
        self.slip = 0.03 + 0.06 * self.rng.random()
        self.rate = self.rate_base * self._lognormal(self.rate_sd) * math.exp(0.2 * a)
        self.level: list[float] = []
        for skill in curriculum.skills:
            items = curriculum.items_by_skill[skill.index]
            level = sum(curriculum.items[i].difficulty for i in items) / len(items)
            self.level.append(level)
        self.theta = [
            self.level[s.index] - 1.0 + self.ability_weight * a + self._normal(0.0, self.skill_sd)
            for s in curriculum.skills
        ]
        self.opportunities = [0.0] * len(curriculum.skills)
        self.gain_acc = [0.0] * len(curriculum.skills)

    def _ability(self, item: Item) -> float:
        return min(self.theta[s] for s in item.skills)

    def p_know(self, item: Item) -> float:
        """Return the 3PL-like success probability from the skills' abilities."""
        c = 0.8 / item.n_options
        x = self.slope * item.discrimination * (self._ability(item) - item.difficulty)
        return c + (1.0 - c - self.slip) * sigmoid(x)

    def mastered(self, skill: int) -> bool:
        """Return whether the ability is ``mastery_margin`` logits above the skill's level.

        At the default margin a learner solves the skill's typical item about 80% of the time.
        """
        return self.theta[skill] >= self.level[skill] + self.mastery_margin

    def _prerequisite_factor(self, skill: int) -> float:
        factor = 1.0
        for p in self.curriculum.skills[skill].prerequisites:
            factor = min(factor, sigmoid(2.0 * (self.theta[p] - self.level[p])))
        return factor

    def blocked(self, skill: int) -> bool:
        """Return whether weak prerequisites leave practice on the skill with little effect."""
        return self._prerequisite_factor(skill) < 0.5

    def _learn(self, item: Item, quality: float) -> None:
        c = 0.8 / item.n_options
        slope = self.slope * item.discrimination
        for s in item.skills:
            # Desirable difficulty: an item the learner would solve about two times in three on
            # this skill teaches the skill the most; one far too easy or too hard teaches little.
            p = c + (1.0 - c - self.slip) * sigmoid(slope * (self.theta[s] - item.difficulty))
            bell = math.exp(-(((p - 0.65) / 0.22) ** 2))
            # Too hard still teaches a little; far too easy teaches nothing more.
            zone = 0.25 + 0.75 * bell if p < 0.65 else bell
            self.opportunities[s] += quality
            gain = self.rate * quality * zone * self._prerequisite_factor(s)
            self.theta[s] += gain
            self.gain_acc[s] += gain
            if self.gain_acc[s] >= 0.4:
                self.gain_acc[s] = 0.0
                self.since_gain[s] = 0
            else:
                self.since_gain[s] += 1


FAMILIES: dict[str, type[SimulatedLearner]] = {"bkt": BKTLearner, "irt": IRTLearner}
"""Simulator families by name."""

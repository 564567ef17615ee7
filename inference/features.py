"""Online features of learning events: one implementation for training and for the stream.

Every event updates a per-learner :class:`LearnerFeatureState` and the per-item
:class:`ItemNorms` in O(1) and yields a vector of :data:`EVENT_FEATURES`; before a learner
answers an item, :meth:`FeatureExtractor.query` yields the :data:`QUERY_FEATURES` of the
(learner, item) pair. Values are already on a unit-ish scale (log-ratios, clipped counts,
rates), so a model needs no scaler.

Both the stream (:meth:`FeatureExtractor.update` on a :class:`LearningEvent`) and the training
path (:meth:`FeatureExtractor.observe` on columns) go through :meth:`FeatureExtractor.observe`,
so there is no train/serve skew by construction; a unit test checks it anyway.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from schemas.events import EventType, LearningEvent, ResourceRelation

EVENT_FEATURES: tuple[str, ...] = (
    "type_problem_start",
    "type_answer",
    "type_hint",
    "type_feedback",
    "type_resource",
    "type_complete",
    "type_media",
    "answer_correct",
    "answer_wrong",
    "log_time_ratio",
    "rapid_guess",
    "attempt",
    "repeat_response",
    "new_response_share",
    "hints_on_item",
    "hint_depth",
    "bottom_out",
    "fast_hint",
    "feedback_dwell",
    "feedback_skipped",
    "resource_supports_after_wrong",
    "resource_contradicts_after_wrong",
    "resource_neutral_after_wrong",
    "resource_dwell",
    "media_dwell",
    "score",
    "gap",
    "session_minutes",
    "item_success",
    "item_difficulty",
    "item_difficulty_known",
    "elo_expected",
    "skill_attempts",
    "skill_recent_correct",
    "skill_mastery",
    "skill_since_gain",
    "skill_streak",
    "skill_no_three_in_ten",
    "recent_correct",
    "recent_rapid",
    "recent_hint",
    "recent_repeat",
    "recent_feedback_skip",
    "recent_supports",
    "recent_time_ratio",
    "recent_bottom_out",
    "experience",
)
"""Names of the per-event features, in vector order."""

QUERY_FEATURES: tuple[str, ...] = (
    "item_success",
    "item_evidence",
    "item_time_norm",
    "item_difficulty",
    "item_difficulty_known",
    "item_elo_difficulty",
    "item_skill_count",
    "skill_attempts",
    "skill_recent_correct",
    "skill_mastery",
    "skill_since_gain",
    "skill_streak",
    "skill_no_three_in_ten",
    "elo_expected",
    "elo_logit",
    "retry",
    "retry_attempts",
    "retry_feedback_read",
    "retry_bottom_out",
    "retry_hints",
    "recent_correct",
    "recent_rapid",
    "recent_hint",
    "recent_repeat",
    "recent_feedback_skip",
    "recent_time_ratio",
    "experience",
)
"""Names of the features of a (learner, candidate item) pair, in vector order."""

EVENT_FEATURE_INDEX: dict[str, int] = {n: i for i, n in enumerate(EVENT_FEATURES)}
QUERY_FEATURE_INDEX: dict[str, int] = {n: i for i, n in enumerate(QUERY_FEATURES)}

_TYPES: tuple[EventType, ...] = tuple(EventType)
_TYPE_CODE: dict[EventType, int] = {t: i for i, t in enumerate(_TYPES)}
_RELATIONS: tuple[ResourceRelation, ...] = tuple(ResourceRelation)
_RELATION_CODE: dict[ResourceRelation, int] = {r: i for i, r in enumerate(_RELATIONS)}
_START = _TYPE_CODE[EventType.PROBLEM_START]
_ANSWER = _TYPE_CODE[EventType.ANSWER_SUBMIT]
_HINT = _TYPE_CODE[EventType.HINT_REQUEST]
_FEEDBACK = _TYPE_CODE[EventType.FEEDBACK_VIEW]
_RESOURCE = _TYPE_CODE[EventType.RESOURCE_VIEW]
_COMPLETE = _TYPE_CODE[EventType.PROBLEM_COMPLETE]
_SUPPORTS = _RELATION_CODE[ResourceRelation.SUPPORTS]
_CONTRADICTS = _RELATION_CODE[ResourceRelation.CONTRADICTS]
_NEUTRAL = _RELATION_CODE[ResourceRelation.NEUTRAL]
_MEDIA = frozenset(
    _TYPE_CODE[t]
    for t in (
        EventType.MEDIA_PLAY,
        EventType.MEDIA_PAUSE,
        EventType.MEDIA_SEEK,
        EventType.MEDIA_COMPLETE,
    )
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Priors of an item nobody has answered yet: a 30-second item solved 60% of the time.
_PRIOR_LOG_TIME = math.log(30.0)
_PRIOR_TIME = 30.0
_PRIOR_SUCCESS = 0.6
_PRIOR_WEIGHT = 3.0
# Rapid guess: under 10% of the item's mean time (normative threshold NT10, Wise & Ma 2012).
RAPID_GUESS_SHARE = 0.1
# Feedback read for less than this many seconds counts as skipped.
FEEDBACK_READ_S = 4.0
# Generic BKT parameters for the mastery estimate (the usual defaults of skill builders).
_BKT_L0, _BKT_T, _BKT_SLIP, _BKT_GUESS = 0.3, 0.12, 0.1, 0.25
# A new session starts after half an hour without events.
_SESSION_GAP_US = 30 * 60 * 1_000_000
_EWMA = 0.15
_SKILL_EWMA = 0.3
_MAX_HASHES = 8

# Layout of one skill's statistics list (compact for serialisation).
(_S_ATTEMPTS, _S_CORRECT, _S_MASTERY, _S_BEST, _S_SINCE_GAIN, _S_STREAK, _S_THREE, _S_THETA) = (
    range(8)
)
_NEW_SKILL = (0.0, _PRIOR_SUCCESS, _BKT_L0, _BKT_L0, 0.0, 0.0, 0.0, 0.0)


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _elo_k(n: float) -> float:
    # Uncertainty function of the Elo rating for learners and items (Pelanek 2016).
    return 0.8 / (1.0 + 0.05 * n)


class SkillView(NamedTuple):
    """What the features know about a learner on one skill.

    Attributes:
        attempts: First answers on the skill.
        recent_correct: Recent first-answer success (exponentially weighted).
        mastery: Knowledge-tracing estimate that the skill is mastered.
        since_gain: First answers since the mastery estimate last rose.
        streak: Correct first answers in a row.
        three_in_a_row: Whether three correct in a row ever happened.
    """

    attempts: int
    recent_correct: float
    mastery: float
    since_gain: int
    streak: int
    three_in_a_row: bool


class ItemNorms:
    """Running statistics of one item, shared by all learners, O(1) per answer.

    Attributes:
        n_first: First answers seen.
        n_first_correct: Correct first answers seen.
        sum_log_time: Sum of log durations of first answers.
        sum_time: Sum of durations of first answers, seconds.
        n_timed: First answers with a duration.
        elo_difficulty: Elo difficulty of the item.
        lms_difficulty: Difficulty the LMS last reported, if any.
    """

    __slots__ = (
        "elo_difficulty",
        "lms_difficulty",
        "n_first",
        "n_first_correct",
        "n_timed",
        "sum_log_time",
        "sum_time",
    )

    def __init__(self) -> None:
        self.n_first = 0
        self.n_first_correct = 0
        self.sum_log_time = 0.0
        self.sum_time = 0.0
        self.n_timed = 0
        self.elo_difficulty = 0.0
        self.lms_difficulty: float | None = None

    def success_rate(self) -> float:
        """Return the first-answer success rate, shrunk toward the prior."""
        return (self.n_first_correct + _PRIOR_SUCCESS * _PRIOR_WEIGHT) / (
            self.n_first + _PRIOR_WEIGHT
        )

    def log_time_norm(self) -> float:
        """Return the item's typical log answer time (geometric mean, shrunk to the prior)."""
        return (self.sum_log_time + _PRIOR_LOG_TIME * _PRIOR_WEIGHT) / (
            self.n_timed + _PRIOR_WEIGHT
        )

    def mean_time(self) -> float:
        """Return the item's mean first-answer time in seconds, shrunk to the prior."""
        return (self.sum_time + _PRIOR_TIME * _PRIOR_WEIGHT) / (self.n_timed + _PRIOR_WEIGHT)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemNorms:
        """Rebuild from :meth:`to_dict` output."""
        norms = cls()
        norms.n_first = int(data["n_first"])
        norms.n_first_correct = int(data["n_first_correct"])
        norms.sum_log_time = float(data["sum_log_time"])
        norms.sum_time = float(data["sum_time"])
        norms.n_timed = int(data["n_timed"])
        norms.elo_difficulty = float(data["elo_difficulty"])
        lms = data["lms_difficulty"]
        norms.lms_difficulty = None if lms is None else float(lms)
        return norms

    def to_bytes(self) -> bytes:
        """Return the state as JSON bytes (for a changelog-backed table)."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> ItemNorms:
        """Rebuild from :meth:`to_bytes` output."""
        return cls.from_dict(orjson.loads(data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItemNorms) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable state, compared by value


class LearnerFeatureState:
    """Everything the features remember about one learner, O(1) per event.

    Per-skill statistics live in :attr:`skills` as short lists (attempts, recent correctness,
    BKT mastery, best mastery, attempts since last gain, streak, three-in-a-row reached, Elo
    ability), which keeps the serialised form small.
    """

    __slots__ = (
        "cur_attempts",
        "cur_bottom_out",
        "cur_hashes",
        "cur_hints",
        "cur_item",
        "cur_open",
        "cur_wrong_hashes",
        "feedback_since_wrong",
        "last_t_us",
        "n_answers",
        "n_events",
        "pending_wrong",
        "recent_bottom_out",
        "recent_correct",
        "recent_feedback_skip",
        "recent_hint",
        "recent_rapid",
        "recent_repeat",
        "recent_supports",
        "recent_time_ratio",
        "session_start_us",
        "skills",
        "theta",
    )

    def __init__(self) -> None:
        self.last_t_us = -1
        self.session_start_us = -1
        self.n_events = 0
        self.n_answers = 0
        self.theta = 0.0
        self.recent_correct = _PRIOR_SUCCESS
        self.recent_rapid = 0.0
        self.recent_hint = 0.0
        self.recent_repeat = 0.0
        self.recent_feedback_skip = 0.0
        self.recent_supports = 0.5
        self.recent_time_ratio = 0.0
        self.recent_bottom_out = 0.0
        self.cur_item: str | None = None
        self.cur_open = False
        self.cur_attempts = 0
        self.cur_hints = 0
        self.cur_bottom_out = False
        self.cur_hashes: list[str] = []
        self.cur_wrong_hashes: list[str] = []
        self.pending_wrong = False
        self.feedback_since_wrong = 0.0
        self.skills: dict[str, list[float]] = {}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        data = {k: getattr(self, k) for k in self.__slots__}
        data["skills"] = {k: list(v) for k, v in self.skills.items()}
        data["cur_hashes"] = list(self.cur_hashes)
        data["cur_wrong_hashes"] = list(self.cur_wrong_hashes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearnerFeatureState:
        """Rebuild from :meth:`to_dict` output."""
        state = cls()
        for key in cls.__slots__:
            setattr(state, key, data[key])
        state.skills = {k: [float(x) for x in v] for k, v in data["skills"].items()}
        state.cur_hashes = [str(h) for h in data["cur_hashes"]]
        state.cur_wrong_hashes = [str(h) for h in data["cur_wrong_hashes"]]
        return state

    def to_bytes(self) -> bytes:
        """Return the state as JSON bytes (for a changelog-backed table)."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> LearnerFeatureState:
        """Rebuild from :meth:`to_bytes` output."""
        return cls.from_dict(orjson.loads(data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LearnerFeatureState) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable state, compared by value

    def skill(self, skill_id: str) -> list[float]:
        """Return the statistics list of a skill, creating it on first sight."""
        stats = self.skills.get(skill_id)
        if stats is None:
            stats = list(_NEW_SKILL)
            self.skills[skill_id] = stats
        return stats

    def weakest_skill(self, skill_ids: tuple[str, ...] | list[str]) -> list[float]:
        """Return the statistics of the least-mastered of ``skill_ids`` (new if none known)."""
        best: list[float] | None = None
        for sid in skill_ids:
            stats = self.skills.get(sid)
            if stats is None:
                return list(_NEW_SKILL)
            if best is None or stats[_S_MASTERY] < best[_S_MASTERY]:
                best = stats
        return list(_NEW_SKILL) if best is None else best

    def skill_view(self, skill_id: str) -> SkillView:
        """Return the learner's statistics on one skill (priors when unseen)."""
        s = self.skills.get(skill_id) or _NEW_SKILL
        return SkillView(
            int(s[_S_ATTEMPTS]),
            s[_S_CORRECT],
            s[_S_MASTERY],
            int(s[_S_SINCE_GAIN]),
            int(s[_S_STREAK]),
            s[_S_THREE] > 0.0,
        )

    def skill_theta(self, skill_ids: tuple[str, ...] | list[str]) -> float:
        """Return the mean Elo ability over ``skill_ids`` (0 for unseen skills)."""
        if not skill_ids:
            return 0.0
        total = 0.0
        for sid in skill_ids:
            stats = self.skills.get(sid)
            total += 0.0 if stats is None else stats[_S_THETA]
        return total / len(skill_ids)


def _skill_features(stats: list[float]) -> tuple[float, float, float, float, float, float]:
    attempts = stats[_S_ATTEMPTS]
    return (
        min(1.0, math.log1p(attempts) / math.log(51.0)),
        stats[_S_CORRECT],
        stats[_S_MASTERY],
        min(stats[_S_SINCE_GAIN], 20.0) / 20.0,
        min(stats[_S_STREAK], 5.0) / 5.0,
        1.0 if attempts >= 10 and stats[_S_THREE] == 0.0 else 0.0,
    )


def _lms_features(value: float | None) -> tuple[float, float]:
    if value is None:
        return 0.0, 0.0
    return _clip(value / 3.0), 1.0


class FeatureExtractor:
    """Turns events into feature vectors; holds no state of its own.

    ``observe`` is the single implementation; ``update`` adapts a :class:`LearningEvent` to it.
    """

    n_event_features = len(EVENT_FEATURES)
    n_query_features = len(QUERY_FEATURES)

    def update(
        self, learner: LearnerFeatureState, item: ItemNorms | None, event: LearningEvent
    ) -> npt.NDArray[np.float32]:
        """Apply ``event`` to the learner's and item's state; return its feature vector.

        Args:
            learner: The learner's state (mutated).
            item: Norms of ``event.item_id`` (mutated), or ``None`` when the event has no item.
            event: The event.

        Returns:
            float32 array of shape ``[len(EVENT_FEATURES)]``.
        """
        return np.asarray(self.observe_event(learner, item, event), dtype=np.float32)

    def observe_event(
        self, learner: LearnerFeatureState, item: ItemNorms | None, event: LearningEvent
    ) -> list[float]:
        """Like :meth:`update` but return a plain list (no numpy allocation)."""
        relation = event.resource_relation
        return self.observe(
            learner,
            item,
            _TYPE_CODE[event.event_type],
            (event.timestamp - _EPOCH) // _MICROSECOND,
            event.skill_ids,
            -1 if event.correct is None else int(event.correct),
            event.response_hash,
            0 if event.attempt is None else event.attempt,
            math.nan if event.duration_s is None else event.duration_s,
            -1 if event.hint_level is None else event.hint_level,
            0 if event.hint_count is None else event.hint_count,
            event.item_difficulty,
            -1 if relation is None else _RELATION_CODE[relation],
            math.nan if event.score_scaled is None else event.score_scaled,
            event.item_id,
        )

    def observe(
        self,
        learner: LearnerFeatureState,
        item: ItemNorms | None,
        code: int,
        t_us: int,
        skill_ids: tuple[str, ...],
        correct: int,
        response_hash: str | None,
        attempt: int,
        duration_s: float,
        hint_level: int,
        hint_count: int,
        lms_difficulty: float | None,
        relation: int,
        score: float,
        item_id: str | None,
    ) -> list[float]:
        """Apply one event given as scalars; return its feature list.

        Missing values: ``correct``, ``hint_level`` and ``relation`` -1; ``attempt`` and
        ``hint_count`` 0; ``duration_s`` and ``score`` NaN.

        Args:
            learner: The learner's state (mutated).
            item: Norms of the event's item (mutated), or ``None``.
            code: Index of the event type in ``tuple(EventType)``.
            t_us: Timestamp, integer microseconds since the Unix epoch.
            skill_ids: Skills the event's object exercises.
            correct: 1, 0, or -1 when not an answer.
            response_hash: Hash of the response, if an answer.
            attempt: Attempt number on the item.
            duration_s: Seconds spent.
            hint_level: Hint depth.
            hint_count: Hints the item offers.
            lms_difficulty: Difficulty the LMS reports for the item.
            relation: Index of the resource relation in ``tuple(ResourceRelation)``.
            score: Scaled score.
            item_id: The event's object id.

        Returns:
            The feature values in :data:`EVENT_FEATURES` order.
        """
        has_duration = not math.isnan(duration_s)
        # Session and gap.
        if learner.last_t_us < 0:
            gap = 0.0
            learner.session_start_us = t_us
        else:
            dt_us = max(0, t_us - learner.last_t_us)
            gap = min(1.0, math.log1p(dt_us / 1e6) / math.log1p(86400.0))
            if dt_us > _SESSION_GAP_US:
                learner.session_start_us = t_us
        learner.last_t_us = t_us
        learner.n_events += 1
        session_minutes = min(120.0, (t_us - learner.session_start_us) / 6e7) / 120.0
        if item is not None and lms_difficulty is not None:
            item.lms_difficulty = lms_difficulty

        # Pre-event expectations about the item.
        if item is not None:
            item_success = item.success_rate()
            log_norm = item.log_time_norm()
            mean_time = item.mean_time()
            b = item.elo_difficulty
        else:
            item_success = _PRIOR_SUCCESS
            log_norm = _PRIOR_LOG_TIME
            mean_time = _PRIOR_TIME
            b = 0.0
        elo_expected = _sigmoid(learner.theta + learner.skill_theta(skill_ids) - b)
        lms_value, lms_known = _lms_features(
            lms_difficulty
            if lms_difficulty is not None
            else (item.lms_difficulty if item is not None else None)
        )

        answer_correct = answer_wrong = log_time_ratio = rapid = attempt_f = 0.0
        repeat = new_share = hint_depth = fast_hint = fb_dwell = fb_skipped = 0.0
        res_sup = res_con = res_neu = res_dwell = media_dwell = score_f = 0.0

        if (
            code == _START
            and item_id is not None
            and item_id == learner.cur_item
            and (learner.cur_open or attempt > 1)
        ):
            # A retry, not a new problem: many LMSs send a start before every attempt. The
            # item's memory (responses, hints, feedback owed) carries on.
            learner.cur_open = True
        elif code == _START:
            learner.cur_item = item_id
            learner.cur_open = True
            learner.cur_attempts = 0
            learner.cur_hints = 0
            learner.cur_bottom_out = False
            learner.cur_hashes = []
            learner.cur_wrong_hashes = []
            learner.pending_wrong = False
            learner.feedback_since_wrong = 0.0
        elif item_id is not None and item_id != learner.cur_item and code in (_ANSWER, _HINT):
            # An answer or hint without a problem start: the LMS skipped the start event.
            learner.cur_item = item_id
            learner.cur_open = True
            learner.cur_attempts = 0
            learner.cur_hints = 0
            learner.cur_bottom_out = False
            learner.cur_hashes = []
            learner.cur_wrong_hashes = []
            learner.pending_wrong = False
            learner.feedback_since_wrong = 0.0

        if code == _ANSWER:
            is_correct = correct == 1
            answer_correct = 1.0 if is_correct else 0.0
            answer_wrong = 1.0 - answer_correct
            n_attempt = attempt if attempt > 0 else learner.cur_attempts + 1
            learner.cur_attempts = n_attempt
            first = n_attempt == 1
            attempt_f = min(1.0, (n_attempt - 1) / 4.0)
            if has_duration:
                d = max(duration_s, 0.05)
                log_time_ratio = _clip((math.log(d) - log_norm) / 3.0)
                rapid = 1.0 if d < RAPID_GUESS_SHARE * mean_time else 0.0
            if response_hash is not None:
                repeat = 1.0 if response_hash in learner.cur_wrong_hashes else 0.0
                hashes = learner.cur_hashes
                if response_hash not in hashes and len(hashes) < _MAX_HASHES:
                    hashes.append(response_hash)
                if (
                    not is_correct
                    and response_hash not in learner.cur_wrong_hashes
                    and (len(learner.cur_wrong_hashes) < _MAX_HASHES)
                ):
                    learner.cur_wrong_hashes.append(response_hash)
            new_share = min(1.0, len(learner.cur_hashes) / n_attempt)
            if learner.pending_wrong:
                fb_skipped = 1.0 if learner.feedback_since_wrong < FEEDBACK_READ_S else 0.0
                learner.recent_feedback_skip += _EWMA * (fb_skipped - learner.recent_feedback_skip)
            learner.pending_wrong = not is_correct
            learner.feedback_since_wrong = 0.0
            # Running norms and ratings learn from first answers only: retries are another task.
            if first:
                # An answer given after the bottom-out hint was shown to the learner, not known:
                # it is no evidence of mastery (the usual tutor-log convention counts it wrong).
                credited = is_correct and not learner.cur_bottom_out
                err = (1.0 if credited else 0.0) - elo_expected
                if item is not None:
                    item.n_first += 1
                    item.n_first_correct += int(is_correct)
                    if has_duration:
                        d = max(duration_s, 0.05)
                        item.sum_log_time += math.log(d)
                        item.sum_time += d
                        item.n_timed += 1
                    item.elo_difficulty -= _elo_k(item.n_first) * err
                learner.theta += _elo_k(learner.n_answers) * err
                for sid in skill_ids:
                    stats = learner.skill(sid)
                    stats[_S_THETA] += _elo_k(stats[_S_ATTEMPTS]) * err
                    self._skill_answer(stats, credited)
            learner.n_answers += 1
            learner.recent_correct += _EWMA * (answer_correct - learner.recent_correct)
            learner.recent_rapid += _EWMA * (rapid - learner.recent_rapid)
            learner.recent_repeat += _EWMA * (repeat - learner.recent_repeat)
            learner.recent_time_ratio += _EWMA * (log_time_ratio - learner.recent_time_ratio)
            learner.recent_hint += _EWMA * (
                (1.0 if learner.cur_hints else 0.0) - learner.recent_hint
            )
            learner.recent_bottom_out += _EWMA * (
                (1.0 if learner.cur_bottom_out else 0.0) - learner.recent_bottom_out
            )
        elif code == _HINT:
            learner.cur_hints += 1
            if hint_level >= 0 and hint_count > 0:
                hint_depth = min(1.0, hint_level / hint_count)
                if hint_level >= hint_count:
                    learner.cur_bottom_out = True
            fast_hint = 1.0 if has_duration and duration_s < 2.0 else 0.0
        elif code == _FEEDBACK:
            if has_duration:
                fb_dwell = min(1.0, math.log1p(duration_s) / math.log1p(60.0))
                if learner.pending_wrong:
                    learner.feedback_since_wrong += duration_s
        elif code == _RESOURCE:
            if has_duration:
                res_dwell = min(1.0, math.log1p(duration_s) / math.log1p(600.0))
            if learner.pending_wrong:
                if relation == _SUPPORTS:
                    res_sup = 1.0
                    learner.recent_supports += _EWMA * (1.0 - learner.recent_supports)
                elif relation == _CONTRADICTS:
                    res_con = 1.0
                    learner.recent_supports += _EWMA * (0.0 - learner.recent_supports)
                    # Reading a corrective resource counts as attending to feedback.
                    if has_duration:
                        learner.feedback_since_wrong += duration_s
                elif relation == _NEUTRAL:
                    res_neu = 1.0
        elif code == _COMPLETE:
            score_f = 0.0 if math.isnan(score) else score
            learner.cur_open = False
            learner.pending_wrong = False
        elif code in _MEDIA and has_duration:
            media_dwell = min(1.0, math.log1p(duration_s) / math.log1p(600.0))

        stats_f = _skill_features(learner.weakest_skill(skill_ids))
        return [
            1.0 if code == _START else 0.0,
            1.0 if code == _ANSWER else 0.0,
            1.0 if code == _HINT else 0.0,
            1.0 if code == _FEEDBACK else 0.0,
            1.0 if code == _RESOURCE else 0.0,
            1.0 if code == _COMPLETE else 0.0,
            1.0 if code in _MEDIA else 0.0,
            answer_correct,
            answer_wrong,
            log_time_ratio,
            rapid,
            attempt_f,
            repeat,
            new_share,
            min(learner.cur_hints, 5) / 5.0,
            hint_depth,
            1.0 if learner.cur_bottom_out else 0.0,
            fast_hint,
            fb_dwell,
            fb_skipped,
            res_sup,
            res_con,
            res_neu,
            res_dwell,
            media_dwell,
            score_f,
            gap,
            session_minutes,
            item_success,
            lms_value,
            lms_known,
            elo_expected,
            *stats_f,
            learner.recent_correct,
            learner.recent_rapid,
            learner.recent_hint,
            learner.recent_repeat,
            learner.recent_feedback_skip,
            learner.recent_supports,
            learner.recent_time_ratio,
            learner.recent_bottom_out,
            min(1.0, math.log1p(learner.n_answers) / math.log(1001.0)),
        ]

    @staticmethod
    def _skill_answer(stats: list[float], correct: bool) -> None:
        # Generic BKT posterior update, then the learning transition.
        p = stats[_S_MASTERY]
        if correct:
            post = p * (1 - _BKT_SLIP) / (p * (1 - _BKT_SLIP) + (1 - p) * _BKT_GUESS)
        else:
            post = p * _BKT_SLIP / (p * _BKT_SLIP + (1 - p) * (1 - _BKT_GUESS))
        p = post + (1 - post) * _BKT_T
        stats[_S_MASTERY] = p
        stats[_S_ATTEMPTS] += 1.0
        stats[_S_CORRECT] += _SKILL_EWMA * ((1.0 if correct else 0.0) - stats[_S_CORRECT])
        stats[_S_STREAK] = stats[_S_STREAK] + 1.0 if correct else 0.0
        if stats[_S_STREAK] >= 3.0:
            stats[_S_THREE] = 1.0
        if p > stats[_S_BEST] + 0.05:
            stats[_S_BEST] = p
            stats[_S_SINCE_GAIN] = 0.0
        else:
            stats[_S_SINCE_GAIN] += 1.0

    def query(
        self,
        learner: LearnerFeatureState,
        item_norms: ItemNorms | None,
        item_id: str,
        skill_ids: tuple[str, ...],
    ) -> npt.NDArray[np.float32]:
        """Return the features of the learner's prospects on ``item_id`` before answering it.

        Args:
            learner: The learner's state (not mutated).
            item_norms: The item's norms, or ``None`` when nobody has answered it yet.
            item_id: The candidate item.
            skill_ids: Skills the item exercises.

        Returns:
            float32 array of shape ``[len(QUERY_FEATURES)]``.
        """
        return np.asarray(self.query_list(learner, item_norms, item_id, skill_ids), np.float32)

    def query_list(
        self,
        learner: LearnerFeatureState,
        item_norms: ItemNorms | None,
        item_id: str,
        skill_ids: tuple[str, ...],
    ) -> list[float]:
        """Like :meth:`query` but return a plain list."""
        norms = item_norms if item_norms is not None else _EMPTY_NORMS
        logit = learner.theta + learner.skill_theta(skill_ids) - norms.elo_difficulty
        lms_value, lms_known = _lms_features(norms.lms_difficulty)
        retry = learner.cur_open and learner.cur_item == item_id and learner.cur_attempts > 0
        return [
            norms.success_rate(),
            min(1.0, math.log1p(norms.n_first) / math.log(1001.0)),
            _clip(norms.log_time_norm() / math.log(600.0), 0.0, 1.0),
            lms_value,
            lms_known,
            _clip(norms.elo_difficulty / 3.0),
            min(1.0, max(0, len(skill_ids) - 1) / 2.0),
            *_skill_features(learner.weakest_skill(skill_ids)),
            _sigmoid(logit),
            _clip(logit / 4.0),
            1.0 if retry else 0.0,
            min(1.0, learner.cur_attempts / 4.0) if retry else 0.0,
            (
                1.0
                if retry
                and learner.pending_wrong
                and learner.feedback_since_wrong >= FEEDBACK_READ_S
                else 0.0
            ),
            1.0 if retry and learner.cur_bottom_out else 0.0,
            min(learner.cur_hints, 5) / 5.0 if retry else 0.0,
            learner.recent_correct,
            learner.recent_rapid,
            learner.recent_hint,
            learner.recent_repeat,
            learner.recent_feedback_skip,
            learner.recent_time_ratio,
            min(1.0, math.log1p(learner.n_answers) / math.log(1001.0)),
        ]


_EMPTY_NORMS = ItemNorms()


class FeatureStore:
    """Learner states and item norms held in dicts, for replaying a stream in one process.

    The stream keeps the same objects in its tables; this class serves training, evaluation
    and the closed-loop policy evaluation.
    """

    def __init__(self) -> None:
        self.extractor = FeatureExtractor()
        self.learners: dict[str, LearnerFeatureState] = {}
        self.items: dict[str, ItemNorms] = {}

    def learner(self, learner_id: str) -> LearnerFeatureState:
        """Return a learner's state, creating it on first sight."""
        state = self.learners.get(learner_id)
        if state is None:
            state = LearnerFeatureState()
            self.learners[learner_id] = state
        return state

    def item(self, item_id: str | None) -> ItemNorms | None:
        """Return an item's norms, creating them on first sight (``None`` without an item)."""
        if item_id is None:
            return None
        norms = self.items.get(item_id)
        if norms is None:
            norms = ItemNorms()
            self.items[item_id] = norms
        return norms

    def update(self, event: LearningEvent) -> npt.NDArray[np.float32]:
        """Apply an event and return its feature vector."""
        return self.extractor.update(
            self.learner(event.learner_id), self.item(event.item_id), event
        )

    def query(
        self, learner_id: str, item_id: str, skill_ids: tuple[str, ...]
    ) -> npt.NDArray[np.float32]:
        """Return the query features of a learner and a candidate item."""
        return self.extractor.query(
            self.learner(learner_id), self.items.get(item_id), item_id, skill_ids
        )

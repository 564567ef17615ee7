"""A small script language for what one learner does, independent of any producer's format.

A :class:`Script` is written as the learner's actions in order, each with the time it took::

    s = Script("learner-7", start=t0)
    s.start(item=3, skill="fractions")
    s.answer(correct=False, response="3/4", think=40)
    s.feedback(dwell=12)
    s.retry()                       # the learner tries the same item again
    s.answer(correct=True, response="1/2", think=25)
    s.complete()

Every call appends one :class:`Act`; :meth:`Script.onset` marks the act where the scripted
behaviour begins. Producer styles (:mod:`inference.lab.scenarios.styles`) turn acts into the
statements a given LMS would send, leaving out what that LMS never sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Kind(StrEnum):
    """What a learner did."""

    START = "start"
    """Opened an item (the first time, or again to retry it: see :attr:`Act.retry`)."""
    ANSWER = "answer"
    HINT = "hint"
    FEEDBACK = "feedback"
    """Opened the feedback on their last answer."""
    RESOURCE = "resource"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class Act:
    """One action of a scripted learner.

    Attributes:
        kind: what was done.
        at: when, as a moment.
        item: the item's number in the course (resources have their own numbers).
        skill: the skill the item exercises.
        duration_s: seconds the action took (think time of an answer, dwell on feedback).
        correct: an answer's correctness.
        response: an answer's text.
        attempt: an answer's attempt number on the item (1 for the first).
        retry: a start that reopens an item the learner already answered.
        hint_level: a hint's depth, 1 for the first; ``hint_count`` is the bottom-out.
        hint_count: hints the item offers.
        relation: a resource's relation to the learner's last answer (``supports``,
            ``contradicts`` or ``neutral``).
    """

    kind: Kind
    at: datetime
    item: int
    skill: str
    duration_s: float | None = None
    correct: bool | None = None
    response: str | None = None
    attempt: int | None = None
    retry: bool = False
    hint_level: int | None = None
    hint_count: int = 3
    relation: str | None = None


@dataclass(slots=True)
class Script:
    """Builds one learner's acts with a running clock.

    Args:
        learner: the learner's name in the LMS (an account name or a mailbox's local part).
        start: when the learner begins.
        hint_count: hints each item offers.
    """

    learner: str
    start_at: datetime
    hint_count: int = 3
    acts: list[Act] = field(default_factory=list)
    onset_act: int | None = None
    _clock: datetime = field(init=False)
    _item: int = field(init=False, default=-1)
    _skill: str = field(init=False, default="")
    _attempts: int = field(init=False, default=0)
    _hints: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._clock = self.start_at

    def _act(self, kind: Kind, seconds: float, item: int | None = None, **facts: object) -> None:
        self._clock += timedelta(seconds=seconds)
        number = self._item if item is None else item
        self.acts.append(
            Act(kind, self._clock, number, self._skill, hint_count=self.hint_count, **facts)  # type: ignore[arg-type]  # facts are Act's own keywords
        )

    def wait(self, seconds: float) -> Script:
        """Let time pass without an action (reading, a break)."""
        self._clock += timedelta(seconds=seconds)
        return self

    def onset(self) -> Script:
        """Mark the next act as where the scripted behaviour begins."""
        self.onset_act = len(self.acts)
        return self

    def start(self, item: int, skill: str, *, after: float = 2.0) -> Script:
        """Open a new item."""
        self._item, self._skill, self._attempts, self._hints = item, skill, 0, 0
        self._act(Kind.START, after)
        return self

    def retry(self, *, after: float = 1.0) -> Script:
        """Reopen the current item to try it again."""
        self._act(Kind.START, after, retry=True)
        return self

    def answer(self, *, correct: bool, response: str, think: float) -> Script:
        """Submit an answer after ``think`` seconds on it."""
        self._attempts += 1
        self._act(
            Kind.ANSWER,
            think,
            duration_s=think,
            correct=correct,
            response=response,
            attempt=self._attempts,
        )
        return self

    def hint(self, *, after: float) -> Script:
        """Ask for the next hint ``after`` seconds after the last action."""
        self._hints = min(self._hints + 1, self.hint_count)
        self._act(Kind.HINT, after, duration_s=after, hint_level=self._hints)
        return self

    def feedback(self, *, dwell: float, after: float = 0.5) -> Script:
        """Open the feedback on the last answer and read it for ``dwell`` seconds."""
        self._act(Kind.FEEDBACK, after, duration_s=dwell)
        self._clock += timedelta(seconds=dwell)
        return self

    def resource(self, number: int, *, relation: str, dwell: float, after: float = 1.0) -> Script:
        """Open resource ``number`` (related to the last answer as ``relation``)."""
        self._act(Kind.RESOURCE, after, item=number, duration_s=dwell, relation=relation)
        self._clock += timedelta(seconds=dwell)
        return self

    def complete(self, *, after: float = 1.0) -> Script:
        """Finish the current item."""
        self._act(Kind.COMPLETE, after)
        return self


@dataclass(frozen=True, slots=True)
class ScriptedLearner:
    """A learner of one scenario: their acts, the behaviour's onset and what should be seen.

    Attributes:
        learner: the learner's name in the LMS.
        scenario: the scenario's name (e.g. ``hint_abuse``).
        variant: how the scenario is written for this learner (e.g. ``levels``).
        intended: the states that count as detecting the behaviour (the first is its own
            state; others are documented equivalents). Empty for a control.
        acts: what the learner does.
        onset_act: index in ``acts`` where the behaviour begins (``None`` for a control).
        class_name: the class (course section) the learner is in.
        attempted_before_retry: the producer sends a start (``attempted``) before each retry.
        feedback_views: the producer records feedback views.
        hint_levels: the producer records hint levels.
    """

    learner: str
    scenario: str
    variant: str
    intended: tuple[str, ...]
    acts: tuple[Act, ...]
    onset_act: int | None
    class_name: str
    attempted_before_retry: bool = True
    feedback_views: bool = True
    hint_levels: bool = True

    @property
    def control(self) -> bool:
        """True for a learner that must not be flagged."""
        return not self.intended

"""Behaviours with a definition in the literature, detected by that definition beside the model.

The learned model ranks learners; some behaviours also have an operational definition that
holds or not whatever the producer's habits (a start before each retry, hint levels or none,
timing scales). :class:`BehaviourRules` keeps a small per-learner :class:`RuleMemory` and, for
each event, says whether one of these definitions has just come to hold (a :class:`Finding`)
and which of the model's states the evidence so far cannot support (vetoes):

- :meth:`BehaviourRules.identical_resubmission` (anchoring),
- :meth:`BehaviourRules.hint_click_through` (gaming),
- :meth:`BehaviourRules.wheel_spinning` (wheel-spinning),
- :meth:`BehaviourRules.rapid_guessing` (gaming),
- :meth:`BehaviourRules.calibrated` and :meth:`BehaviourRules.heeds_feedback` (no
  overconfidence where answers are quick and right, or where the feedback on wrong answers
  is read),
- :meth:`BehaviourRules.confirmation_grounded` (no confirmation without a resource read
  after a wrong answer),
- :meth:`BehaviourRules.answered`, :meth:`BehaviourRules.spinning_possible`,
  :meth:`BehaviourRules.response_held` and :meth:`BehaviourRules.guessed` (no state before a
  first answer; wheel-spinning and anchoring only where their definitions can hold).

The stream's processor (and so the worker, a replay and the scenario suite) applies them:
a finding raises its state when the model does not already raise it, a veto drops the
model's state. The memory is keyed by item, not by the producer's start events, so a retry is
never a new problem. Pure Python: the serving path imports this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from schemas.events import EventType, LearningEvent, ResourceRelation

RESUBMISSIONS: Final = 2
"""Resubmissions of a response already marked wrong on one item that make anchoring."""
HINT_READ_S: Final = 4.0
"""A hint followed by the next one sooner than this was not read (the features' feedback
reading threshold, ``inference.features.FEEDBACK_READ_S``)."""
ASSUMED_HINT_DEPTH: Final = 3
"""Hints taken as the bottom-out when the producer says neither the level nor the count:
tutors' hint sequences end in the answer after two or more hints (Aleven et al. 2006)."""
OPPORTUNITIES: Final = 10
"""Practice opportunities on a skill within which mastery must show (Beck & Gong 2013)."""
MASTERY_STREAK: Final = 3
"""Right first answers in a row that show mastery (Beck & Gong 2013)."""
RECENT_ANSWERS: Final = 10
"""First answers (one per item) the calibration check looks back over."""
SLIPS: Final = 2
"""Wrong first answers among the recent ones that are still slips, not miscalibration: with
ten answers, at least 80% right."""
RAPID_S: Final = 3.0
"""An answer given sooner than this after it was opened (or with a shorter duration)
was not read: the lower end of the fixed thresholds of Wise & Kong (2005), who set theirs at
three to five seconds by the item's reading load; a fluent learner's quick answers stay
above it."""
RAPID_GAP_S: Final = 5.0
"""The same, where the time can only be taken from the learner's previous event on something
else (a producer that sends no start): that time also holds moving to the item, so the upper
end of Wise & Kong's range."""
RAPID_ANSWERS: Final = 3
"""Rapid answers among the last :data:`RECENT_ANSWERS_RAPID` that make rapid guessing: a
response-time effort of 0.4, far under the 0.9 below which Wise & Kong (2005) read a test
taker's effort as low; fewer could be a fluent learner's quick answers and one slip."""
RECENT_ANSWERS_RAPID: Final = 5
GUESS_CHANCE: Final = 0.25
"""Chance of a guess being right: a four-option item."""
ABOVE_CHANCE_P: Final = 0.10
"""Rapid answers right this unlikely by chance (one-sided binomial test) are fluency, not
guesses: two right of three or four, three of five are still chance; three of four are not."""
CORRECTED_SHARE: Final = 0.9
"""Share of a skill's items first answered wrong that the learner then put right (without the
bottom-out hint) that shows learning from feedback: persistence that pays off (nine in ten,
so that half put right by luck does not pass for it)."""
GIVE_UP_OPPORTUNITIES: Final = 15
"""Opportunities without mastery after which wheel-spinning holds however much was put
right."""
HEEDED_ANSWERS: Final = 3
"""Last wrong answers over which the reading of feedback is judged."""
HEEDED_MIN: Final = 3
"""Wrong answers needed before a learner is taken to heed feedback."""
HEEDED_SHARE: Final = 0.8
"""Share of those wrong answers whose feedback was read that shows the learner heeds it."""
"""Opportunities without mastery after which wheel-spinning holds whatever the progress."""
_MAX_ITEMS: Final = 8
_MAX_SEEN: Final = 256
_MAX_SKILLS: Final = 64
_MAX_HASHES: Final = 8

ANCHORING: Final = "anchoring"
GAMING: Final = "gaming"
WHEEL_SPINNING: Final = "wheel_spinning"
OVERCONFIDENCE: Final = "overconfidence"
CONFIRMATION: Final = "confirmation"
MODEL_STATES: Final = frozenset({ANCHORING, GAMING, WHEEL_SPINNING, OVERCONFIDENCE, CONFIRMATION})


@dataclass(frozen=True, slots=True)
class Finding:
    """A literature definition that has just come to hold for a learner.

    Attributes:
        state: the behavioural state it raises.
        rule: the rule's name.
        definition: the definition and its source, for the tutor.
        facts: the numbers it rests on.
    """

    state: str
    rule: str
    definition: str
    facts: dict[str, float]


@dataclass(slots=True)
class RuleMemory:
    """What the rules remember per learner; small, and serialised with the learner's state.

    Attributes:
        items: per recent item (at most 8): response hashes marked wrong and how many times
            one of them was submitted again.
        seen: items the learner has answered (at most 256), so a retry is not an opportunity.
        skills: per skill: practice opportunities, current streak, mastery shown (0/1), items
            first answered wrong, of those the ones put right later, and whether the latest
            one is still open (wrong and not yet put right, so not judged yet).
        fix_item: the item last first answered wrong and not yet put right.
        hint_item: the item of the learner's current run of hints.
        hints: hints in that run.
        hint_deepest: deepest hint level seen in the run (-1: no levels).
        hint_skimmed: every hint of the run but the last was followed within
            :data:`HINT_READ_S` by the next.
        hint_at: time of the run's last hint, epoch seconds.
        recent: outcomes of the last first answers, oldest first: 1 right, 0 wrong, 2 wrong
            but a slip (right at the very next try, after reading the feedback where the
            producer records feedback).
        answers: answers seen (counted up to 1,000).
        rapid: per recent answer (at most :data:`RECENT_ANSWERS_RAPID`): 0 not rapid, 1 rapid
            and wrong, 2 rapid and right.
        last_at: time of the learner's last event, epoch seconds (0: none yet).
        after_start: the learner's last event was a start (of an item, or of the quiz or
            page that holds it), so the time since it is the answer's response time.
        last_skills: the skills of the learner's last answer.
        last_item: the item of the learner's last answer.
        last_response: whether the learner's last answer carried a response.
        wrong_pending: the learner's last answer was wrong.
        slip_pending: the learner's last answer was a wrong first answer (its retry may show
            it a slip).
        slip_read: feedback was read since that answer (for :data:`HINT_READ_S` or more, or
            for a time the producer does not say).
        feedback_known: the producer records feedback views for this learner.
        heeded: per recent wrong answer (at most :data:`HEEDED_ANSWERS`), whether feedback
            was read before the next answer (1) or not (0), where feedback is recorded.
        resource_after_wrong: a resource not known to contradict the answer was read since
            the last wrong answer.
    """

    items: dict[str, list[Any]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    skills: dict[str, list[int]] = field(default_factory=dict)
    fix_item: str | None = None
    hint_item: str | None = None
    hints: int = 0
    hint_deepest: int = -1
    hint_skimmed: bool = True
    hint_at: float = 0.0
    recent: list[int] = field(default_factory=list)
    answers: int = 0
    rapid: list[int] = field(default_factory=list)
    last_at: float = 0.0
    after_start: bool = False
    last_skills: list[str] = field(default_factory=list)
    last_item: str | None = None
    last_response: bool = False
    wrong_pending: bool = False
    resource_after_wrong: bool = False
    slip_pending: bool = False
    slip_read: bool = False
    feedback_known: bool = False
    heeded: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "i": self.items,
            "s": self.seen,
            "k": self.skills,
            "f": self.fix_item,
            "h": [self.hint_item, self.hints, self.hint_deepest, self.hint_skimmed, self.hint_at],
            "r": self.recent,
            "n": [self.answers, self.last_skills, self.last_item, self.last_response],
            "q": [self.rapid, self.last_at, self.after_start],
            "w": [
                self.wrong_pending,
                self.resource_after_wrong,
                self.slip_pending,
                self.slip_read,
                self.feedback_known,
                self.heeded,
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RuleMemory:
        """Rebuild from :meth:`to_dict` output (``None``: a learner's state without rules)."""
        if not data:
            return cls()
        hint = data["h"]
        return cls(
            items={k: [list(v[0]), int(v[1])] for k, v in data["i"].items()},
            seen=list(data["s"]),
            # records of older releases hold three numbers per skill
            skills={k: [*(int(x) for x in v), 0, 0, 0][:6] for k, v in data["k"].items()},
            fix_item=data.get("f"),
            hint_item=hint[0],
            hints=int(hint[1]),
            hint_deepest=int(hint[2]),
            hint_skimmed=bool(hint[3]),
            hint_at=float(hint[4]),
            recent=[int(x) for x in data["r"]],
            answers=int(data["n"][0]),
            last_skills=[str(x) for x in data["n"][1]],
            last_item=data["n"][2],
            last_response=bool(data["n"][3]),
            rapid=[int(x) for x in data["q"][0]],
            last_at=float(data["q"][1]),
            after_start=len(data["q"]) > 2 and bool(data["q"][2]),
            wrong_pending=bool(data["w"][0]),
            resource_after_wrong=bool(data["w"][1]),
            # records of older releases hold two flags
            slip_pending=len(data["w"]) > 2 and bool(data["w"][2]),
            slip_read=len(data["w"]) > 3 and bool(data["w"][3]),
            feedback_known=len(data["w"]) > 4 and bool(data["w"][4]),
            heeded=[int(x) for x in data["w"][5]] if len(data["w"]) > 5 else [],
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """What the rules say after one event: a finding, if any, and the states vetoed."""

    finding: Finding | None
    vetoes: frozenset[str]


def _t(moment: datetime) -> float:
    return moment.timestamp()


def _spinning(stats: list[int]) -> bool:
    """Return whether one skill's practice meets :meth:`BehaviourRules.wheel_spinning`."""
    if stats[0] < OPPORTUNITIES or stats[2]:
        return False
    progressing = stats[4] >= CORRECTED_SHARE * (stats[3] - stats[5])
    return not progressing or stats[0] >= GIVE_UP_OPPORTUNITIES


def _chance_of_at_least(right: int, answers: int) -> float:
    """Return the chance that ``answers`` guesses hold ``right`` or more right ones."""
    return sum(
        math.comb(answers, k) * GUESS_CHANCE**k * (1 - GUESS_CHANCE) ** (answers - k)
        for k in range(right, answers + 1)
    )


class BehaviourRules:
    """The literature-defined behaviours; holds no state of its own (see :class:`RuleMemory`)."""

    def observe(self, memory: RuleMemory, event: LearningEvent) -> Observation:
        """Apply ``event`` to ``memory``; return what holds after it.

        Args:
            memory: the learner's rule memory (mutated).
            event: the learner's next event.
        """
        finding: Finding | None = None
        kind = event.event_type
        if kind is EventType.ANSWER_SUBMIT:
            bottomed = self._hint_run_bottomed(memory, event.item_id)
            first = event.item_id is None or event.item_id not in memory.items
            finding = self.identical_resubmission(memory, event)
            mastery = self.wheel_spinning(memory, event, credited=not bottomed)
            guessing = self.rapid_guessing(memory, event)
            finding = finding or mastery or guessing
            # calibration is judged on first answers; a wrong one put right at the very next
            # try, after reading the feedback, was a slip
            if first and event.correct is not None:  # a producer that does not say: unknown
                memory.recent = [*memory.recent, int(event.correct)][-RECENT_ANSWERS:]
            elif (
                memory.slip_pending
                and event.correct
                and event.item_id == memory.last_item
                and (memory.slip_read or not memory.feedback_known)
                and memory.recent
            ):
                memory.recent[-1] = 2
            if memory.wrong_pending and memory.feedback_known:
                memory.heeded = [*memory.heeded, int(memory.slip_read)][-HEEDED_ANSWERS:]
            memory.slip_pending = first and event.correct is False
            memory.slip_read = False
            memory.answers = min(memory.answers + 1, 1000)
            memory.last_skills = list(event.skill_ids)
            memory.last_item = event.item_id
            # correctness unknown (a producer that does not say): a repeat proves nothing
            memory.last_response = event.response_hash is not None and event.correct is not None
            memory.wrong_pending = event.correct is False
            if memory.wrong_pending:
                memory.resource_after_wrong = False
        elif kind is EventType.HINT_REQUEST:
            finding = self.hint_click_through(memory, event)
        elif kind is EventType.FEEDBACK_VIEW:
            memory.feedback_known = True
            if event.duration_s is None or event.duration_s >= HINT_READ_S:
                memory.slip_read = True
        elif kind is EventType.RESOURCE_VIEW:
            if memory.wrong_pending and event.resource_relation is not ResourceRelation.CONTRADICTS:
                memory.resource_after_wrong = True
        elif kind is EventType.PROBLEM_START and event.item_id != memory.hint_item:
            memory.wrong_pending = memory.resource_after_wrong = False
        memory.last_at = max(memory.last_at, _t(event.timestamp))
        memory.after_start = kind is EventType.PROBLEM_START
        if not self.answered(memory):
            return Observation(finding, MODEL_STATES)
        vetoes = set()
        if not self.spinning_possible(memory):
            vetoes.add(WHEEL_SPINNING)
        if not self.response_held(memory) or self.guessed(memory):
            vetoes.add(ANCHORING)
        if self.calibrated(memory) or self.heeds_feedback(memory):
            vetoes.add(OVERCONFIDENCE)
        if not self.confirmation_grounded(memory):
            vetoes.add(CONFIRMATION)
        return Observation(finding, frozenset(vetoes))

    @staticmethod
    def identical_resubmission(memory: RuleMemory, event: LearningEvent) -> Finding | None:
        """The same wrong response resubmitted: anchoring.

        Definition: a response already marked wrong on an item is submitted again on that
        item :data:`RESUBMISSIONS` times (perseveration on a first answer, anchoring in the
        sense of Tversky & Kahneman 1974; tutors log it as a repeated error, Baker et al.
        2004). Items are told apart by their ids, so a start sent before each retry does not
        reset it. When a resource that may back the answer was read since the last wrong
        answer, holding on may be confirmation seeking instead, and the rule leaves the state
        to the model.
        """
        if event.item_id is None or event.response_hash is None or event.correct is None:
            return None
        entry = memory.items.pop(event.item_id, None) or [[], 0]
        memory.items[event.item_id] = entry  # most recent last
        while len(memory.items) > _MAX_ITEMS:
            del memory.items[next(iter(memory.items))]
        wrong_hashes: list[str] = entry[0]
        found: Finding | None = None
        if not event.correct and event.response_hash in wrong_hashes:
            entry[1] += 1
            # after a resource read that may back the answer, holding on to it may be
            # confirmation seeking rather than anchoring: the model tells them apart
            if entry[1] == RESUBMISSIONS and not memory.resource_after_wrong:
                found = Finding(
                    ANCHORING,
                    "identical_resubmission",
                    "the same wrong response resubmitted on one item",
                    {"resubmissions": float(entry[1])},
                )
        elif not event.correct and len(wrong_hashes) < _MAX_HASHES:
            wrong_hashes.append(event.response_hash)
        return found

    @staticmethod
    def rapid_guessing(memory: RuleMemory, event: LearningEvent) -> Finding | None:
        """Answers given faster than the item can be read, right about as often as chance.

        Definition (Wise & Kong 2005, response-time effort): an answer given within
        :data:`RAPID_S` is a rapid guess, not solution behaviour; :data:`RAPID_ANSWERS` of the
        last :data:`RECENT_ANSWERS_RAPID` answers rapid, some wrong and no more often right
        than guesses would be (:data:`ABOVE_CHANCE_P`), is rapid guessing (a form of gaming).
        The response time is the answer's duration where the producer gives one, else the
        time since the learner's previous event: since a start it is the answer's own time
        (:data:`RAPID_S`); since anything else it also holds moving on to the item
        (:data:`RAPID_GAP_S`). Producers that record no durations are covered too; answers
        sent at one instant say nothing of their time. Quick answers right more often than
        chance are fluency, not guessing.
        """
        if event.correct is None:
            return None
        threshold = RAPID_S
        if event.duration_s is not None:
            seconds = event.duration_s
        elif memory.last_at > 0:
            if not memory.after_start:
                threshold = RAPID_GAP_S
            seconds = _t(event.timestamp) - memory.last_at
            if seconds <= 0:
                # out of order, or several answers sent at one instant (a quiz page's
                # questions submitted together): the response time is unknown
                return None
        else:
            return None
        mark = 0 if seconds >= threshold else (2 if event.correct else 1)
        memory.rapid = [*memory.rapid, mark][-RECENT_ANSWERS_RAPID:]
        rapid = [m for m in memory.rapid if m]
        # holds while enough recent answers are rapid and about as often right as chance; it
        # is said again on each rapid answer while it holds (the policy's cooldowns keep the
        # tutor from hearing it twice), so a lucky streak cannot hide it for good
        right = rapid.count(2)
        if (
            not mark
            or len(rapid) < RAPID_ANSWERS
            or right == len(rapid)
            or _chance_of_at_least(right, len(rapid)) < ABOVE_CHANCE_P
        ):
            return None
        return Finding(
            GAMING,
            "rapid_guessing",
            f"{RAPID_ANSWERS} of the last {RECENT_ANSWERS_RAPID} answers within {RAPID_S:g} s, "
            "about as often right as chance",
            {"rapid_answers": float(len(rapid)), "rapid_right": float(rapid.count(2))},
        )

    @staticmethod
    def _hint_run_bottomed(memory: RuleMemory, item_id: str | None) -> bool:
        return memory.hint_item == item_id and memory.hints > 0 and memory.hint_deepest == -2

    @staticmethod
    def hint_click_through(memory: RuleMemory, event: LearningEvent) -> Finding | None:
        """Hints clicked through to the bottom-out within seconds: gaming.

        Definition: on one item, hint after hint, each asked for less than
        :data:`HINT_READ_S` after the one before, down to the bottom-out hint ("clicking
        through hints", Aleven et al. 2006; a feature of gaming the system, Baker et al.
        2008). The bottom-out is the last level where the producer gives levels and counts,
        as many hints as the count where it gives only the count, and
        :data:`ASSUMED_HINT_DEPTH` hints where it gives neither.
        """
        at = _t(event.timestamp)
        if event.item_id != memory.hint_item or memory.hints == 0:
            memory.hint_item = event.item_id
            memory.hints = 0
            memory.hint_deepest = -1
            memory.hint_skimmed = True
        elif at - memory.hint_at >= HINT_READ_S:
            memory.hint_skimmed = False
        memory.hints += 1
        memory.hint_at = at
        if memory.hint_deepest == -2:
            return None  # bottom-out already reached on this item
        level = event.hint_level
        if level is not None:
            memory.hint_deepest = max(memory.hint_deepest, level)
        count = event.hint_count
        if count is not None and level is not None:
            bottom = level >= count
        elif count is not None:
            bottom = memory.hints >= count
        else:
            bottom = memory.hints >= ASSUMED_HINT_DEPTH
        if not bottom:
            return None
        memory.hint_deepest = -2
        if memory.hints < 2 or not memory.hint_skimmed:
            return None
        return Finding(
            GAMING,
            "hint_click_through",
            f"hints clicked through to the bottom-out, each within {HINT_READ_S:g} s",
            {"hints": float(memory.hints)},
        )

    @staticmethod
    def wheel_spinning(
        memory: RuleMemory, event: LearningEvent, *, credited: bool = True
    ) -> Finding | None:
        """No mastery within ten opportunities on a skill: wheel-spinning.

        Definition (Beck & Gong 2013): a learner who has had :data:`OPPORTUNITIES` practice
        opportunities on a skill (first answers on distinct items) without ever answering
        :data:`MASTERY_STREAK` of them right in a row. An answer given after the bottom-out
        hint is not counted right (``credited`` False). A learner who puts right
        :data:`CORRECTED_SHARE` of the items first answered wrong is getting there
        (productive persistence, Kai et al. 2018: slow learners who persist, learn from
        feedback and master); the state waits for more evidence, up to
        :data:`GIVE_UP_OPPORTUNITIES`.
        """
        item = event.item_id
        if item is None or event.correct is None or not event.skill_ids:
            return None
        right = bool(event.correct) and credited
        if item in memory.seen:
            # a retry, not a practice opportunity; putting a wrong first answer right counts
            if right and item == memory.fix_item:
                memory.fix_item = None
                for skill in event.skill_ids:
                    known = memory.skills.get(skill)
                    if known is not None and known[5]:
                        known[4] += 1
                        known[5] = 0
            return None
        memory.seen = [*memory.seen, item][-_MAX_SEEN:]
        memory.fix_item = None if right else item
        found: Finding | None = None
        for skill in event.skill_ids:
            stats = memory.skills.pop(skill, None) or [0, 0, 0, 0, 0, 0]
            memory.skills[skill] = stats
            stats[0] += 1
            stats[1] = stats[1] + 1 if right else 0
            stats[3] += int(not right)
            stats[5] = int(not right)
            if stats[1] >= MASTERY_STREAK:
                stats[2] = 1
            if found is None and _spinning(stats):
                found = Finding(
                    WHEEL_SPINNING,
                    "no_mastery_in_ten",
                    f"{OPPORTUNITIES} opportunities on a skill without {MASTERY_STREAK} "
                    "right in a row (Beck & Gong 2013)",
                    {"opportunities": float(stats[0])},
                )
        while len(memory.skills) > _MAX_SKILLS:
            del memory.skills[next(iter(memory.skills))]
        return found

    @staticmethod
    def answered(memory: RuleMemory) -> bool:
        """Every state is about how a learner answers or seeks help to answer.

        Before a learner's first answer there is no such evidence: a hint or a page as the
        first event of a learner the pipeline has just met is a cold start, not a behaviour,
        so no state of the model's is raised yet.
        """
        return memory.answers > 0

    @staticmethod
    def spinning_possible(memory: RuleMemory) -> bool:
        """Wheel-spinning is practice without mastery on a skill (Beck & Gong 2013).

        Where the producer names the skill of the last answer, the state needs the
        definition to hold on it (:data:`OPPORTUNITIES` opportunities, no
        :data:`MASTERY_STREAK` right in a row); where it names none, the definition cannot be
        checked and the model's judgement stands.
        """
        if not memory.last_skills:
            return True
        for skill in memory.last_skills:
            stats = memory.skills.get(skill)
            if stats is not None and _spinning(stats):
                return True
        return False

    @staticmethod
    def response_held(memory: RuleMemory) -> bool:
        """Anchoring is holding on to a first answer: it needs a wrong response given again.

        Where the producer records responses, the state needs a response already marked
        wrong submitted again on the item of the last answer; a wrong answer alone, or one
        revised, is no evidence of it. Without responses the model's judgement stands.
        """
        if not memory.last_response:
            return True
        entry = memory.items.get(memory.last_item or "")
        return entry is not None and entry[1] > 0

    @staticmethod
    def guessed(memory: RuleMemory) -> bool:
        """A rapid wrong answer is a guess, not a response held on to.

        Anchoring is holding on to one's answer; an answer given faster than the item can be
        read (:meth:`rapid_guessing`) was not considered, so the last answer being such a
        guess is no evidence of it, whatever the producer records.
        """
        return bool(memory.rapid) and memory.rapid[-1] == 1

    @staticmethod
    def heeds_feedback(memory: RuleMemory) -> bool:
        """Reading the feedback on one's wrong answers is not overconfidence.

        Overconfident learners discount feedback that contradicts them (its dismissal is how
        miscalibration persists; Ehrlinger & Dunning 2003); a learner who read the feedback
        after :data:`HEEDED_SHARE` of the last :data:`HEEDED_ANSWERS` wrong answers (where the
        producer records feedback views) weighs it, so the state waits for other evidence.
        """
        heeded = memory.heeded
        return len(heeded) >= HEEDED_MIN and sum(heeded) >= HEEDED_SHARE * len(heeded)

    @staticmethod
    def calibrated(memory: RuleMemory) -> bool:
        """Quick and right is not overconfidence.

        Overconfidence is confidence above accuracy (Lichtenstein, Fischhoff & Phillips
        1982); speed stands for confidence, so a learner with at most :data:`SLIPS` wrong
        among the last :data:`RECENT_ANSWERS` answers shows no such gap, however fast: a
        fluent expert, not an overconfident one. A slip or two is not evidence of a gap, nor
        is a wrong answer put right at the very next try after the feedback was read (a slip
        in knowledge tracing's sense: the skill known, the answer wrong).
        """
        return memory.recent.count(0) <= SLIPS

    @staticmethod
    def confirmation_grounded(memory: RuleMemory) -> bool:
        """Confirmation seeking needs a resource read after a wrong answer.

        Confirmation bias is seeking and weighing evidence that backs a belief already held
        (Nickerson 1998); with no resource read since a wrong answer (other than one known to
        contradict it) there is nothing the state could rest on.
        """
        return memory.wrong_pending and memory.resource_after_wrong

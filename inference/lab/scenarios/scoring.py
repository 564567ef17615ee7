"""How detection on scenario streams is judged: per learner, then per scenario and style.

A scripted learner is *detected* when an intervention with one of its intended states is raised
on one of its statements from the behaviour's onset to ``within`` statements after it; the
*delay* is how many statements after the onset the first such intervention came. A control
learner is *flagged* when any intervention is raised for it. Statement indices count what the
producer sent, including statements the pipeline could not read.

Floors: at least :data:`DETECTION_FLOOR` of the scripted learners of every scenario and style
detected, at most :data:`CONTROL_CEILING` of the control learners of every control kind and
style flagged.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DETECTION_FLOOR = 0.90
CONTROL_CEILING = 0.02
WITHIN = 10
"""Statements after the onset within which a detection counts."""


@dataclass(frozen=True, slots=True)
class LearnerOutcome:
    """What the pipeline did for one scripted learner in one producer style.

    Attributes:
        learner: the learner's name in the LMS.
        scenario: the scenario's name.
        variant: the scenario's variant.
        style: the producer style.
        intended: states that count as detecting the behaviour (empty: a control).
        onset: index of the onset statement (``None``: a control, or the producer sent
            nothing from the onset on).
        statements: statements the producer sent for the learner.
        unread: of those, statements the normaliser refused (dead letters).
        interventions: ``(statement index, state)`` of every intervention, in order.
    """

    learner: str
    scenario: str
    variant: str
    style: str
    intended: tuple[str, ...]
    onset: int | None
    statements: int
    unread: int = 0
    interventions: tuple[tuple[int, str], ...] = ()

    @property
    def control(self) -> bool:
        """True for a learner that must not be flagged."""
        return not self.intended


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict on one learner.

    Attributes:
        detected: an intended state within the window (``False`` for controls).
        delay: statements from the onset to the first such detection.
        flagged: any intervention at all.
        before_onset: interventions raised before the onset.
        states: states raised from the onset to the end of the window.
    """

    detected: bool
    delay: int | None
    flagged: bool
    before_onset: int
    states: tuple[str, ...]


def judge(outcome: LearnerOutcome, within: int = WITHIN) -> Judgement:
    """Judge one learner's interventions against its onset."""
    flagged = bool(outcome.interventions)
    if outcome.control or outcome.onset is None:
        return Judgement(False, None, flagged, 0, ())
    onset = outcome.onset
    window = [(i, s) for i, s in outcome.interventions if onset <= i <= onset + within]
    hits = [i - onset for i, s in window if s in outcome.intended]
    before = sum(1 for i, _ in outcome.interventions if i < onset)
    return Judgement(
        bool(hits), min(hits) if hits else None, flagged, before, tuple(s for _, s in window)
    )


@dataclass(slots=True)
class Row:
    """One scenario in one producer style.

    Attributes:
        scenario: the scenario's name.
        style: the producer style.
        control: a control scenario (judged on flags, not detections).
        learners: scripted learners.
        detected: behaviour learners detected with an intended state in the window.
        flagged: learners with any intervention.
        median_delay: median delay of the detected learners, statements.
        before_onset: behaviour learners with an intervention before the onset.
        unread: share of the statements the normaliser refused.
        states: how often each state was raised in the learners' windows (controls: at all).
        variants: per variant, ``[learners, detected or flagged]``.
    """

    scenario: str
    style: str
    control: bool
    learners: int = 0
    detected: int = 0
    flagged: int = 0
    median_delay: float | None = None
    before_onset: int = 0
    unread: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    variants: dict[str, list[int]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Detected share (behaviours) or flagged share (controls)."""
        if not self.learners:
            return 0.0
        return (self.flagged if self.control else self.detected) / self.learners

    @property
    def met(self) -> bool:
        """Whether the row meets its floor."""
        if self.control:
            return self.rate <= CONTROL_CEILING
        return self.learners > 0 and self.rate >= DETECTION_FLOOR


def summarise(outcomes: Iterable[LearnerOutcome], within: int = WITHIN) -> list[Row]:
    """Group outcomes by scenario and style (in first-seen order) and judge each group."""
    rows: dict[tuple[str, str], Row] = {}
    delays: dict[tuple[str, str], list[int]] = {}
    sent: dict[tuple[str, str], list[int]] = {}
    for outcome in outcomes:
        key = (outcome.scenario, outcome.style)
        row = rows.setdefault(key, Row(outcome.scenario, outcome.style, outcome.control))
        verdict = judge(outcome, within)
        row.learners += 1
        row.flagged += verdict.flagged
        counts = row.variants.setdefault(outcome.variant, [0, 0])
        counts[0] += 1
        raised = tuple(s for _, s in outcome.interventions) if outcome.control else verdict.states
        for state in raised:
            row.states[state] = row.states.get(state, 0) + 1
        if outcome.control:
            counts[1] += verdict.flagged
        else:
            row.detected += verdict.detected
            counts[1] += verdict.detected
            row.before_onset += verdict.before_onset > 0
            if verdict.delay is not None:
                delays.setdefault(key, []).append(verdict.delay)
        totals = sent.setdefault(key, [0, 0])
        totals[0] += outcome.statements
        totals[1] += outcome.unread
    for key, row in rows.items():
        found = delays.get(key)
        row.median_delay = float(statistics.median(found)) if found else None
        total, unread = sent[key]
        row.unread = unread / total if total else 0.0
    return list(rows.values())


def floors(rows: Sequence[Row]) -> dict[str, Any]:
    """Return whether every behaviour row and every control row meets its floor."""
    behaviours = [r for r in rows if not r.control]
    controls = [r for r in rows if r.control]
    return {
        "detection": {
            "required": f">= {DETECTION_FLOOR:.0%} of scripted learners in every scenario "
            "and style",
            "met": all(r.met for r in behaviours),
            "failing": [f"{r.scenario}/{r.style}" for r in behaviours if not r.met],
        },
        "controls": {
            "required": f"<= {CONTROL_CEILING:.0%} of control learners flagged in every kind "
            "and style",
            "met": all(r.met for r in controls),
            "failing": [f"{r.scenario}/{r.style}" for r in controls if not r.met],
        },
    }


def format_table(rows: Sequence[Row], within: int = WITHIN) -> str:
    """Return the rows as a plain-text table, behaviours first, then controls."""
    lines = [
        f"{'scenario':<16} {'style':<12} {'learners':>8} {'detected':>9} {'rate':>6} "
        f"{'median':>6} {'early':>5} {'unread':>6}  states in window (top)",
    ]
    for row in rows:
        if row.control:
            continue
        median = "-" if row.median_delay is None else f"{row.median_delay:.0f}"
        lines.append(
            f"{row.scenario:<16} {row.style:<12} {row.learners:>8} {row.detected:>9} "
            f"{row.rate:>6.0%} {median:>6} {row.before_onset:>5} {row.unread:>6.0%}  "
            f"{_top(row.states)}{'' if row.met else '  BELOW FLOOR'}"
        )
    lines.append("")
    lines.append(
        f"{'control':<16} {'style':<12} {'learners':>8} {'flagged':>9} {'rate':>6} "
        f"{'':>6} {'':>5} {'unread':>6}  states raised"
    )
    for row in rows:
        if not row.control:
            continue
        lines.append(
            f"{row.scenario:<16} {row.style:<12} {row.learners:>8} {row.flagged:>9} "
            f"{row.rate:>6.0%} {'':>6} {'':>5} {row.unread:>6.0%}  {_top(row.states)}"
            f"{'' if row.met else '  ABOVE CEILING'}"
        )
    lines.append("")
    lines.append(
        f"detected: an intended state within {within} statements of the onset; median: "
        "statements from onset to detection; early: learners with an intervention before the "
        "onset; unread: statements the normaliser refused."
    )
    return "\n".join(lines)


def _top(states: dict[str, int], n: int = 3) -> str:
    ranked = sorted(states.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{s} {c}" for s, c in ranked) or "-"


def report(rows: Sequence[Row], *, within: int = WITHIN, **extra: Any) -> dict[str, Any]:
    """Return a JSON-ready report of ``rows`` with the floors and ``extra`` fields."""
    return {
        **extra,
        "within": within,
        "rows": [dict(asdict(r), rate=r.rate, met=r.met) for r in rows],
        "floors": floors(rows),
    }

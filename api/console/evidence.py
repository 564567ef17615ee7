"""The evidence behind an intervention, in words a tutor reads before approving it.

The words come from the decision's own inputs: the learner's events in the class up to and
including the event that triggered the intervention (the window the model saw), set against
how long the class takes on its answers, and the model's confidence in the state it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.rows import dict_row

WINDOW_EVENTS: Final = 20
"""Events read back before the triggering one: about the model's window."""
_CLASS_WINDOW: Final = "1 hour"

_STATE_WORDS: Final[dict[str, str]] = {
    "gaming": "answering fast without reading, or clicking through hints",
    "wheel_spinning": "trying again and again without getting closer",
    "overconfidence": "answering quickly and confidently, and often wrongly",
    "anchoring": "repeating the same wrong answer",
    "confirmation": "looking only for what agrees with a first answer",
    "none": "no particular pattern",
}


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the words were made from, and the words.

    Attributes:
        answers: answers the learner submitted in the window.
        right: how many of them were right.
        hints: hints asked for in the window.
        fastest_s: the learner's quickest answer time, seconds.
        slowest_s: the learner's slowest answer time, seconds.
        class_median_s: the class's median answer time in the hour before, seconds.
        words: the sentence shown to the tutor.
    """

    answers: int
    right: int
    hints: int
    fastest_s: float | None
    slowest_s: float | None
    class_median_s: float | None
    words: str


def _duration(seconds: float) -> str:
    if seconds < 1.5:
        return "about a second"
    if seconds < 45:
        return f"{seconds:.0f} s"
    if seconds < 90:
        return "about a minute"
    if seconds < 3600:
        return f"about {seconds / 60:.0f} minutes"
    return f"about {seconds / 3600:.1f} hours"


def _span(low: float, high: float) -> str:
    if round(low) == round(high) or high < 1.5:
        return _duration(high)
    if high < 45:
        return f"{low:.0f}\u2013{high:.0f} s"  # an en dash, as in print
    return f"{_duration(low)} to {_duration(high)}"


def describe(
    events: list[dict[str, Any]], class_median_s: float | None, state: str, confidence: float
) -> Evidence:
    """Put a learner's recent events into words.

    Args:
        events: the learner's events of the window (``event_type``, ``correct``,
            ``duration_s``, ``hint_count``), any order.
        class_median_s: the class's median answer time, or ``None`` when unknown.
        state: the state the model saw.
        confidence: its probability.

    Returns:
        The counts and a sentence such as "answered 12 items in 2-3 s where the class takes
        about a minute; 1 right".
    """
    answers = [e for e in events if e.get("event_type") == "answer_submit"]
    right = sum(1 for e in answers if e.get("correct") is True)
    hints = sum(1 for e in events if e.get("event_type") == "hint_request")
    durations = sorted(float(e["duration_s"]) for e in answers if e.get("duration_s") is not None)
    fastest = durations[0] if durations else None
    slowest = durations[-1] if durations else None
    parts: list[str] = []
    if answers:
        sentence = f"answered {len(answers)} item{'s' if len(answers) != 1 else ''}"
        if fastest is not None and slowest is not None:
            sentence += f" in {_span(fastest, slowest)}"
            if class_median_s is not None:
                sentence += f" where the class takes {_duration(class_median_s)}"
        parts.append(f"{sentence}; {right} right")
    else:
        parts.append("no answer in the recent window")
    if hints:
        parts.append(f"asked for {hints} hint{'s' if hints != 1 else ''}")
    parts.append(
        f"the model sees {_STATE_WORDS.get(state, state.replace('_', ' '))} ({confidence:.0%} sure)"
    )
    return Evidence(len(answers), right, hints, fastest, slowest, class_median_s, "; ".join(parts))


async def evidence_of_many(
    conn: AsyncConnection[Any], class_id: str, interventions: list[dict[str, Any]]
) -> dict[str, Evidence]:
    """Put the inputs of many interventions of one class into words, in one query.

    Returns:
        The evidence of each intervention, by its id.
    """
    if not interventions:
        return {}
    ids = [row["intervention_id"] for row in interventions]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT i.intervention_id, e.event_type, e.correct, e.duration_s, e.hint_count, "
            "m.median FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) "
            "AS i(intervention_id, learner_id, at) "
            "LEFT JOIN LATERAL (SELECT event_type, correct, duration_s, hint_count FROM events "
            "WHERE learner_id = i.learner_id AND class_id = %s AND time <= i.at "
            "ORDER BY time DESC LIMIT %s) e ON true "
            "LEFT JOIN LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_s) "
            "AS median FROM events WHERE class_id = %s AND event_type = 'answer_submit' "
            "AND duration_s IS NOT NULL AND time <= i.at "
            f"AND time > i.at - INTERVAL '{_CLASS_WINDOW}') m ON true",
            (
                ids,
                [row["learner_id"] for row in interventions],
                [row["time"] for row in interventions],
                class_id,
                WINDOW_EVENTS,
                class_id,
            ),
        )
        found = await cur.fetchall()
    events: dict[str, list[dict[str, Any]]] = {ident: [] for ident in ids}
    medians: dict[str, float | None] = {}
    for row in found:
        ident = row["intervention_id"]
        if row["event_type"] is not None:
            events[ident].append(row)
        medians[ident] = float(row["median"]) if row["median"] is not None else None
    return {
        row["intervention_id"]: describe(
            events[row["intervention_id"]],
            medians.get(row["intervention_id"]),
            str(row["state"]),
            float(row["confidence"]),
        )
        for row in interventions
    }

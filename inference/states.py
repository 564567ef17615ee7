"""The behavioural states the learner model detects, in their fixed index order.

The index order is part of the model's output contract (``state_probs[:, k]``).
"""

from __future__ import annotations

STATES: tuple[str, ...] = (
    "none",
    "overconfidence",
    "anchoring",
    "confirmation",
    "gaming",
    "wheel_spinning",
)
"""State names; position ``k`` is the class index ``k`` in labels and model outputs."""

NONE, OVERCONFIDENCE, ANCHORING, CONFIRMATION, GAMING, WHEEL_SPINNING = range(len(STATES))
N_STATES = len(STATES)

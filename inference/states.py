"""The behavioural states the learner model detects, in their fixed index order.

The order is that of :class:`schemas.records.BehaviouralState`; it is part of the model's output
contract (``state_probs[:, k]`` is the probability of ``STATES[k]``).
"""

from __future__ import annotations

from schemas.records import BehaviouralState

STATES: tuple[str, ...] = tuple(state.value for state in BehaviouralState)
"""State names; position ``k`` is the class index ``k`` in labels and model outputs."""

NONE = STATES.index(BehaviouralState.NONE.value)
OVERCONFIDENCE = STATES.index(BehaviouralState.OVERCONFIDENCE.value)
ANCHORING = STATES.index(BehaviouralState.ANCHORING.value)
CONFIRMATION = STATES.index(BehaviouralState.CONFIRMATION.value)
GAMING = STATES.index(BehaviouralState.GAMING.value)
WHEEL_SPINNING = STATES.index(BehaviouralState.WHEEL_SPINNING.value)
N_STATES = len(STATES)

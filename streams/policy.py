"""The intervention policy: when a detected state becomes an intervention, and with what status.

All times are *event* times, not wall-clock times, so replaying history reproduces the same
decisions (and, with :func:`schemas.records.intervention_id`, the same intervention ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from schemas.records import intervention_id
from streams.prompts import Prompt, prompt_for

ALERT_STATES: tuple[str, ...] = (
    "overconfidence",
    "anchoring",
    "confirmation",
    "gaming",
    "wheel_spinning",
)


class Status(StrEnum):
    """Status of a new intervention."""

    PENDING_REVIEW = "pending_review"
    SENT = "sent"


class PolicySettings(BaseModel):
    """Thresholds and rate limits of the intervention policy.

    Attributes:
        review_threshold: confidence from which a detection becomes an intervention that waits
            for a tutor (``TUTORSTREAM_POLICY__REVIEW_THRESHOLD``); 0 takes every detection the
            model's own per-state decision thresholds raise.
        auto_send_threshold: confidence from which the prompt is sent to the learner at once;
            the tutor still sees it and can escalate (``TUTORSTREAM_POLICY__AUTO_SEND_THRESHOLD``).
            Unset by default: every prompt waits for a tutor, who keeps the last word.
        per_state_review: per-state overrides of ``review_threshold``.
        per_state_auto_send: per-state overrides of ``auto_send_threshold``.
        cooldown_s: least time between two interventions for one learner.
        same_state_cooldown_s: least time before the same state is raised again for a learner.
        hourly_cap: most interventions per learner in any hour.
    """

    review_threshold: float = Field(default=0.0, ge=0, le=1)
    auto_send_threshold: float | None = Field(default=None, ge=0, le=1)
    per_state_review: dict[str, float] = Field(default_factory=dict)
    per_state_auto_send: dict[str, float] = Field(default_factory=dict)
    cooldown_s: float = Field(default=300.0, ge=0)
    same_state_cooldown_s: float = Field(default=1800.0, ge=0)
    hourly_cap: int = Field(default=3, ge=0)

    def review_for(self, state: str) -> float:
        """Return the review threshold of ``state``."""
        return self.per_state_review.get(state, self.review_threshold)

    def auto_send_for(self, state: str) -> float | None:
        """Return the auto-send threshold of ``state`` (``None``: never auto-send)."""
        return self.per_state_auto_send.get(state, self.auto_send_threshold)


@dataclass(slots=True)
class LearnerAlertState:
    """What the policy remembers per learner; held in a changelog-backed table.

    Attributes:
        last_at: event time (epoch seconds) of the learner's last intervention.
        last_by_state: event time of the last intervention per state.
        recent: event times of interventions in the last hour, oldest first (at most
            ``hourly_cap`` entries, so the check stays O(1)).
    """

    last_at: float | None = None
    last_by_state: dict[str, float] = field(default_factory=dict)
    recent: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {"last_at": self.last_at, "last_by_state": self.last_by_state, "recent": self.recent}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearnerAlertState:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            last_at=data.get("last_at"),
            last_by_state=dict(data.get("last_by_state") or {}),
            recent=list(data.get("recent") or []),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """An intervention the policy decided to raise."""

    intervention_id: str
    state: str
    confidence: float
    status: Status
    prompt: Prompt


class SuppressReason(StrEnum):
    """Why a detection did not become an intervention (counted in metrics)."""

    BELOW_THRESHOLD = "below_threshold"
    COOLDOWN = "cooldown"
    SAME_STATE_COOLDOWN = "same_state_cooldown"
    HOURLY_CAP = "hourly_cap"
    NOT_SUPPORTED = "not_supported"
    """The model's state has no ground in the learner's events (``inference.rules`` vetoes)."""


class InterventionPolicy:
    """Turn a detected state into an intervention, or suppress it with a reason."""

    def __init__(self, settings: PolicySettings | None = None) -> None:
        self.settings = settings or PolicySettings()

    def decide(
        self,
        memory: LearnerAlertState,
        *,
        learner_id: str,
        event_id: str,
        event_time: float,
        state: str,
        confidence: float,
        by_rule: bool = False,
    ) -> Decision | SuppressReason:
        """Decide on one detection and, when an intervention is raised, update ``memory``.

        Args:
            memory: the learner's alert state (mutated when an intervention is raised).
            learner_id: pseudonymous learner id.
            event_id: id of the event that triggered the detection.
            event_time: that event's time, epoch seconds.
            state: detected state (one of :data:`ALERT_STATES`).
            confidence: the model's probability of that state.
            by_rule: the state was raised by a literature definition
                (``inference.rules``), not by the model: the review threshold, which is on
                the model's probability, does not apply, and the prompt always waits for a
                tutor (auto-send needs the model's confidence).

        Returns:
            The decision, or the reason it was suppressed.
        """
        s = self.settings
        if state not in ALERT_STATES or (not by_rule and confidence < s.review_for(state)):
            return SuppressReason.BELOW_THRESHOLD
        if memory.last_at is not None and event_time - memory.last_at < s.cooldown_s:
            return SuppressReason.COOLDOWN
        last_same = memory.last_by_state.get(state)
        if last_same is not None and event_time - last_same < s.same_state_cooldown_s:
            return SuppressReason.SAME_STATE_COOLDOWN
        hour_ago = event_time - 3600.0
        memory.recent = [t for t in memory.recent if t > hour_ago]
        if len(memory.recent) >= s.hourly_cap:
            return SuppressReason.HOURLY_CAP
        auto_send = s.auto_send_for(state)
        status = (
            Status.SENT
            if not by_rule and auto_send is not None and confidence >= auto_send
            else Status.PENDING_REVIEW
        )
        iid = intervention_id(learner_id, state, event_id)
        memory.last_at = event_time
        memory.last_by_state[state] = event_time
        memory.recent.append(event_time)
        return Decision(
            intervention_id=iid,
            state=state,
            confidence=confidence,
            status=status,
            prompt=prompt_for(state, iid),
        )

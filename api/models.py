"""What the tutor endpoints send and receive, as documented in the OpenAPI schema.

Learners appear only by their pseudonym (``learner_id``); the API never holds another name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.records import BehaviouralState, InterventionStatus

_PSEUDONYM: Final = "3f0c5e8a4b1d2c7e9f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"
_INTERVENTION_ID: Final = "5d1e0b1c-3a9f-5a43-9c11-2f7a4d6e8b90"

Action = Literal["approve", "dismiss", "escalate"]
"""What a tutor does with an intervention."""

STATUS_OF_ACTION: Final[dict[str, InterventionStatus]] = {
    "approve": "sent",
    "dismiss": "dismissed",
    "escalate": "escalated",
}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Problem(_Out):
    """An error: the HTTP status, the field it concerns (when one does) and why."""

    status: int = Field(description="The HTTP status code.")
    error: str = Field(description="The status in words.")
    path: str = Field(
        default="", description="Path of the failing field (`actor.mbox`, `query.limit`)."
    )
    reason: str = Field(description="What is wrong, phrased so the client can act on it.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": 400,
                    "error": "Bad Request",
                    "path": "actor.mbox",
                    "reason": "must be a mailto IRI such as mailto:learner@example.edu",
                }
            ]
        }
    )


class InterventionView(_Out):
    """An intervention as stored, with where the tutors' review stands."""

    intervention_id: str
    learner_id: str = Field(description="The learner's pseudonym.")
    class_id: str | None
    event_id: str = Field(description="The learning event that triggered it.")
    time: datetime = Field(description="Time of the triggering event.")
    state: str = Field(description="The behavioural state detected.")
    confidence: float
    status: str = Field(description="pending_review, sent, dismissed or escalated.")
    prompt: str = Field(description="The metacognitive prompt proposed for the learner.")
    prompt_id: str | None
    reason: str | None = Field(description="Why the policy raised it, for the tutor.")
    model_version: str | None
    created_at: datetime
    acted_at: datetime | None = Field(description="When a tutor acted on it, if one has.")
    acted_by: str | None = Field(description="Key id of the tutor who acted, if one has.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "intervention_id": _INTERVENTION_ID,
                    "learner_id": _PSEUDONYM,
                    "class_id": "7b",
                    "event_id": "e-1029",
                    "time": "2024-03-01T10:15:00Z",
                    "state": "gaming",
                    "confidence": 0.91,
                    "status": "pending_review",
                    "prompt": "What have you tried on your own so far?",
                    "prompt_id": "gaming.1",
                    "reason": "gaming at 91%; gaming 91%, none 5%",
                    "model_version": "tutorstream-learner@1",
                    "created_at": "2024-03-01T10:15:00.250Z",
                    "acted_at": None,
                    "acted_by": None,
                }
            ]
        }
    )


class InterventionPage(_Out):
    """One page of a class's interventions, newest first."""

    items: list[InterventionView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class ActionRequest(BaseModel):
    """What a tutor adds when acting on an intervention."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"note": "Talked to them in class; prompt is apt."}]},
    )

    note: str | None = Field(default=None, max_length=2000, description="Optional note.")


class ActionView(_Out):
    """One entry of the append-only audit: who did what, when."""

    action_id: int
    intervention_id: str
    class_id: str | None
    action: str = Field(description="approve, dismiss or escalate.")
    actor: str = Field(description="Key id of the tutor who acted.")
    note: str | None
    acted_at: datetime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "action_id": 17,
                    "intervention_id": _INTERVENTION_ID,
                    "class_id": "7b",
                    "action": "approve",
                    "actor": "4f2a9c81d07e",
                    "note": None,
                    "acted_at": "2024-03-01T10:16:12Z",
                }
            ]
        }
    )


class ActionResult(_Out):
    """The intervention after the action, and the audit entry recorded."""

    intervention: InterventionView
    action: ActionView
    prompt_id: str | None = Field(
        description="Id of the prompt published to learner.prompts.v1 (approval only)."
    )


class ActionPage(_Out):
    """One page of a class's audit, newest first."""

    items: list[ActionView]
    next_cursor: str | None


class EventView(_Out):
    """A learning event of the learner, as stored (no response text, only its hash)."""

    time: datetime
    event_id: str
    event_type: str
    item_id: str | None
    skill_ids: list[str]
    correct: bool | None
    attempt: int | None
    duration_s: float | None
    hint_level: int | None
    hint_count: int | None
    score_scaled: float | None
    resource_relation: str | None
    source: str


class PredictionView(_Out):
    """The model's reading of the learner after an event."""

    time: datetime
    event_id: str
    item_id: str | None
    state: str
    confidence: float
    p_correct: float | None
    model_version: str


class MasteryView(_Out):
    """Predicted mastery of one skill after an event."""

    time: datetime
    event_id: str
    skill_id: str
    mastery: float
    model_version: str


class Timeline(_Out):
    """A learner's recent history in a class, each list newest first."""

    learner_id: str
    class_id: str
    events: list[EventView]
    predictions: list[PredictionView]
    mastery: list[MasteryView]
    interventions: list[InterventionView]


class RecommendationView(_Out):
    """The current next-item recommendation of one learner."""

    learner_id: str
    time: datetime
    event_id: str
    item_id: str
    skill_ids: list[str]
    p_success: float | None
    reason: str | None
    model_version: str | None
    updated_at: datetime


class Recommendations(_Out):
    """The class's current recommendations, one per learner."""

    class_id: str
    items: list[RecommendationView]


class Accepted(_Out):
    """Learning events accepted: on ``lms.events.v1``, confirmed by the broker."""

    accepted: int = Field(description="Events accepted.")
    event_ids: list[str] = Field(description="Their ids, in the order sent.")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"accepted": 1, "event_ids": ["e-1029"]}]}
    )


class Health(_Out):
    """Liveness or readiness, with what each dependency said."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = Field(default_factory=dict)


def state_names() -> list[str]:
    """Return the behavioural states, for filter documentation."""
    return [state.value for state in BehaviouralState]


def row_model(model: type[_Out], row: dict[str, Any]) -> Any:
    """Build a response model from a database row, skipping columns it does not show."""
    return model.model_validate({name: row.get(name) for name in model.model_fields})

"""Outbound records: what the pipeline writes after it has read a learner's events.

Every record names its learner by the pseudonymous id only, and is keyed by it on its topic.
"""

from __future__ import annotations

import base64
import hashlib
import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, field_validator

from schemas.exceptions import InvalidEvent

INTERVENTION_NAMESPACE: Final = uuid.UUID("2b6f4d1e-9c3a-4f57-8e21-5d0c7a9b3e64")
"""Namespace of the UUIDv5 that identifies an intervention."""
PROMPT_NAMESPACE: Final = uuid.UUID("8d3e5a71-0f2c-4b96-a4d8-6e1f9c2b7a05")
"""Namespace of the UUIDv5 that identifies a learner prompt."""

LearnerId = Annotated[str, Field(min_length=1, max_length=128, description="Pseudonymous id.")]
ClassId = Annotated[str, Field(max_length=200)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class BehaviouralState(StrEnum):
    """Metacognitive states the model recognises in a learner's recent behaviour."""

    NONE = "none"
    OVERCONFIDENCE = "overconfidence"
    ANCHORING = "anchoring"
    CONFIRMATION = "confirmation"
    GAMING = "gaming"
    WHEEL_SPINNING = "wheel_spinning"


InterventionStatus = Literal["pending_review", "sent", "dismissed", "escalated"]
"""Where an intervention is in the tutor's review."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureVector(_Record):
    """A learner's features after one event, as the model reads them."""

    learner_id: LearnerId
    class_id: ClassId | None = None
    event_id: str = Field(min_length=1, max_length=200, description="Event that produced it.")
    item_id: str | None = Field(default=None, max_length=500)
    timestamp: AwareDatetime = Field(description="Time of the event, UTC.")
    feature_set: str = Field(
        min_length=1, max_length=64, description="Name and version of the feature definitions."
    )
    features: dict[str, float] = Field(description="Feature name to value; all finite.")

    @field_validator("features")
    @classmethod
    def _finite(cls, features: dict[str, float]) -> dict[str, float]:
        for name, value in features.items():
            if not math.isfinite(value):
                raise ValueError(f"feature {name!r} is {value}; features must be finite")
        return features


class Prediction(_Record):
    """The model's reading of a learner's state after one event."""

    learner_id: LearnerId
    class_id: ClassId | None = None
    event_id: str = Field(min_length=1, max_length=200)
    timestamp: AwareDatetime
    model_name: str = Field(min_length=1, max_length=100)
    model_version: str = Field(min_length=1, max_length=100)
    state: BehaviouralState = Field(description="The most probable state.")
    confidence: Probability = Field(description="Probability of that state.")
    probabilities: dict[BehaviouralState, Probability] = Field(
        description="Probability of every state; they sum to 1."
    )
    mastery: dict[str, Probability] = Field(
        default_factory=dict, description="Skill id to the probability the skill is mastered."
    )


def intervention_id(learner_id: str, state: BehaviouralState | str, event_id: str) -> str:
    """Return the deterministic id of the intervention a learner, state and event give rise to.

    Reprocessing the same event (a replay, a retried batch) yields the same id, so the store and
    the tutors' feed see one intervention, not two.
    """
    return str(uuid.uuid5(INTERVENTION_NAMESPACE, f"{learner_id}\x1f{state}\x1f{event_id}"))


class Intervention(_Record):
    """A metacognitive prompt proposed for a learner, awaiting or past a tutor's review."""

    intervention_id: str = Field(
        min_length=36, max_length=36, description="UUIDv5 of learner, state and triggering event."
    )
    learner_id: LearnerId
    class_id: ClassId | None = None
    event_id: str = Field(min_length=1, max_length=200, description="The triggering event.")
    state: BehaviouralState
    confidence: Probability
    prompt: str = Field(
        min_length=1, max_length=2000, description="Metacognitive prompt text for the learner."
    )
    prompt_id: str | None = Field(
        default=None, max_length=100, description="Stable id of the prompt, to compare outcomes."
    )
    model_name: str = Field(min_length=1, max_length=100)
    model_version: str = Field(min_length=1, max_length=100)
    evidence: dict[str, JsonValue] = Field(
        default_factory=dict, description="What the decision rests on, for the tutor to read."
    )
    status: InterventionStatus = "pending_review"
    created_at: AwareDatetime

    @classmethod
    def create(
        cls,
        *,
        learner_id: str,
        event_id: str,
        state: BehaviouralState,
        confidence: float,
        prompt: str,
        model_name: str,
        model_version: str,
        created_at: datetime,
        class_id: str | None = None,
        prompt_id: str | None = None,
        evidence: dict[str, JsonValue] | None = None,
        status: InterventionStatus = "pending_review",
    ) -> Intervention:
        """Build an intervention with its deterministic id."""
        return cls(
            intervention_id=intervention_id(learner_id, state, event_id),
            learner_id=learner_id,
            class_id=class_id,
            event_id=event_id,
            state=state,
            confidence=confidence,
            prompt=prompt,
            prompt_id=prompt_id,
            model_name=model_name,
            model_version=model_version,
            evidence=evidence or {},
            status=status,
            created_at=created_at,
        )

    @classmethod
    def from_row(
        cls, row: Mapping[str, Any], *, status: InterventionStatus | None = None
    ) -> Intervention:
        """Rebuild an intervention from its ``interventions`` row in the store.

        ``model_version`` is stored as ``name@version``; ``status`` overrides the row's.
        """
        name, _, version = str(row["model_version"] or "unknown@unknown").partition("@")
        return cls(
            intervention_id=row["intervention_id"],
            learner_id=row["learner_id"],
            class_id=row["class_id"],
            event_id=row["event_id"],
            state=BehaviouralState(row["state"]),
            confidence=min(1.0, max(0.0, float(row["confidence"]))),
            prompt=row["prompt"],
            prompt_id=row["prompt_id"],
            model_name=name or "unknown",
            model_version=version or "unknown",
            evidence={"reason": row["reason"]} if row.get("reason") else {},
            status=status or row["status"],
            created_at=row["created_at"],
        )


RECOMMENDATION_REASON_MAX = 200
"""Longest reason a recommended item carries, in characters."""


class RecommendedItem(_Record):
    """One item proposed next, with the chance the learner answers it correctly."""

    item_id: str = Field(min_length=1, max_length=500)
    predicted_success: Probability
    reason: str = Field(
        min_length=1,
        max_length=RECOMMENDATION_REASON_MAX,
        pattern=r"^[^\r\n]*$",
        description="One line, for tutors.",
    )


class Recommendation(_Record):
    """The next items proposed for a learner; the topic keeps the latest per learner."""

    learner_id: LearnerId
    class_id: ClassId | None = None
    event_id: str = Field(min_length=1, max_length=200, description="Event it was computed on.")
    model_name: str = Field(min_length=1, max_length=100)
    model_version: str = Field(min_length=1, max_length=100)
    items: tuple[RecommendedItem, ...] = Field(min_length=1, max_length=20)
    created_at: AwareDatetime


class LearnerPrompt(_Record):
    """A tutor-approved prompt on its way to the learner."""

    learner_prompt_id: str = Field(
        min_length=36, max_length=36, description="UUIDv5 of the intervention it delivers."
    )
    intervention_id: str = Field(min_length=36, max_length=36)
    prompt_id: str | None = Field(
        default=None, max_length=100, description="Stable id of the prompt, to compare outcomes."
    )
    learner_id: LearnerId
    class_id: ClassId | None = None
    text: str = Field(min_length=1, max_length=2000)
    approved_by: str = Field(
        min_length=1, max_length=200, description="Id of the tutor's API key, never a name."
    )
    approved_at: AwareDatetime

    @classmethod
    def from_intervention(
        cls, intervention: Intervention, approved_by: str, approved_at: datetime
    ) -> LearnerPrompt:
        """Build the prompt an approved intervention sends; its id is derived from it."""
        return cls(
            learner_prompt_id=str(uuid.uuid5(PROMPT_NAMESPACE, intervention.intervention_id)),
            intervention_id=intervention.intervention_id,
            prompt_id=intervention.prompt_id,
            learner_id=intervention.learner_id,
            class_id=intervention.class_id,
            text=intervention.prompt,
            approved_by=approved_by,
            approved_at=approved_at,
        )


class DeadLetter(_Record):
    """An inbound record that could not be normalised, kept whole with the reason."""

    original_b64: str = Field(
        description="The record's bytes exactly as received, base64; only their head when "
        "``truncated``."
    )
    key_b64: str | None = Field(default=None, description="The record's Kafka key, base64.")
    truncated: bool = Field(
        default=False,
        description="True when the whole dead letter would not fit its topic: "
        "``original_b64`` holds the head of the record, and the whole record is kept in the "
        "store's ``dead_letter_payloads`` table under ``original_sha256``.",
    )
    original_size: int | None = Field(
        default=None, ge=0, description="Length of the record's bytes, when truncated."
    )
    original_sha256: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 of the record's bytes (hex), when truncated.",
    )
    error_path: str = Field(description="Field path of the failure; empty for the whole record.")
    error_reason: str
    error_source: str | None = Field(
        default=None, description="Format being read: xapi, caliper, native, or unknown."
    )
    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    failed_at: AwareDatetime

    @classmethod
    def from_error(
        cls,
        original: bytes,
        error: InvalidEvent,
        *,
        topic: str,
        partition: int,
        offset: int,
        failed_at: datetime,
        key: bytes | None = None,
    ) -> DeadLetter:
        """Build the dead letter for a record that raised :class:`InvalidEvent`."""
        return cls(
            original_b64=base64.b64encode(original).decode("ascii"),
            key_b64=base64.b64encode(key).decode("ascii") if key is not None else None,
            error_path=error.path,
            error_reason=error.reason,
            error_source=error.source,
            topic=topic,
            partition=partition,
            offset=offset,
            failed_at=failed_at,
        )

    def original(self) -> bytes:
        """Return the record's original bytes (their head only, when :attr:`truncated`)."""
        return base64.b64decode(self.original_b64)

    def fitted(self, limit: int, head: int) -> DeadLetter:
        """Return this dead letter, or its truncated form when its JSON exceeds ``limit`` bytes.

        The truncated form keeps the first ``head`` bytes of the record, its size and its
        SHA-256, and says so in the reason; whoever writes it keeps the whole record where
        the hash finds it.
        """
        if len(self.original_b64) + len(self.key_b64 or "") + len(self.error_reason) < limit:
            return self
        original = self.original()
        digest = hashlib.sha256(original).hexdigest()
        return self.model_copy(
            update={
                "original_b64": base64.b64encode(original[:head]).decode("ascii"),
                "truncated": True,
                "original_size": len(original),
                "original_sha256": digest,
                "error_reason": (
                    f"{self.error_reason[: limit // 4]} [dead letter truncated: the record's "
                    f"{len(original)} bytes exceed what the topic takes; its first "
                    f"{min(head, len(original))} bytes are here, the whole record is in the "
                    f"store's dead_letter_payloads table under sha256 {digest}]"
                ),
            }
        )


RECORD_MODELS: Final[dict[str, type[BaseModel]]] = {
    "FeatureVector": FeatureVector,
    "Prediction": Prediction,
    "Intervention": Intervention,
    "Recommendation": Recommendation,
    "LearnerPrompt": LearnerPrompt,
    "DeadLetter": DeadLetter,
}
"""The outbound models by name, as the topic catalogue refers to them."""

"""The one normalised event every inbound format becomes: :class:`LearningEvent`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class EventType(StrEnum):
    """Closed set of things a learner does that the pipeline understands."""

    PROBLEM_START = "problem_start"
    ANSWER_SUBMIT = "answer_submit"
    HINT_REQUEST = "hint_request"
    FEEDBACK_VIEW = "feedback_view"
    RESOURCE_VIEW = "resource_view"
    PROBLEM_COMPLETE = "problem_complete"
    MEDIA_PLAY = "media_play"
    MEDIA_PAUSE = "media_pause"
    MEDIA_SEEK = "media_seek"
    MEDIA_COMPLETE = "media_complete"


class SourceFormat(StrEnum):
    """Inbound format an event was normalised from."""

    XAPI = "xapi"
    CALIPER = "caliper"
    NATIVE = "native"


class ResourceRelation(StrEnum):
    """How a viewed resource relates to the learner's last response.

    LMS content tagged by misconception tells whether a resource backs the answer the learner
    already gave (``supports``) or corrects it (``contradicts``); the confirmation-seeking
    detector needs exactly that distinction.
    """

    SUPPORTS = "supports"
    CONTRADICTS = "contradicts"
    NEUTRAL = "neutral"


class LearningEvent(BaseModel):
    """A learner action, normalised and pseudonymised; the unit that flows through the pipeline.

    ``learner_id`` is always a keyed-HMAC pseudonym: the raw identifier never reaches this model.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, max_length=200, description="Stable id used for dedupe.")
    learner_id: str = Field(min_length=1, max_length=128, description="Pseudonymous learner id.")
    class_id: str | None = Field(default=None, max_length=200, description="Course or class.")
    session_id: str | None = Field(default=None, max_length=200)
    item_id: str | None = Field(
        default=None, max_length=500, description="Problem, resource, media."
    )
    skill_ids: tuple[str, ...] = Field(default=(), description="Skills the item exercises.")
    event_type: EventType
    timestamp: AwareDatetime = Field(description="When it happened, UTC.")
    correct: bool | None = Field(default=None, description="Correctness of a submitted answer.")
    response_hash: str | None = Field(
        default=None, max_length=64, description="Hash of the response text, never the text."
    )
    attempt: int | None = Field(default=None, ge=1, description="Attempt number on the item.")
    duration_s: float | None = Field(default=None, ge=0, description="Time spent, seconds.")
    hint_level: int | None = Field(default=None, ge=0, description="Hint depth; bottom-out is max.")
    hint_count: int | None = Field(default=None, ge=1, description="Hints the item offers.")
    item_difficulty: float | None = Field(default=None, description="LMS-provided difficulty.")
    resource_relation: ResourceRelation | None = None
    score_scaled: float | None = Field(default=None, ge=-1, le=1)
    source: SourceFormat
    profile: str | None = Field(
        default=None,
        max_length=80,
        description="The statement profile (id@version) the event was read with; none for "
        "native events.",
    )

    def utc_timestamp(self) -> datetime:
        """Return the timestamp converted to UTC."""
        from datetime import UTC

        return self.timestamp.astimezone(UTC)


class UnmodelledEvent(BaseModel):
    """A valid statement that carries nothing the model uses: stored and counted, not scored.

    An LRS keeps every valid statement; the worker stores these in the ``events`` table with
    the event type ``unmodelled`` and the verb, so they are counted by verb and profile and
    never sent to the dead-letter topic, which holds invalid records only.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, max_length=200)
    learner_id: str = Field(min_length=1, max_length=128, description="Pseudonymous learner id.")
    class_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    item_id: str | None = Field(default=None, max_length=500)
    timestamp: AwareDatetime
    verb: str = Field(
        max_length=500, description="The xAPI verb IRI, or the Caliper event type and action."
    )
    reason: str = Field(max_length=200, description="Why the model cannot use it.")
    source: SourceFormat
    profile: str | None = Field(default=None, max_length=80)

"""The native event: a compact JSON record for producers that want neither xAPI nor Caliper.

Its fields are the :class:`~schemas.events.LearningEvent`'s, with two differences made for the
producer: ``learner_id`` is the producer's own learner id (pseudonymised at ingest, never kept)
and ``response`` is the learner's answer text (hashed at ingest, never kept). Types are strict:
``"3"`` is not an attempt number and ``"true"`` is not a boolean. Unknown fields are refused, so a
typo in a field name is reported instead of the value being lost.

Example::

    {"event_id": "e-1029", "learner_id": "s-4711", "class_id": "7b", "item_id": "frac-12",
     "skill_ids": ["fractions.add"], "event_type": "answer_submit",
     "timestamp": "2024-03-01T10:15:00.120Z", "correct": false, "response": "3/8", "attempt": 2}
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
)

from schemas.events import EventType, LearningEvent, ResourceRelation, SourceFormat
from schemas.exceptions import InvalidEvent
from schemas.formats import child, item, parse_timestamp, response_hash
from schemas.mapping import MAX_SKILL_LENGTH, MAX_SKILLS, make_event
from schemas.pseudonym import Pseudonymiser

SOURCE: Final = SourceFormat.NATIVE.value


def _timestamp(value: object) -> datetime:
    # One timestamp rule for every format: ISO 8601, zone required, "-00:00" refused.
    try:
        return parse_timestamp(value, "timestamp", SOURCE)
    except InvalidEvent as err:
        raise ValueError(err.reason) from None


NATIVE_EXAMPLE: Final[dict[str, Any]] = {
    "event_id": "e-1029",
    "learner_id": "s-4711",
    "class_id": "7b",
    "item_id": "frac-12",
    "skill_ids": ["fractions.add"],
    "event_type": "answer_submit",
    "timestamp": "2024-03-01T10:15:00.120Z",
    "correct": False,
    "response": "3/8",
    "attempt": 2,
}
"""A native event as a producer sends it (the schema's and the API's example)."""


class NativeEvent(BaseModel):
    """A learner action as a producer sends it natively."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        title="NativeEvent",
        json_schema_extra={"examples": [NATIVE_EXAMPLE]},
    )

    event_id: str = Field(min_length=1, max_length=200, description="Producer's id; dedupe key.")
    learner_id: str = Field(
        min_length=1,
        max_length=500,
        description="Producer's learner id; replaced by a keyed pseudonym at ingest.",
    )
    class_id: str | None = Field(default=None, min_length=1, max_length=200)
    session_id: str | None = Field(default=None, min_length=1, max_length=200)
    item_id: str | None = Field(default=None, min_length=1, max_length=500)
    skill_ids: list[Annotated[str, Field(min_length=1, max_length=MAX_SKILL_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_SKILLS
    )
    event_type: Annotated[EventType, Strict(False)]
    timestamp: Annotated[AwareDatetime, BeforeValidator(_timestamp), Strict(False)] = Field(
        description="ISO 8601 with a time zone."
    )
    correct: bool | None = None
    response: str | None = Field(
        default=None, description="The learner's answer; only its SHA-256 is kept."
    )
    attempt: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    hint_level: int | None = Field(default=None, ge=0)
    hint_count: int | None = Field(default=None, ge=1)
    item_difficulty: float | None = Field(default=None, allow_inf_nan=False)
    resource_relation: Annotated[ResourceRelation, Strict(False)] | None = None
    score_scaled: float | None = Field(default=None, ge=-1, le=1, allow_inf_nan=False)


def _error_path(path: str, loc: tuple[int | str, ...]) -> str:
    for part in loc:
        path = item(path, part) if isinstance(part, int) else child(path, part)
    return path


def parse_native(payload: object, path: str = "") -> NativeEvent:
    """Validate a native event (parsed JSON).

    Raises:
        InvalidEvent: naming the first field that fails, and why.
    """
    if type(payload) is not dict:
        raise InvalidEvent(path, "a native event must be a JSON object", SOURCE)
    try:
        return NativeEvent.model_validate(payload)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise InvalidEvent(_error_path(path, first["loc"]), first["msg"], SOURCE) from None


def to_learning_event(
    event: NativeEvent, pseudonymiser: Pseudonymiser, path: str = ""
) -> LearningEvent:
    """Map a validated native event to a :class:`LearningEvent`."""
    fields: dict[str, Any] = {
        "event_id": event.event_id,
        "learner_id": pseudonymiser.native_learner(event.learner_id),
        "class_id": event.class_id,
        "session_id": event.session_id,
        "item_id": event.item_id,
        "skill_ids": tuple(event.skill_ids),
        "event_type": event.event_type,
        "timestamp": event.timestamp,
        "correct": event.correct,
        "response_hash": response_hash(event.response) if event.response is not None else None,
        "attempt": event.attempt,
        "duration_s": event.duration_s,
        "hint_level": event.hint_level,
        "hint_count": event.hint_count,
        "item_difficulty": event.item_difficulty,
        "resource_relation": event.resource_relation,
        "score_scaled": event.score_scaled,
        "source": SourceFormat.NATIVE,
        "profile": None,
    }
    return make_event(fields)


def normalise_native(
    payload: object, pseudonymiser: Pseudonymiser, path: str = ""
) -> LearningEvent:
    """Validate a native event and map it to a :class:`LearningEvent`.

    Raises:
        InvalidEvent: when a field is missing, unknown, or of the wrong type or range.
    """
    return to_learning_event(parse_native(payload, path), pseudonymiser, path)

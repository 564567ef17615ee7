"""Pieces shared by the three normalisers: reading tutorstream's extension values, building events.

Every reader takes the field path it reads from, so a bad value becomes an
:class:`~schemas.exceptions.InvalidEvent` that names exactly where it sits in the inbound record.
"""

from __future__ import annotations

import math
from typing import Any, Final, NoReturn

from schemas.events import LearningEvent, ResourceRelation
from schemas.exceptions import InvalidEvent
from schemas.formats import json_type

MAX_SKILLS: Final = 64
MAX_SKILL_LENGTH: Final = 200
MAX_EVENT_ID_LENGTH: Final = 200
MAX_CLASS_ID_LENGTH: Final = 200
MAX_SESSION_ID_LENGTH: Final = 200
MAX_ITEM_ID_LENGTH: Final = 500

_RELATIONS: Final = {relation.value: relation for relation in ResourceRelation}


def fail(path: str, reason: str, source: str | None) -> NoReturn:
    """Raise :class:`InvalidEvent` for ``path``."""
    raise InvalidEvent(path, reason, source)


def bounded(value: str, limit: int, path: str, source: str | None) -> str:
    """Return ``value`` when it fits the event's length limit for that field."""
    if len(value) > limit:
        fail(path, f"is {len(value)} characters long; tutorstream keeps at most {limit}", source)
    return value


def skill_ids(value: object, path: str, source: str | None) -> tuple[str, ...]:
    """Read a list of skill ids (a single string is taken as a list of one)."""
    if value is None:
        return ()
    if type(value) is str:
        value = [value]
    if type(value) is not list:
        fail(path, f"must be an array of skill id strings, got {json_type(value)}", source)
    if len(value) > MAX_SKILLS:
        fail(path, f"lists {len(value)} skills; at most {MAX_SKILLS} are kept per item", source)
    for index, skill in enumerate(value):
        if type(skill) is not str or not skill or len(skill) > MAX_SKILL_LENGTH:
            fail(
                f"{path}[{index}]",
                f"a skill id must be a non-empty string of at most {MAX_SKILL_LENGTH} characters",
                source,
            )
    return tuple(value)


def optional_int(value: object, minimum: int, path: str, source: str | None) -> int | None:
    """Read an optional integer of at least ``minimum`` (JSON ``1.0`` is accepted as 1)."""
    if value is None:
        return None
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        fail(path, f"must be an integer, got {json_type(value)}", source)
    if value < minimum:
        fail(path, f"must be at least {minimum}, got {value}", source)
    return value


def optional_number(value: object, path: str, source: str | None) -> float | None:
    """Read an optional finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        fail(path, f"must be a finite number, got {json_type(value)}", source)
    return float(value)


def optional_bool(value: object, path: str, source: str | None) -> bool | None:
    """Read an optional boolean."""
    if value is None or type(value) is bool:
        return value
    fail(path, f"must be true or false, got {json_type(value)}", source)


def resource_relation(value: object, path: str, source: str | None) -> ResourceRelation | None:
    """Read how a viewed resource relates to the learner's last answer."""
    if value is None:
        return None
    relation = _RELATIONS.get(value) if type(value) is str else None
    if relation is None:
        fail(path, "must be one of 'supports', 'contradicts', 'neutral'", source)
    return relation


_EVENT_FIELDS: Final = frozenset(LearningEvent.model_fields)


def make_event(fields: dict[str, Any]) -> LearningEvent:
    """Build a :class:`LearningEvent` from a complete set of already-checked fields.

    The normalisers enforce every constraint of the model themselves (lengths, ranges, UTC
    timestamps, enum members), so a second pass through pydantic's validator, which would cost
    as much as the whole xAPI check, is skipped: the instance is assembled the way
    ``model_construct`` does it. The unit tests check that every event the normalisers build
    survives a full ``model_validate`` of its dump unchanged.
    """
    event = object.__new__(LearningEvent)
    object.__setattr__(event, "__dict__", fields)
    object.__setattr__(event, "__pydantic_fields_set__", set(_EVENT_FIELDS))
    object.__setattr__(event, "__pydantic_extra__", None)
    object.__setattr__(event, "__pydantic_private__", None)
    return event

"""One entry point from raw inbound records to :class:`LearningEvent`: :func:`normalise`.

It reads JSON (bytes, text, or already parsed), tells the format apart, validates, pseudonymises
and maps through a statement profile (:mod:`schemas.profiles`; the built-in one unless the
producer has its own). Whatever the input (truncated JSON, wrong types, nesting beyond the
parser's depth limit, a payload of many megabytes), it either returns the events or raises
:class:`~schemas.exceptions.InvalidEvent` with the field path and the reason, which is what the
stream worker writes to the dead-letter topic. A valid record the model cannot use is not an
error: it comes back as an :class:`~schemas.events.UnmodelledEvent`, stored and counted.

Formats are told apart by their shape:

- a JSON object with ``data`` and ``sensor``/``dataVersion`` is a Caliper envelope;
- one with ``verb`` is an xAPI statement;
- one with ``@context``, ``action`` or ``eventTime`` is a bare Caliper event;
- one with ``actor`` and ``object`` (but none of the above) is an xAPI statement;
- one with ``event_type`` or ``learner_id`` is a native event;
- a JSON array holds xAPI statements or native events, each told apart the same way.

Raw bytes that mention ``"verb"`` are first decoded straight into the typed xAPI model, the
cheapest way in for the bulk of the traffic; whatever does not decode that way takes the general
path above, which also finds and explains what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
import orjson

from schemas import caliper, native, xapi
from schemas.events import LearningEvent, SourceFormat, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.formats import item, json_type
from schemas.profiles.compiled import CompiledProfile, builtin
from schemas.pseudonym import Pseudonymiser

MAX_PAYLOAD_BYTES: Final = 16 * 1024 * 1024
"""Largest payload read; Kafka's default message limit is 1 MiB, so this only stops abuse."""

RawRecord = bytes | bytearray | memoryview | str | Mapping[str, Any] | Sequence[Any]

_PSEUDONYMISERS: dict[bytes, Pseudonymiser] = {}
_MAX_CACHED_KEYS: Final = 8


def pseudonymiser_for(key: bytes | Pseudonymiser) -> Pseudonymiser:
    """Return the :class:`Pseudonymiser` for ``key``, built once per key."""
    if isinstance(key, Pseudonymiser):
        return key
    found = _PSEUDONYMISERS.get(key)
    if found is None:
        found = Pseudonymiser(key)
        if len(_PSEUDONYMISERS) >= _MAX_CACHED_KEYS:
            _PSEUDONYMISERS.clear()
        _PSEUDONYMISERS[bytes(key)] = found
    return found


def detect_format(record: Mapping[str, Any]) -> SourceFormat | None:
    """Return the format a parsed JSON object is in, or ``None`` when it is none of them."""
    if "data" in record and ("sensor" in record or "dataVersion" in record):
        return SourceFormat.CALIPER
    if "verb" in record:
        return SourceFormat.XAPI
    if "@context" in record or "action" in record or "eventTime" in record:
        return SourceFormat.CALIPER
    if "actor" in record and "object" in record:
        return SourceFormat.XAPI
    if "event_type" in record or "learner_id" in record:
        return SourceFormat.NATIVE
    return None


_UNKNOWN_FORMAT: Final = (
    "cannot tell the format: expected an xAPI statement (actor, verb, object), a Caliper "
    "envelope (sensor, sendTime, dataVersion, data) or event (actor, action, object), or a "
    "native event (event_id, learner_id, event_type, timestamp)"
)


def _record(
    record: object,
    pseudonymiser: Pseudonymiser,
    path: str,
    out: list[LearningEvent],
    profile: CompiledProfile,
    unmodelled: list[UnmodelledEvent] | None,
    received: datetime | None,
) -> None:
    if type(record) is not dict:
        raise InvalidEvent(path, f"expected a JSON object, got {json_type(record)}")
    kind = detect_format(record)
    if kind is SourceFormat.XAPI:
        _sort(
            xapi.normalise_statement(record, pseudonymiser, path, profile, received),
            out,
            unmodelled,
        )
    elif kind is SourceFormat.CALIPER:
        for event in caliper.normalise_caliper(record, pseudonymiser, path, profile):
            _sort(event, out, unmodelled)
    elif kind is SourceFormat.NATIVE:
        out.append(native.normalise_native(record, pseudonymiser, path))
    else:
        raise InvalidEvent(path, _UNKNOWN_FORMAT)


def _sort(
    event: LearningEvent | UnmodelledEvent,
    out: list[LearningEvent],
    unmodelled: list[UnmodelledEvent] | None,
) -> None:
    if type(event) is LearningEvent:
        out.append(event)
    elif unmodelled is not None:
        unmodelled.append(event)  # type: ignore[arg-type]  # the other member of the union


def parse_json(
    raw: bytes | bytearray | memoryview | str, *, max_bytes: int = MAX_PAYLOAD_BYTES
) -> Any:
    """Parse a raw payload with orjson, refusing payloads over ``max_bytes``.

    Raises:
        InvalidEvent: when the payload is too large or not valid JSON (with the position).
    """
    size = len(raw) if not isinstance(raw, memoryview) else raw.nbytes
    if size > max_bytes:
        raise InvalidEvent("", f"payload of {size} bytes is over the {max_bytes}-byte limit")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise InvalidEvent("", f"not valid JSON: {err}") from None


def normalise(
    raw: RawRecord,
    key: bytes | Pseudonymiser,
    *,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    profile: CompiledProfile | None = None,
    unmodelled: list[UnmodelledEvent] | None = None,
    received: datetime | None = None,
) -> list[LearningEvent]:
    """Normalise one inbound record (any supported format) to learning events.

    A valid statement or Caliper event the model cannot use is not an error: it is appended to
    ``unmodelled`` (when given) as an :class:`UnmodelledEvent`, to be stored and counted.

    Args:
        raw: the record as received: JSON bytes or text, or already-parsed JSON (a dict for one
            statement, envelope or native event; a list of statements or native events).
        key: the pseudonym key (``TUTORSTREAM_PSEUDONYM_KEY`` as bytes), or a ready
            :class:`Pseudonymiser`.
        max_bytes: the largest raw payload read.
        profile: the producer's statement profile; the built-in one when ``None``.
        unmodelled: where valid records the model cannot use go; left out, they are dropped.
        received: when the record reached tutorstream (its Kafka timestamp): the time of an
            xAPI statement that carries neither ``timestamp`` nor ``stored``.

    Returns:
        The modelled events, in the order they appear in the record (none when every
        statement in it is unmodelled).

    Raises:
        InvalidEvent: with the path of the failing field (``actor.mbox``, ``[2].verb.id``,
            ``data[0].object.id``), the reason, and the format when it could be told.
    """
    pseudonymiser = key if type(key) is Pseudonymiser else pseudonymiser_for(key)
    if profile is None:
        profile = builtin()
    parsed: Any
    if isinstance(raw, bytes | str | bytearray | memoryview):
        data = raw if isinstance(raw, bytes | str) else bytes(raw)
        if len(data) > max_bytes:
            raise InvalidEvent(
                "", f"payload of {len(data)} bytes is over the {max_bytes}-byte limit"
            )
        if (_VERB_TEXT if isinstance(data, str) else _VERB_BYTES) in data:  # type: ignore[operator]
            events = _xapi_fast(data, pseudonymiser, profile, unmodelled, received)
            if events is not None:
                return events
        parsed = parse_json(data, max_bytes=max_bytes)
    else:
        parsed = raw
    if type(parsed) is dict:
        events = []
        _record(parsed, pseudonymiser, "", events, profile, unmodelled, received)
        return events
    if type(parsed) is list:
        if not parsed:
            raise InvalidEvent("", "the array holds no events")
        events = []
        for index, record in enumerate(parsed):
            _record(record, pseudonymiser, item("", index), events, profile, unmodelled, received)
        return events
    raise InvalidEvent("", f"expected a JSON object or array, got {json_type(parsed)}")


_VERB_BYTES: Final = b'"verb"'
_VERB_TEXT: Final = '"verb"'


def _xapi_fast(
    raw: bytes | bytearray | memoryview | str,
    pseudonymiser: Pseudonymiser,
    profile: CompiledProfile,
    unmodelled: list[UnmodelledEvent] | None,
    received: datetime | None,
) -> list[LearningEvent] | None:
    """Decode what looks like xAPI straight into the typed model; ``None`` when it is not that.

    Statements are the bulk of the traffic, and decoding them without building dicts first is
    the cheapest way in. Anything that does not decode as statements takes the general path,
    which also explains what is wrong with it.
    """
    try:
        statements, is_array = xapi.decode_statements(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if not is_array:
        event = xapi.normalise_statement(statements[0], pseudonymiser, "", profile, received)
        if type(event) is LearningEvent:
            return [event]
        if unmodelled is not None:
            unmodelled.append(event)  # type: ignore[arg-type]  # the other member of the union
        return []
    if not statements:
        raise InvalidEvent("", "the array holds no events")
    events: list[LearningEvent] = []
    for index, statement in enumerate(statements):
        _sort(
            xapi.normalise_statement(statement, pseudonymiser, item("", index), profile, received),
            events,
            unmodelled,
        )
    return events

"""Value formats shared by the inbound validators: IRIs, UUIDs, timestamps, durations, paths.

Everything here is precompiled once and works on plain Python values, because the normalisers
call it for every record on the hot path.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Final

from schemas.exceptions import InvalidEvent

# RFC 3987 scheme, then anything but whitespace, controls and the characters IRIs exclude.
IRI_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>\"{}|\\^`\x7f]+")
UUID_RE: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
MBOX_RE: Final = re.compile(r"mailto:[^\s@]+@[^\s@]+")
SHA1_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{40}")
SHA2_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{56}|[0-9a-fA-F]{64}|[0-9a-fA-F]{96}|[0-9a-fA-F]{128}")
MEDIA_TYPE_RE: Final = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*(?:\s*;.*)?",
    re.DOTALL,
)

# RFC 5646 language tags: langtag, private use, and the irregular grandfathered tags (the regular
# ones already match the langtag rule). Token lengths are what the xAPI conformance suite checks.
_LANGTAG = (
    r"(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})"
    r"(?:-[A-Za-z]{4})?"
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?"
)
_IRREGULAR = (
    "en-GB-oed|i-ami|i-bnn|i-default|i-enochian|i-hak|i-klingon|i-lux|i-mingo|i-navajo|i-pwn|"
    "i-tao|i-tay|i-tsu|sgn-BE-FR|sgn-BE-NL|sgn-CH-DE"
)
LANGUAGE_TAG_RE: Final = re.compile(rf"{_LANGTAG}|[Xx](?:-[A-Za-z0-9]{{1,8}})+|(?i:{_IRREGULAR})")
MAX_LANGUAGE_TAG_LENGTH: Final = 128

_TIMESTAMP_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?([Zz]|[+-]\d{2}(?::?\d{2})?)",
    re.ASCII,
)
_ZONELESS_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?", re.ASCII
)
_UNKNOWN_OFFSETS: Final = frozenset({"-00", "-0000", "-00:00"})

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_DURATION_RE: Final = re.compile(
    rf"P(?!$)(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}D)?"
    rf"(?:T(?=\d)(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?"
    rf"|P{_NUMBER}W",
    re.ASCII,
)
# Calendar units have no fixed length; these are the conventional approximations.
_DURATION_FACTORS: Final = (365 * 86400.0, 30 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 7 * 86400.0)

_IDENTIFIER_RE: Final = re.compile(r"[A-Za-z_@][A-Za-z0-9_@]*")


def child(path: str, key: str) -> str:
    """Return the path of ``key`` under ``path``: ``actor.mbox`` or ``extensions["https://…"]``."""
    if _IDENTIFIER_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    quoted = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{path}["{quoted}"]'


def item(path: str, index: int) -> str:
    """Return the path of element ``index`` of the array at ``path``: ``data[0]``."""
    return f"{path}[{index}]"


def json_type(value: object) -> str:
    """Return the JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def is_iri(value: object) -> bool:
    """Return whether ``value`` is an absolute IRI (a scheme, a colon, no whitespace)."""
    return type(value) is str and IRI_RE.fullmatch(value) is not None


def is_uuid(value: object) -> bool:
    """Return whether ``value`` is a UUID in standard string form (8-4-4-4-12 hex digits).

    Any version and variant is taken: xAPI recommends RFC 4122 variant 2 without requiring it.
    """
    return type(value) is str and UUID_RE.fullmatch(value) is not None


def is_language_tag(value: object) -> bool:
    """Return whether ``value`` is an RFC 5646 language tag."""
    return (
        type(value) is str
        and len(value) <= MAX_LANGUAGE_TAG_LENGTH
        and LANGUAGE_TAG_RE.fullmatch(value) is not None
    )


KNOWN_IRIS: Final[set[str]] = set()
"""IRIs already found valid; hot loops test membership before calling :func:`is_known_iri`."""
KNOWN_LANGUAGE_TAGS: Final[set[str]] = set()
"""Language tags already found valid."""
_MAX_KNOWN: Final = 1 << 14
_MAX_KNOWN_LENGTH: Final = 512


def _remember(known: set[str], value: str) -> None:
    if len(value) <= _MAX_KNOWN_LENGTH:
        if len(known) >= _MAX_KNOWN:
            known.clear()
        known.add(value)


def is_known_iri(value: str) -> bool:
    """Like :func:`is_iri` for a string, remembering valid IRIs.

    Verb ids, activity types, activity ids and extension keys repeat across nearly every record,
    so a set lookup replaces most regular-expression matches on the hot path. Never use it for
    learner identifiers (``openid``): the set would keep them in memory.
    """
    if value in KNOWN_IRIS:
        return True
    if IRI_RE.fullmatch(value) is None:
        return False
    _remember(KNOWN_IRIS, value)
    return True


def is_known_language_tag(value: str) -> bool:
    """Like :func:`is_language_tag` for a string, remembering valid tags."""
    if value in KNOWN_LANGUAGE_TAGS:
        return True
    if not is_language_tag(value):
        return False
    _remember(KNOWN_LANGUAGE_TAGS, value)
    return True


def parse_timestamp(value: object, path: str, source: str | None) -> datetime:
    """Parse an ISO 8601 date-time with a time zone and return it in UTC.

    Raises:
        InvalidEvent: when the value is not a string, not ISO 8601 (extended format), carries no
            time zone or the unknown offset ``-00:00``, or names a date that does not exist.
    """
    if type(value) is not str:
        raise InvalidEvent(
            path, f"must be an ISO 8601 timestamp string, got {json_type(value)}", source
        )
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        if _ZONELESS_RE.fullmatch(value):
            raise InvalidEvent(
                path,
                f"timestamp {value[:40]!r} has no time zone; add 'Z' or an offset such as +01:00",
                source,
            )
        raise InvalidEvent(
            path,
            f"{value[:40]!r} is not an ISO 8601 timestamp (expected e.g. 2024-03-01T10:15:00.000Z)",
            source,
        )
    zone = match[1]
    if zone in _UNKNOWN_OFFSETS:
        raise InvalidEvent(path, f"offset {zone!r} means unknown; give the real one", source)
    try:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            # RFC 3339 allows a lowercase 't' and 'z'; fromisoformat does not.
            parsed = datetime.fromisoformat(value.upper())
        # "Z" parses to the UTC singleton; only real offsets need converting.
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidEvent(
            path, f"{value[:40]!r} is not a valid date and time: {err}", source
        ) from err


def duration_seconds(value: str) -> float | None:
    """Return an ISO 8601 duration in seconds, or ``None`` when it is not one.

    Years count 365 days and months 30: durations of learner actions are seconds or minutes, and
    the calendar units only need an order of magnitude.
    """
    # Most durations of learner actions are plain seconds ("PT12.34S"): read those directly.
    seconds = value[2:-1]
    if (
        value.startswith("PT")
        and value.endswith("S")
        and seconds.isascii()
        and seconds.replace(".", "", 1).isdigit()
        and seconds[0] != "."
        and seconds[-1] != "."
    ):
        return float(seconds)
    match = _DURATION_RE.fullmatch(value)
    if match is None:
        return None
    total = 0.0
    for group, factor in zip(match.groups(), _DURATION_FACTORS, strict=True):
        if group is not None:
            total += float(group.replace(",", ".")) * factor
    return total


def response_hash(response: str) -> str:
    """Return the SHA-256 hex digest of a learner's response; the text itself is never kept."""
    return hashlib.sha256(response.encode("utf-8", "surrogatepass")).hexdigest()

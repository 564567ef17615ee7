"""Test data for the contracts: the spec documents on disk, and hypothesis strategies.

The strategies follow the xAPI 1.0.3 rules property by property, so every statement they draw is
valid and uses only what tutorstream understands; tests mutate them to make invalid ones.
"""

from __future__ import annotations

import json
import string
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from schemas.events import EventType
from schemas.vocabulary import (
    EXT_ATTEMPT,
    EXT_DIFFICULTY,
    EXT_HINT_COUNT,
    EXT_HINT_LEVEL,
    EXT_RESOURCE_RELATION,
    EXT_SKILLS,
    TUTORSTREAM_XAPI,
    VERB_COMPLETED,
    VERB_FAILED,
    VERB_PASSED,
    VIDEO_ACTIVITY_TYPE,
    XAPI_VERB_EVENT_TYPES,
)

FIXTURES = Path(__file__).parent / "fixtures"
KEY = b"unit-test-pseudonym-key-0123456789abcdef"
CLASS_TYPE = TUTORSTREAM_XAPI + "activities/class"


def load_fixture(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text("utf-8"))


def fixture_names(folder: str) -> list[str]:
    return sorted(path.name for path in (FIXTURES / folder).glob("*.json"))


hosts = st.sampled_from(["lms.example.edu", "school.example.org", "tutor.example.net"])
segments = st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=10)
iris = st.builds(
    lambda host, parts: f"https://{host}/" + "/".join(parts),
    hosts,
    st.lists(segments, min_size=1, max_size=3),
)
language_tags = st.sampled_from(
    ["en", "en-US", "en-GB", "de-DE", "zh-Hant", "sr-Latn-RS", "es-419", "cmn", "fr", "tlh"]
)
language_maps = st.dictionaries(language_tags, st.text(max_size=30), min_size=1, max_size=3)
uuids = st.uuids().map(str)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=zones
)


@st.composite
def agents(draw: st.DrawFn) -> dict[str, Any]:
    identifier = draw(
        st.one_of(
            st.emails().map(lambda email: {"mbox": f"mailto:{email}"}),
            st.text("0123456789abcdef", min_size=40, max_size=40).map(
                lambda digest: {"mbox_sha1sum": digest}
            ),
            segments.map(lambda name: {"openid": f"https://openid.example.net/{name}"}),
            st.builds(
                lambda home, name: {"account": {"homePage": home, "name": name}},
                iris,
                st.text(min_size=1, max_size=20),
            ),
        )
    )
    agent = dict(identifier)
    if draw(st.booleans()):
        agent["objectType"] = "Agent"
    if draw(st.booleans()):
        agent["name"] = draw(st.text(max_size=30))
    return agent


@st.composite
def definitions(draw: st.DrawFn, *, video: bool) -> dict[str, Any]:
    definition: dict[str, Any] = {}
    if draw(st.booleans()):
        definition["name"] = draw(language_maps)
    if draw(st.booleans()):
        definition["description"] = draw(language_maps)
    if video:
        definition["type"] = VIDEO_ACTIVITY_TYPE
    elif draw(st.booleans()):
        definition["type"] = "http://adlnet.gov/expapi/activities/cmi.interaction"
        definition["interactionType"] = "choice"
        ids = draw(st.lists(segments, min_size=1, max_size=5, unique=True))
        definition["choices"] = [{"id": choice, "description": {"en": choice}} for choice in ids]
        definition["correctResponsesPattern"] = [ids[0]]
    extensions: dict[str, Any] = {}
    if draw(st.booleans()):
        extensions[EXT_SKILLS] = draw(st.lists(segments, max_size=4))
    if draw(st.booleans()):
        extensions[EXT_DIFFICULTY] = draw(st.floats(-4, 4, allow_nan=False))
    if draw(st.booleans()):
        extensions[EXT_HINT_COUNT] = draw(st.integers(1, 6))
    if draw(st.booleans()):
        extensions["https://example.org/xapi/other"] = draw(
            st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5))
        )
    if extensions:
        definition["extensions"] = extensions
    return definition


@st.composite
def results(draw: st.DrawFn, verb: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if draw(st.booleans()):
        result["success"] = draw(st.booleans())
    if verb in (VERB_PASSED, VERB_FAILED) and "success" in result:
        result["success"] = verb == VERB_PASSED
    if draw(st.booleans()):
        result["completion"] = draw(st.booleans())
    if draw(st.booleans()):
        result["response"] = draw(st.text(max_size=40))
    if draw(st.booleans()):
        seconds = draw(st.floats(0, 5000, allow_nan=False))
        result["duration"] = draw(
            st.sampled_from(
                [
                    f"PT{seconds:.2f}S",
                    f"PT{int(seconds // 60)}M{seconds % 60:.1f}S",
                    f"PT{int(seconds)}S",
                ]
            )
        )
    if draw(st.booleans()):
        result["score"] = {"scaled": draw(st.floats(-1, 1, allow_nan=False))}
    if draw(st.booleans()):
        result["extensions"] = {EXT_HINT_LEVEL: draw(st.integers(0, 5))}
    return result


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if draw(st.booleans()):
        context["registration"] = draw(uuids)
    if draw(st.booleans()):
        grouping = [{"id": draw(iris), "definition": {"type": CLASS_TYPE}}]
        if draw(st.booleans()):
            grouping.insert(0, {"id": draw(iris), "objectType": "Activity"})
        context["contextActivities"] = {
            "grouping": grouping if draw(st.booleans()) else grouping[-1]
        }
    if draw(st.booleans()):
        context["instructor"] = draw(agents())
    if draw(st.booleans()):
        context["language"] = draw(language_tags)
    extensions: dict[str, Any] = {}
    if draw(st.booleans()):
        extensions[EXT_ATTEMPT] = draw(st.integers(1, 20))
    if draw(st.booleans()):
        extensions[EXT_RESOURCE_RELATION] = draw(
            st.sampled_from(["supports", "contradicts", "neutral"])
        )
    if extensions:
        context["extensions"] = extensions
    return context


@st.composite
def statements(draw: st.DrawFn) -> dict[str, Any]:
    """A valid xAPI 1.0.3 statement with a verb tutorstream understands."""
    verb = draw(st.sampled_from(list(XAPI_VERB_EVENT_TYPES)))
    video = verb == VERB_COMPLETED and draw(st.booleans())
    target: dict[str, Any] = {"id": draw(iris)}
    if draw(st.booleans()):
        target["objectType"] = "Activity"
    if video or draw(st.booleans()):
        target["definition"] = draw(definitions(video=video))
    statement: dict[str, Any] = {
        "actor": draw(agents()),
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
        "object": target,
        "timestamp": draw(moments).isoformat(timespec="milliseconds"),
    }
    if draw(st.booleans()):
        statement["id"] = draw(uuids)
    result = draw(results(verb))
    if result:
        statement["result"] = result
    context = draw(contexts())
    if context:
        statement["context"] = context
    if draw(st.booleans()):
        statement["version"] = "1.0.0"
    return statement


def expected_event_type(statement: dict[str, Any]) -> EventType:
    verb = statement["verb"]["id"]
    definition = statement["object"].get("definition", {})
    if verb == VERB_COMPLETED and definition.get("type") == VIDEO_ACTIVITY_TYPE:
        return EventType.MEDIA_COMPLETE
    return XAPI_VERB_EVENT_TYPES[verb]


def new_uuid() -> str:
    return str(uuid.uuid4())


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        for name in ("min_length", "max_length", "ge", "le", "gt", "lt", "pattern"):
            if hasattr(item, name):
                found[name] = getattr(item, name)
        if hasattr(item, "metadata"):  # a nested FieldInfo inside Annotated
            found.update(_bounds(list(item.metadata)))
    return found


def _strategy(annotation: Any, bounds: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A JSON-value strategy for one pydantic field type with its constraints."""
    import enum
    import types
    import typing

    from pydantic import AwareDatetime, BaseModel, JsonValue

    if annotation is JsonValue:
        return st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=5), children, max_size=3)
            ),
            max_leaves=8,
        )
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return payloads_of(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return _strategy(inner, {**bounds, **_bounds(extra)})
    if origin in (types.UnionType, typing.Union):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return st.one_of(st.none(), *(_strategy(arg, bounds) for arg in options))
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        return st.dictionaries(_strategy(key_type, {}), _strategy(value_type, {}), max_size=4)
    if origin is tuple:
        element = typing.get_args(annotation)[0]
        return st.lists(
            _strategy(element, {}),
            min_size=bounds.get("min_length", 0),
            max_size=min(bounds.get("max_length", 5), 5),
        )
    if origin is list:
        (element,) = typing.get_args(annotation)
        return st.lists(
            _strategy(element, {}),
            min_size=bounds.get("min_length", 0),
            max_size=min(bounds.get("max_length", 5), 5),
        )
    if annotation is AwareDatetime:
        return moments.map(lambda moment: moment.isoformat())
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from([member.value for member in annotation])
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers(min_value=bounds.get("ge"), max_value=bounds.get("le", 10**9))
    if annotation is float:
        return st.floats(
            min_value=bounds.get("ge", -1e9),
            max_value=bounds.get("le", 1e9),
            allow_nan=False,
            allow_infinity=False,
        )
    if annotation is str:
        text = st.text(
            min_size=bounds.get("min_length", 0), max_size=min(bounds.get("max_length", 40), 40)
        )
        if "pattern" in bounds:  # the only pattern in the records: a single line
            return text.filter(lambda value: "\n" not in value and "\r" not in value)
        return text
    raise NotImplementedError(f"no strategy for {annotation!r}")


def payloads_of(model: Any) -> st.SearchStrategy[dict[str, Any]]:
    """JSON payloads for a pydantic model, drawn from its fields' types and constraints.

    Required fields are always present; optional ones are present or left out.
    """
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, field in model.model_fields.items():
        strategy = _strategy(field.annotation, _bounds(list(field.metadata)))
        (required if field.is_required() else optional)[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)

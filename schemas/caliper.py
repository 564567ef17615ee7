"""IMS Caliper envelopes (1.2, and the 1.1 that Canvas sends): validation and mapping.

An envelope carries ``sensor``, ``sendTime``, ``dataVersion`` and ``data``, an array of events;
Canvas sends one event per envelope and reports quiz submissions as ``AssessmentEvent``
``Submitted`` whose object is the ``Attempt``. A bare event (no envelope) is accepted too.

Every event is checked for the properties the Caliper event model requires (``@context``, a
``urn:uuid`` id, a known ``type``, ``actor``, ``action``, ``object``, a zoned ``eventTime``) and for
the entity types of ``edApp``, ``group``, ``membership``, ``session`` and ``federatedSession``.
Events of the types tutorstream reads are then checked against their profile (the actions the
type allows and the entity types of ``object``, ``generated``, ``target`` and ``referrer``) and
mapped to :class:`LearningEvent`:

=====================  ===============================  ======================================
event type             action                           event type here
=====================  ===============================  ======================================
AssessmentItemEvent    Started / Completed / Skipped    problem_start / answer_submit /
                                                        problem_complete
AssessmentEvent        Started / Submitted              problem_start / problem_complete
MediaEvent             Started, Resumed, Restarted /    media_play / media_pause / media_seek /
                       Paused / JumpedTo, ForwardedTo   media_complete
                       / Ended
NavigationEvent        NavigatedTo                      resource_view
ViewEvent              Viewed                           resource_view, or feedback_view when
                                                        ``extensions`` names ``EXT_FEEDBACK_FOR``
ToolUseEvent           Used                             resource_view, or hint_request when
                                                        ``extensions`` has ``EXT_HINT_LEVEL``
=====================  ===============================  ======================================

The statement profile (:mod:`schemas.profiles`) gives each event type and action its event type
(the table above is the built-in profile's; its rules may also look at the object's id, as the
built-in one does for a Canvas quiz submission's results page, a feedback view), and its
``caliper`` sources fill the fields tutorstream's own places leave empty (the built-in one reads
an object's ``learningObjectives`` as its skills; a producer's may read its correctness).

A valid event the profile does not model (the other actions of these types, such as a
MediaEvent's ChangedVolume; Canvas's SessionEvent and GradeEvent, checked against the
specification like the others; an actor that is not a Person, an anonymous actor) becomes an
:class:`~schemas.events.UnmodelledEvent`: stored and counted, never a dead letter. Other event
types are still refused: tutorstream does not check their actions and entity types, so it cannot
tell a valid one from an invalid one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NoReturn

from schemas.events import EventType, LearningEvent, SourceFormat, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.formats import (
    UUID_RE,
    child,
    duration_seconds,
    is_iri,
    item,
    json_type,
    parse_timestamp,
    response_hash,
)
from schemas.mapping import (
    MAX_CLASS_ID_LENGTH,
    MAX_EVENT_ID_LENGTH,
    MAX_ITEM_ID_LENGTH,
    MAX_SESSION_ID_LENGTH,
    bounded,
    make_event,
    optional_bool,
    optional_int,
    optional_number,
    resource_relation,
    skill_ids,
)
from schemas.profiles.compiled import CompiledProfile, builtin
from schemas.pseudonym import Pseudonymiser
from schemas.vocabulary import (
    EXT_ATTEMPT,
    EXT_CORRECT,
    EXT_DIFFICULTY,
    EXT_FEEDBACK_FOR,
    EXT_HINT_COUNT,
    EXT_HINT_LEVEL,
    EXT_RESOURCE_RELATION,
    EXT_SKILLS,
)

SOURCE: Final = SourceFormat.CALIPER.value
CALIPER_V1P1: Final = "http://purl.imsglobal.org/ctx/caliper/v1p1"
CALIPER_V1P2: Final = "http://purl.imsglobal.org/ctx/caliper/v1p2"
CONTEXTS: Final = frozenset({CALIPER_V1P1, CALIPER_V1P2})
ANONYMOUS_PREFIX: Final = "http://purl.imsglobal.org/caliper/"
"""Caliper's anonymous entities have ids such as ``http://purl.imsglobal.org/caliper/Person``."""

EVENT_TYPES: Final = frozenset(
    {
        "Event",
        "AnnotationEvent",
        "AssessmentEvent",
        "AssessmentItemEvent",
        "AssignableEvent",
        "FeedbackEvent",
        "ForumEvent",
        "GradeEvent",
        "MediaEvent",
        "MessageEvent",
        "NavigationEvent",
        "QuestionnaireEvent",
        "QuestionnaireItemEvent",
        "ResourceManagementEvent",
        "SearchEvent",
        "SessionEvent",
        "SurveyEvent",
        "SurveyInvitationEvent",
        "ThreadEvent",
        "ToolLaunchEvent",
        "ToolUseEvent",
        "ViewEvent",
    }
)
PROFILES: Final = frozenset(
    {
        "GeneralProfile",
        "AnnotationProfile",
        "AssessmentProfile",
        "AssignableProfile",
        "FeedbackProfile",
        "ForumProfile",
        "GradingProfile",
        "MediaProfile",
        "ReadingProfile",
        "ResourceManagementProfile",
        "SearchProfile",
        "SessionProfile",
        "SurveyProfile",
        "ToolLaunchProfile",
        "ToolUseProfile",
    }
)

_AGENT_TYPES: Final = frozenset(
    {
        "Agent",
        "Person",
        "Organization",
        "Group",
        "CourseOffering",
        "CourseSection",
        "SoftwareApplication",
    }
)
_ORGANIZATION_TYPES: Final = frozenset({"Organization", "Group", "CourseOffering", "CourseSection"})
_MEDIA_TYPES: Final = frozenset({"MediaObject", "AudioObject", "ImageObject", "VideoObject"})
_RESPONSE_TYPES: Final = frozenset(
    {
        "Response",
        "FillinBlankResponse",
        "MultipleChoiceResponse",
        "MultipleResponseResponse",
        "SelectTextResponse",
        "TrueFalseResponse",
        "OpenEndedResponse",
        "RatingScaleResponse",
        "MultiselectResponse",
        "DateTimeResponse",
    }
)
# What a learner can navigate to or view: the DigitalResource family, software, and the generic
# Entity that Canvas uses for many of its pages.
_RESOURCE_TYPES: Final = _MEDIA_TYPES | frozenset(
    {
        "DigitalResource",
        "DigitalResourceCollection",
        "AssignableDigitalResource",
        "Assessment",
        "AssessmentItem",
        "Chapter",
        "Document",
        "Frame",
        "Page",
        "WebPage",
        "MediaLocation",
        "Forum",
        "Thread",
        "Message",
        "Questionnaire",
        "QuestionnaireItem",
        "Survey",
        "LtiLink",
        "Link",
        "EpubChapter",
        "EpubPart",
        "EpubSubChapter",
        "EpubVolume",
        "Reading",
        "SoftwareApplication",
        "Entity",
    }
)


@dataclass(frozen=True, slots=True)
class _Profile:
    """What one event type allows, and how its actions map to the event set."""

    actions: dict[str, EventType]
    unused_actions: frozenset[str]
    objects: frozenset[str]
    generated: frozenset[str] = field(default_factory=frozenset)
    targets: frozenset[str] = field(default_factory=frozenset)
    referrers: frozenset[str] = _RESOURCE_TYPES


_PROFILES: Final[dict[str, _Profile]] = {
    "AssessmentItemEvent": _Profile(
        actions={
            "Started": EventType.PROBLEM_START,
            "Completed": EventType.ANSWER_SUBMIT,
            "Skipped": EventType.PROBLEM_COMPLETE,
        },
        unused_actions=frozenset({"Reviewed"}),
        objects=frozenset({"AssessmentItem"}),
        generated=frozenset({"Attempt"}) | _RESPONSE_TYPES,
        targets=_RESOURCE_TYPES,
    ),
    "AssessmentEvent": _Profile(
        actions={"Started": EventType.PROBLEM_START, "Submitted": EventType.PROBLEM_COMPLETE},
        unused_actions=frozenset({"Paused", "Resumed", "Restarted", "Reset"}),
        # Caliper 1.1 as Canvas sends it: the object of a quiz submission is the Attempt.
        objects=frozenset({"Assessment", "Attempt"}),
        generated=frozenset({"Attempt"}),
        targets=_RESOURCE_TYPES,
    ),
    "MediaEvent": _Profile(
        actions={
            "Started": EventType.MEDIA_PLAY,
            "Resumed": EventType.MEDIA_PLAY,
            "Restarted": EventType.MEDIA_PLAY,
            "Paused": EventType.MEDIA_PAUSE,
            "JumpedTo": EventType.MEDIA_SEEK,
            "ForwardedTo": EventType.MEDIA_SEEK,
            "Ended": EventType.MEDIA_COMPLETE,
        },
        unused_actions=frozenset(
            {
                "ChangedResolution",
                "ChangedSize",
                "ChangedSpeed",
                "ChangedVolume",
                "DisabledClosedCaptioning",
                "EnabledClosedCaptioning",
                "EnteredFullScreen",
                "ExitedFullScreen",
                "Muted",
                "Unmuted",
                "OpenedPopout",
                "ClosedPopout",
            }
        ),
        objects=_MEDIA_TYPES,
        targets=frozenset({"MediaLocation"}),
    ),
    "NavigationEvent": _Profile(
        actions={"NavigatedTo": EventType.RESOURCE_VIEW},
        unused_actions=frozenset(),
        objects=_RESOURCE_TYPES,
        targets=_RESOURCE_TYPES,
    ),
    "ViewEvent": _Profile(
        actions={"Viewed": EventType.RESOURCE_VIEW},
        unused_actions=frozenset(),
        objects=_RESOURCE_TYPES,
        targets=_RESOURCE_TYPES,
    ),
    # Canvas sends these two often; they are checked against the specification (actions,
    # entity types) and stored unmodelled: they say nothing about how a learner learns.
    "SessionEvent": _Profile(
        actions={},
        unused_actions=frozenset({"LoggedIn", "LoggedOut", "TimedOut"}),
        objects=frozenset({"SoftwareApplication", "Session"}),
        targets=_RESOURCE_TYPES,
    ),
    "GradeEvent": _Profile(
        actions={},
        unused_actions=frozenset({"Graded"}),
        objects=frozenset({"Attempt"}),
        generated=frozenset({"Score"}),
    ),
    "ToolUseEvent": _Profile(
        actions={"Used": EventType.RESOURCE_VIEW},
        unused_actions=frozenset(),
        objects=frozenset({"SoftwareApplication"}),
        generated=frozenset({"AggregateMeasureCollection"}),
        targets=frozenset({"SoftwareApplication"}),
    ),
}
_REQUIRED: Final = ("@context", "id", "type", "actor", "action", "object", "eventTime")
_TYPED_ENTITIES: Final = (
    ("edApp", frozenset({"SoftwareApplication"})),
    ("group", _ORGANIZATION_TYPES),
    ("membership", frozenset({"Membership"})),
    ("session", frozenset({"Session"})),
    ("federatedSession", frozenset({"LtiSession"})),
)
_EMPTY: Final[dict[str, Any]] = {}


def _fail(path: str, reason: str) -> NoReturn:
    raise InvalidEvent(path, reason, SOURCE)


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _entity(value: object, path: str, allowed: frozenset[str] | None) -> tuple[str, str | None]:
    """Check an entity (an object with ``id`` and ``type``, or an IRI) and return id and type."""
    if type(value) is str:
        if not is_iri(value):
            _fail(path, f"{value[:80]!r} is neither an entity object nor an IRI referencing one")
        return value, None
    if type(value) is not dict:
        _fail(path, f"must be an entity object or an IRI, got {json_type(value)}")
    entity_id = value.get("id")
    if type(entity_id) is not str:
        _fail(_at(path, "id"), f"must be the entity's IRI, got {json_type(entity_id)}")
    if not is_iri(entity_id):
        _fail(_at(path, "id"), f"{entity_id[:80]!r} is not an IRI")
    entity_type = value.get("type")
    if type(entity_type) is not str:
        _fail(_at(path, "type"), f"must be the entity's type name, got {json_type(entity_type)}")
    if allowed is not None and entity_type not in allowed:
        _fail(
            _at(path, "type"),
            f"is {entity_type[:60]!r}; expected one of {', '.join(sorted(allowed))}",
        )
    return entity_id, entity_type


def _context(value: object, path: str) -> None:
    # A context is a Caliper context IRI, an inline JSON-LD context object, or an array of those
    # (with other vocabularies alongside, as in Caliper's own examples).
    contexts = value if type(value) is list else [value]
    for entry in contexts:
        if type(entry) not in (str, dict):
            _fail(
                path,
                f"must be a context IRI or object, or an array of them, got {json_type(entry)}",
            )
    if not any(type(entry) is dict or entry in CONTEXTS for entry in contexts):
        _fail(path, f"must name a Caliper context: {CALIPER_V1P2} or {CALIPER_V1P1}")


def validate_event(event: object, path: str = "") -> dict[str, Any]:
    """Check the properties every Caliper event must have, and return the event.

    Raises:
        InvalidEvent: naming the first missing or malformed property.
    """
    return _check_event(event, path)[0]


def _check_event(event: object, path: str) -> tuple[dict[str, Any], datetime]:
    if type(event) is not dict:
        _fail(path, f"an event must be a JSON object, got {json_type(event)}")
    for key in _REQUIRED:
        if event.get(key) is None:
            _fail(_at(path, key), "is required" if key not in event else "must not be null")
    _context(event["@context"], _at(path, "@context"))
    event_id = event["id"]
    if type(event_id) is not str or not (
        event_id[:9].lower() == "urn:uuid:" and UUID_RE.fullmatch(event_id, 9) is not None
    ):
        _fail(
            _at(path, "id"),
            "must be a UUID URN such as urn:uuid:c51570e4-f8ed-4c18-bb3a-dfe51b2cc594",
        )
    event_type = event["type"]
    if type(event_type) is not str or event_type not in EVENT_TYPES:
        _fail(_at(path, "type"), f"{str(event_type)[:60]!r} is not a Caliper event type")
    if "profile" in event and event["profile"] not in PROFILES:
        _fail(_at(path, "profile"), f"{str(event['profile'])[:60]!r} is not a Caliper profile")
    _entity(event["actor"], _at(path, "actor"), _AGENT_TYPES)
    if type(event["action"]) is not str:
        _fail(_at(path, "action"), f"must be a string, got {json_type(event['action'])}")
    _entity(event["object"], _at(path, "object"), None)
    event_time = parse_timestamp(event["eventTime"], _at(path, "eventTime"), SOURCE)
    for key, allowed in _TYPED_ENTITIES:
        if key in event:
            _entity(event[key], _at(path, key), allowed)
    for key in ("referrer", "target", "generated"):
        if key in event:
            _entity(event[key], _at(path, key), None)
    if "extensions" in event and type(event["extensions"]) is not dict:
        _fail(_at(path, "extensions"), f"must be an object, got {json_type(event['extensions'])}")
    return event, event_time


def _event_type_of(event: dict[str, Any], path: str, profile: CompiledProfile) -> EventType | None:
    """Return the event type the profile gives the event, ``None`` when it is unmodelled.

    A type tutorstream reads is first checked against its Caliper profile (the actions it
    allows, its object's type): an action outside the type's is invalid, not unmodelled.
    """
    event_type: str = event["type"]
    action: str = event["action"]
    spec = _PROFILES.get(event_type)
    if spec is None and not _in_profile(profile, event_type, action):
        # Without the Caliper specification's rules for this type (its actions and entity
        # types), a valid event cannot be told from an invalid one: it is refused, not stored.
        _fail(
            _at(path, "type"),
            f"{event_type} is valid Caliper but tutorstream does not read it; "
            f"it reads {', '.join(_PROFILES)}",
        )
    if spec is not None:
        if action not in spec.actions and action not in spec.unused_actions:
            reads = ", ".join(sorted(spec.actions.keys() | spec.unused_actions))
            _fail(
                _at(path, "action"),
                f"{action[:60]!r} is not an action of {event_type} (it allows {reads})",
            )
        _, object_type = _entity(event["object"], _at(path, "object"), spec.objects)
        if (
            event_type == "AssessmentEvent"
            and object_type == "Attempt"
            and event.get("@context") != CALIPER_V1P1
        ):
            _fail(
                _at(path, "object.type"),
                "an Attempt as object is Caliper 1.1 only; 1.2 uses the Assessment",
            )
        for key, allowed in (
            ("generated", spec.generated),
            ("target", spec.targets),
            ("referrer", spec.referrers),
        ):
            if key in event:
                _entity(event[key], _at(path, key), allowed)
    when = profile.caliper_when.get((event_type, action))
    if when:
        object_id = _entity_id(event["object"])
        if object_id is not None:
            for pattern, mapped in when:
                if pattern.search(object_id):
                    return mapped
    return profile.caliper.get((event_type, action))


def _in_profile(profile: CompiledProfile, event_type: str, action: str) -> bool:
    """Tell whether any rule of the profile names this event type and action."""
    key = (event_type, action)
    return key in profile.caliper or key in profile.caliper_when


def _entity_id(value: object) -> str | None:
    if type(value) is str:
        return value
    if type(value) is dict:
        entity_id = value.get("id")
        return entity_id if type(entity_id) is str else None
    return None


def _response_text(generated: dict[str, Any]) -> str | None:
    for key in ("value", "selection"):
        value = generated.get(key)
        if type(value) is str:
            return value
    for key in ("values", "selections"):
        values = generated.get(key)
        if type(values) is list and all(type(entry) is str for entry in values):
            # xAPI's multi-item response delimiter, so one answer hashes alike in both formats.
            return "[,]".join(values)
    return None


def to_learning_event(
    event: dict[str, Any],
    pseudonymiser: Pseudonymiser,
    path: str = "",
    profile: CompiledProfile | None = None,
) -> LearningEvent | UnmodelledEvent:
    """Check an event and map it through a profile (the built-in one when ``None``).

    Returns:
        The learning event, or an :class:`UnmodelledEvent` for valid Caliper the model cannot
        use (an event type or action the profile does not model, an actor that is not a
        Person, an anonymous actor).

    Raises:
        InvalidEvent: when the event is malformed.
    """
    return _map(*_check_event(event, path), pseudonymiser, path, profile or builtin())


def _unmodelled(
    event: dict[str, Any],
    event_time: datetime,
    pseudonymiser: Pseudonymiser,
    reason: str,
    profile: CompiledProfile,
) -> UnmodelledEvent:
    actor_id = _entity_id(event["actor"]) or "anonymous"
    group_id = _entity_id(event.get("group"))
    session_id = _entity_id(event.get("session"))
    item_id = _entity_id(event["object"])
    return UnmodelledEvent.model_construct(
        event_id=event["id"].lower()[:MAX_EVENT_ID_LENGTH],
        learner_id=pseudonymiser.caliper_actor(actor_id),
        class_id=group_id[:MAX_CLASS_ID_LENGTH] if group_id else profile.default_class,
        session_id=session_id[:MAX_SESSION_ID_LENGTH] if session_id else None,
        item_id=item_id if item_id and len(item_id) <= MAX_ITEM_ID_LENGTH else None,
        timestamp=event_time,
        verb=f"{event['type']}/{event['action']}"[:500],
        reason=reason,
        source=SourceFormat.CALIPER,
        profile=profile.label,
    )


def _map(
    event: dict[str, Any],
    event_time: datetime,
    pseudonymiser: Pseudonymiser,
    path: str,
    profile: CompiledProfile,
) -> LearningEvent | UnmodelledEvent:
    mapped = _event_type_of(event, path, profile)
    if mapped is None:
        reason = (
            "unmodelled in profile"
            if _in_profile(profile, event["type"], event["action"])
            else "event type and action not in profile"
        )
        return _unmodelled(event, event_time, pseudonymiser, reason, profile)
    event_type: EventType = mapped
    actor = event["actor"]
    actor_id, actor_type = _entity(actor, _at(path, "actor"), _AGENT_TYPES)
    if actor_type not in (None, "Person"):
        # tutorstream follows learners, who are a Person
        return _unmodelled(event, event_time, pseudonymiser, f"actor is a {actor_type}", profile)
    if actor_id.startswith(ANONYMOUS_PREFIX):
        # no stable id to follow a learner by
        return _unmodelled(event, event_time, pseudonymiser, "anonymous actor", profile)

    extensions = event.get("extensions") or _EMPTY
    extensions_path = _at(path, "extensions")
    target = event["object"]
    target_ext = (target.get("extensions") or _EMPTY) if type(target) is dict else _EMPTY
    item_id = _entity_id(target)
    item_path = _at(path, "object.id")
    if type(target) is dict and target.get("type") == "Attempt":
        assignable = _entity_id(target.get("assignable"))
        if assignable is not None:
            item_id, item_path = assignable, _at(path, "object.assignable")
    if event["type"] == "ToolUseEvent" and EXT_HINT_LEVEL in extensions:
        event_type = EventType.HINT_REQUEST
        item_id = _entity_id(event.get("referrer"))
        item_path = _at(path, "referrer")
        if item_id is None:
            _fail(item_path, "a hint request names the item the hint is for in 'referrer'")
    if event["type"] == "ViewEvent" and EXT_FEEDBACK_FOR in extensions:
        event_type = EventType.FEEDBACK_VIEW
        item_path = child(extensions_path, EXT_FEEDBACK_FOR)
        item_id = extensions[EXT_FEEDBACK_FOR]
        if not is_iri(item_id):
            _fail(item_path, "must be the IRI of the item whose feedback was viewed")
    if item_id is None:
        _fail(item_path, "is required: the item, resource or media the learner acted on")

    generated = event.get("generated")
    generated_path = _at(path, "generated")
    attempt_value: object = extensions.get(EXT_ATTEMPT)
    attempt_path = child(extensions_path, EXT_ATTEMPT)
    duration: object = None
    duration_path = ""
    answer: str | None = None
    correct_value: object = extensions.get(EXT_CORRECT)
    correct_path = child(extensions_path, EXT_CORRECT)
    if type(generated) is dict:
        attempt = generated if generated.get("type") == "Attempt" else generated.get("attempt")
        attempt_where = generated_path if attempt is generated else _at(generated_path, "attempt")
        if type(attempt) is dict:
            if attempt_value is None and "count" in attempt:
                attempt_value, attempt_path = attempt["count"], _at(attempt_where, "count")
            if "duration" in attempt:
                duration, duration_path = attempt["duration"], _at(attempt_where, "duration")
        if "duration" in generated:
            duration, duration_path = generated["duration"], _at(generated_path, "duration")
        if generated.get("type") in _RESPONSE_TYPES:
            answer = _response_text(generated)
        generated_ext = generated.get("extensions")
        if correct_value is None and type(generated_ext) is dict and EXT_CORRECT in generated_ext:
            correct_value = generated_ext[EXT_CORRECT]
            correct_path = child(_at(generated_path, "extensions"), EXT_CORRECT)
    duration_s: float | None = None
    if duration is not None:
        duration_s = duration_seconds(duration) if type(duration) is str else None
        if duration_s is None or duration_s == float("inf"):
            _fail(duration_path, "must be an ISO 8601 duration such as PT10M30S")

    def described(key: str) -> tuple[object, str]:
        # What describes the item sits on the object; an LMS may also put it on the event.
        if key in target_ext:
            return target_ext[key], child(_at(path, "object.extensions"), key)
        return extensions.get(key), child(extensions_path, key)

    skills_value, skills_path = described(EXT_SKILLS)
    hint_count_value, hint_count_path = described(EXT_HINT_COUNT)
    difficulty_value, difficulty_path = described(EXT_DIFFICULTY)
    group_id = _entity_id(event.get("group"))
    group_path = _at(path, "group")
    if group_id is None:
        membership = event.get("membership")
        if type(membership) is dict:
            group_id = _entity_id(membership.get("organization"))
            group_path = _at(path, "membership.organization")
    session_id = _entity_id(event.get("session"))

    fields: dict[str, Any] = {
        "event_id": bounded(event["id"].lower(), MAX_EVENT_ID_LENGTH, _at(path, "id"), SOURCE),
        "learner_id": pseudonymiser.caliper_actor(actor_id),
        "class_id": bounded(group_id, MAX_CLASS_ID_LENGTH, group_path, SOURCE)
        if group_id
        else None,
        "session_id": (
            bounded(session_id, MAX_SESSION_ID_LENGTH, _at(path, "session"), SOURCE)
            if session_id
            else None
        ),
        "item_id": bounded(item_id, MAX_ITEM_ID_LENGTH, item_path, SOURCE),
        "skill_ids": skill_ids(skills_value, skills_path, SOURCE),
        "event_type": event_type,
        "timestamp": event_time,
        "correct": optional_bool(correct_value, correct_path, SOURCE),
        "response_hash": response_hash(answer) if answer is not None else None,
        "attempt": optional_int(attempt_value, 1, attempt_path, SOURCE),
        "duration_s": duration_s,
        "hint_level": optional_int(
            extensions.get(EXT_HINT_LEVEL), 0, child(extensions_path, EXT_HINT_LEVEL), SOURCE
        ),
        "hint_count": optional_int(hint_count_value, 1, hint_count_path, SOURCE),
        "item_difficulty": optional_number(difficulty_value, difficulty_path, SOURCE),
        "resource_relation": resource_relation(
            extensions.get(EXT_RESOURCE_RELATION),
            child(extensions_path, EXT_RESOURCE_RELATION),
            SOURCE,
        ),
        "score_scaled": None,
        "source": SourceFormat.CALIPER,
        "profile": profile.label,
    }
    if profile.caliper_fields:
        _read_profile_places(fields, event, path, profile)
    if fields["class_id"] is None:
        fields["class_id"] = profile.default_class
    return make_event(fields)


def _at_steps(event: dict[str, Any], steps: tuple[str, ...]) -> object:
    """Return the value ``steps`` lead to in ``event``; ``None`` where a key is missing.

    An array met on the way is read entry by entry, and the result is then a list; a Caliper
    entity (an object with a string ``id``) stands for its id.
    """
    node: object = event
    for position, key in enumerate(steps):
        # one object after another until an array, the common case and the cheap one
        if type(node) is not dict:
            return None
        node = node.get(key)
        if node is None:
            return None
        if type(node) is list:
            return _fanned(node, steps[position + 1 :])
    return _id_of(node)


def _fanned(entries: list[Any], steps: tuple[str, ...]) -> list[object] | None:
    values: list[object] = entries
    for key in steps:
        found: list[object] = []
        for entry in values:
            if type(entry) is dict and key in entry:
                value = entry[key]
                if type(value) is list:
                    found.extend(value)
                else:
                    found.append(value)
        if not found:
            return None
        values = found
    return [_id_of(value) for value in values]


def _id_of(value: object) -> object:
    if type(value) is dict and type(value.get("id")) is str:
        return value["id"]
    return value


def _first_text(limit: int) -> Callable[[object, str, str | None], str | None]:
    def read(value: object, path: str, source: str | None) -> str | None:
        if type(value) is list:
            value = value[0] if value else None
        if value is None:
            return None
        if type(value) is not str or not value:
            _fail(path, f"must be a non-empty string, got {json_type(value)}")
        return bounded(value, limit, path, source)

    return read


def _skills_or_none(value: object, path: str, source: str | None) -> tuple[str, ...] | None:
    return skill_ids(value, path, source) or None


# profile field -> (LearningEvent field, reader of a value found in the event)
_PROFILE_FIELDS: Final[dict[str, tuple[str, Callable[[object, str, str | None], object]]]] = {
    "skills": ("skill_ids", _skills_or_none),
    "class_": ("class_id", _first_text(MAX_CLASS_ID_LENGTH)),
    "session": ("session_id", _first_text(MAX_SESSION_ID_LENGTH)),
    "attempt": ("attempt", lambda v, p, s: optional_int(v, 1, p, s)),
    "hint_level": ("hint_level", lambda v, p, s: optional_int(v, 0, p, s)),
    "hint_count": ("hint_count", lambda v, p, s: optional_int(v, 1, p, s)),
    "difficulty": ("item_difficulty", optional_number),
    "resource_relation": ("resource_relation", resource_relation),
    "correct": ("correct", optional_bool),
}


def _read_profile_places(
    fields: dict[str, Any], event: dict[str, Any], path: str, profile: CompiledProfile
) -> None:
    """Fill the fields tutorstream's own places left empty from the profile's ``caliper`` sources.

    Sources are tried in order and the first that finds a value wins; a value of the wrong type
    fails the event when its source is strict and is passed over otherwise.
    """
    for name, sources in profile.caliper_fields.items():
        target, read = _PROFILE_FIELDS[name]
        if fields[target] not in (None, ()):
            continue
        for source in sources:
            value = _at_steps(event, source.steps)
            if value is None:
                continue
            where = _at(path, source.path)
            if source.strict:
                found = read(value, where, SOURCE)
            else:
                try:
                    found = read(value, where, SOURCE)
                except InvalidEvent:
                    continue
            if found is not None:
                fields[target] = found
                break


def is_envelope(payload: dict[str, Any]) -> bool:
    """Return whether a JSON object looks like a Caliper envelope rather than a bare event."""
    return "data" in payload and ("sensor" in payload or "dataVersion" in payload)


def validate_envelope(envelope: object, path: str = "") -> list[dict[str, Any]]:
    """Check an envelope and every event in it; return the events.

    Raises:
        InvalidEvent: for a malformed envelope, for an entity where an event belongs, or for the
            first malformed event (its path starts with ``data[index]``).
    """
    return [event for event, _ in _check_envelope(envelope, path)]


def _check_envelope(envelope: object, path: str) -> list[tuple[dict[str, Any], datetime]]:
    if type(envelope) is not dict:
        _fail(path, f"an envelope must be a JSON object, got {json_type(envelope)}")
    sensor = envelope.get("sensor")
    if type(sensor) is not str or not sensor:
        _fail(_at(path, "sensor"), "is required: the id of the sensor that sent the envelope")
    if "sendTime" not in envelope:
        _fail(_at(path, "sendTime"), "is required")
    parse_timestamp(envelope["sendTime"], _at(path, "sendTime"), SOURCE)
    version = envelope.get("dataVersion")
    if version not in CONTEXTS:
        _fail(_at(path, "dataVersion"), f"must be {CALIPER_V1P2} or {CALIPER_V1P1}")
    data = envelope.get("data")
    data_path = _at(path, "data")
    if type(data) is not list:
        _fail(data_path, f"must be an array of events, got {json_type(data)}")
    if not data:
        _fail(data_path, "holds no events")
    events: list[tuple[dict[str, Any], datetime]] = []
    for index, entry in enumerate(data):
        where = item(data_path, index)
        if type(entry) is dict and "action" not in entry and entry.get("type") not in EVENT_TYPES:
            _fail(
                where,
                f"is a Caliper entity ({str(entry.get('type'))[:60]}), not an event; "
                "tutorstream takes events only",
            )
        events.append(_check_event(entry, where))
    return events


def normalise_caliper(
    payload: dict[str, Any],
    pseudonymiser: Pseudonymiser,
    path: str = "",
    profile: CompiledProfile | None = None,
) -> list[LearningEvent | UnmodelledEvent]:
    """Validate an envelope (or a bare event) and map its events through a profile.

    Raises:
        InvalidEvent: when the envelope or any of its events is invalid.
    """
    compiled = profile or builtin()
    if is_envelope(payload):
        data_path = _at(path, "data")
        return [
            _map(event, event_time, pseudonymiser, item(data_path, index), compiled)
            for index, (event, event_time) in enumerate(_check_envelope(payload, path))
        ]
    return [_map(*_check_event(payload, path), pseudonymiser, path, compiled)]

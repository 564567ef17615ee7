"""xAPI 1.0.3 statements: validation by the specification's rules, and mapping to LearningEvent.

A statement is checked in two steps. First it is decoded into the typed model below
(:class:`Statement` and its parts) by msgspec, which enforces the structure: the properties each
object allows and their case, required properties, no ``null`` outside extensions, and the JSON
type of every value. Then :func:`_check` applies the rules a type cannot express: IRIs, UUIDs,
mailto IRIs, SHA-1 sums, RFC 5646 language tags, ISO 8601 timestamps (with a time zone, which the
specification recommends and tutorstream requires) and durations, score ranges, exactly one
Inverse Functional Identifier per Agent and identified Group, Group members, ``objectType``
values, interaction types and the component lists each allows, SubStatement restrictions,
``revision``/``platform`` only with an Activity object, the authority rules, version ``1.0.x``,
attachments, and voiding statements.

:func:`normalise_statement` then maps a valid statement to a :class:`LearningEvent` through a
statement profile (:mod:`schemas.profiles`); a valid statement the model cannot use (a verb the
profile does not model, a Group as actor, an object that is not an Activity) becomes an
:class:`~schemas.events.UnmodelledEvent`, stored and counted, never a dead letter.

Decoding JSON bytes straight into the model (:func:`decode_statements`) costs less than parsing
them into dicts, which is what keeps xAPI ingest fast; already-parsed statements are converted
with the same rules and the same error paths.
"""

from __future__ import annotations

import math
import operator
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple, NoReturn

import msgspec
from msgspec import UNSET, Struct, UnsetType
from msgspec.structs import astuple

from schemas.events import LearningEvent, ResourceRelation, SourceFormat, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.formats import (
    KNOWN_IRIS,
    KNOWN_LANGUAGE_TAGS,
    MBOX_RE,
    MEDIA_TYPE_RE,
    SHA1_HEX_RE,
    SHA2_HEX_RE,
    UUID_RE,
    child,
    duration_seconds,
    is_iri,
    is_known_iri,
    is_known_language_tag,
    json_type,
    parse_timestamp,
    response_hash,
)
from schemas.mapping import (
    MAX_CLASS_ID_LENGTH,
    MAX_ITEM_ID_LENGTH,
    MAX_SESSION_ID_LENGTH,
    bounded,
    make_event,
    optional_int,
    optional_number,
    resource_relation,
    skill_ids,
)
from schemas.profiles.compiled import CompiledProfile, CompiledSource, CompiledVerb, builtin
from schemas.pseudonym import Pseudonymiser
from schemas.vocabulary import VERB_FAILED, VERB_PASSED, VERB_VOIDED

SOURCE: Final = SourceFormat.XAPI.value
STATEMENT_ID_NAMESPACE: Final = uuid.UUID("6f1c3a52-8f0e-4b7e-9a51-2d4c8e7b1f30")
"""Namespace of the UUIDv5 given to statements that arrive without an id."""

LanguageMap = dict[str, str]
Extensions = dict[str, Any]


class _Node(Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Base of the statement model: unknown properties are refused, absent ones stay UNSET."""


class Account(_Node):
    """An account on a system, identifying an Agent or Group."""

    homePage: str  # noqa: N815 - the specification's property name
    name: str


class Agent(_Node):
    """An Agent: a person or system, identified by exactly one IFI."""

    objectType: str | UnsetType = UNSET  # noqa: N815
    name: str | UnsetType = UNSET
    mbox: str | UnsetType = UNSET
    mbox_sha1sum: str | UnsetType = UNSET
    openid: str | UnsetType = UNSET
    account: Account | UnsetType = UNSET


class Actor(Agent):
    """An Agent or a Group (which adds ``member``), as actor, instructor, team or authority."""

    member: list[Actor] | UnsetType = UNSET


class Verb(_Node):
    """What the actor did: an IRI, with display names."""

    id: str
    display: LanguageMap | UnsetType = UNSET


class InteractionComponent(_Node):
    """One choice, scale point, source, target or step of an interaction activity."""

    id: str
    description: LanguageMap | UnsetType = UNSET


class Definition(_Node):
    """An activity definition, including the properties of interaction activities."""

    name: LanguageMap | UnsetType = UNSET
    description: LanguageMap | UnsetType = UNSET
    type: str | UnsetType = UNSET
    moreInfo: str | UnsetType = UNSET  # noqa: N815
    extensions: Extensions | UnsetType = UNSET
    interactionType: str | UnsetType = UNSET  # noqa: N815
    correctResponsesPattern: list[str] | UnsetType = UNSET  # noqa: N815
    choices: list[InteractionComponent] | UnsetType = UNSET
    scale: list[InteractionComponent] | UnsetType = UNSET
    source: list[InteractionComponent] | UnsetType = UNSET
    target: list[InteractionComponent] | UnsetType = UNSET
    steps: list[InteractionComponent] | UnsetType = UNSET


class Activity(_Node):
    """An Activity (in ``contextActivities``)."""

    id: str
    objectType: str | UnsetType = UNSET  # noqa: N815
    definition: Definition | UnsetType = UNSET


class StatementRef(_Node):
    """A reference to another statement (in ``context.statement``)."""

    objectType: str  # noqa: N815
    id: str


class Score(_Node):
    """A result's score."""

    scaled: float | UnsetType = UNSET
    raw: float | UnsetType = UNSET
    min: float | UnsetType = UNSET
    max: float | UnsetType = UNSET


class Result(_Node):
    """A measured outcome of the statement."""

    score: Score | UnsetType = UNSET
    success: bool | UnsetType = UNSET
    completion: bool | UnsetType = UNSET
    response: str | UnsetType = UNSET
    duration: str | UnsetType = UNSET
    extensions: Extensions | UnsetType = UNSET


class ContextActivities(_Node):
    """Activities that give context: each an Activity or an array of them."""

    parent: list[Activity] | Activity | UnsetType = UNSET
    grouping: list[Activity] | Activity | UnsetType = UNSET
    category: list[Activity] | Activity | UnsetType = UNSET
    other: list[Activity] | Activity | UnsetType = UNSET


class Context(_Node):
    """The statement's context."""

    registration: str | UnsetType = UNSET
    instructor: Actor | UnsetType = UNSET
    team: Actor | UnsetType = UNSET
    contextActivities: ContextActivities | UnsetType = UNSET  # noqa: N815
    revision: str | UnsetType = UNSET
    platform: str | UnsetType = UNSET
    language: str | UnsetType = UNSET
    statement: StatementRef | UnsetType = UNSET
    extensions: Extensions | UnsetType = UNSET


class Attachment(_Node):
    """An attachment's metadata."""

    usageType: str  # noqa: N815
    display: LanguageMap
    contentType: str  # noqa: N815
    length: int
    sha2: str
    description: LanguageMap | UnsetType = UNSET
    fileUrl: str | UnsetType = UNSET  # noqa: N815


class StatementObject(_Node):
    """The object of a statement, any of its five kinds; :func:`_check` applies the kind's rules.

    ``stored``, ``version`` and ``authority`` are read only to refuse them in a SubStatement with
    a clear reason.
    """

    objectType: str | UnsetType = UNSET  # noqa: N815
    id: str | UnsetType = UNSET
    definition: Definition | UnsetType = UNSET
    name: str | UnsetType = UNSET
    mbox: str | UnsetType = UNSET
    mbox_sha1sum: str | UnsetType = UNSET
    openid: str | UnsetType = UNSET
    account: Account | UnsetType = UNSET
    member: list[Actor] | UnsetType = UNSET
    actor: Actor | UnsetType = UNSET
    verb: Verb | UnsetType = UNSET
    object: StatementObject | UnsetType = UNSET
    result: Result | UnsetType = UNSET
    context: Context | UnsetType = UNSET
    timestamp: str | UnsetType = UNSET
    attachments: list[Attachment] | UnsetType = UNSET
    stored: Any = UNSET
    version: Any = UNSET
    authority: Any = UNSET


class Statement(_Node):
    """An xAPI 1.0.3 statement."""

    actor: Actor
    verb: Verb
    object: StatementObject
    id: str | UnsetType = UNSET
    result: Result | UnsetType = UNSET
    context: Context | UnsetType = UNSET
    timestamp: str | UnsetType = UNSET
    stored: str | UnsetType = UNSET
    authority: Actor | UnsetType = UNSET
    version: str | UnsetType = UNSET
    attachments: list[Attachment] | UnsetType = UNSET


_STATEMENT_DECODER: Final = msgspec.json.Decoder(Statement)
_STATEMENTS_DECODER: Final = msgspec.json.Decoder(list[Statement])
_JSON_SPACE: Final = (b" ", b"\t", b"\r", b"\n")

_ENCODER: Final = msgspec.json.Encoder(order="sorted")

_IFI_NAMES: Final = ("mbox", "mbox_sha1sum", "openid", "account")
_AGENT_ONLY: Final = frozenset({"objectType", "name", *_IFI_NAMES})
_GROUP_ONLY: Final = _AGENT_ONLY | {"member"}
_ACTIVITY_ONLY: Final = frozenset({"objectType", "id", "definition"})
_STATEMENT_REF_ONLY: Final = frozenset({"objectType", "id"})
_SUBSTATEMENT_ONLY: Final = frozenset(
    {"objectType", "actor", "verb", "object", "result", "context", "timestamp", "attachments"}
)
_INTERACTION_TYPES: Final = frozenset(
    {
        "true-false",
        "choice",
        "fill-in",
        "long-fill-in",
        "matching",
        "performance",
        "sequencing",
        "likert",
        "numeric",
        "other",
    }
)
_COMPONENT_LISTS: Final = ("choices", "scale", "source", "target", "steps")
_COMPONENT_LISTS_BY_TYPE: Final[dict[str, frozenset[str]]] = {
    "choice": frozenset({"choices"}),
    "sequencing": frozenset({"choices"}),
    "likert": frozenset({"scale"}),
    "matching": frozenset({"source", "target"}),
    "performance": frozenset({"steps"}),
}
_NOT_OF_ACTIVITY: Final = operator.itemgetter(
    *(
        index
        for index, name in enumerate(StatementObject.__struct_fields__)
        if name not in _ACTIVITY_ONLY
    )
)
_VERSION_RE: Final = re.compile(r"1\.0(?:\.[0-9]+)?", re.ASCII)
_VERDICT_VERBS: Final = frozenset({VERB_PASSED, VERB_FAILED})
_EMPTY: Final[Mapping[str, Any]] = {}


class _Invalid(Exception):
    """A broken rule found inside a statement; the path is gathered on the way out.

    Raising with the path relative to the object being checked, and letting each enclosing check
    add its own step, keeps path building off the path of valid statements.
    """

    def __init__(self, reason: str, *inner: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.steps = list(reversed(inner))  # innermost first

    def under(self, *steps: str) -> _Invalid:
        self.steps.extend(reversed(steps))
        return self

    def event(self, base: str) -> InvalidEvent:
        path = base
        for step in reversed(self.steps):
            if step.startswith("["):
                path += step
            elif path:
                path = f"{path}.{step}"
            else:
                path = step
        return InvalidEvent(path, self.reason, SOURCE)


def _prefixed(base: str, relative: str) -> str:
    if not base:
        return relative
    if not relative:
        return base
    return base + relative if relative.startswith("[") else f"{base}.{relative}"


def _key_step(key: str) -> str:
    return child("", key)


def _not_iri(value: str, *steps: str) -> _Invalid:
    return _Invalid(
        f"{value[:80]!r} is not an absolute IRI (it needs a scheme such as https:)", *steps
    )


def _iri(value: str, *steps: str) -> None:
    if value not in KNOWN_IRIS and not is_known_iri(value):
        raise _not_iri(value, *steps)


def _uuid(value: str, *steps: str) -> None:
    if UUID_RE.fullmatch(value) is None:
        raise _Invalid(
            f"{value[:80]!r} is not a UUID in standard form (8-4-4-4-12 hex digits)", *steps
        )


def _language_map(value: LanguageMap, *steps: str) -> None:
    for tag in value:
        if tag not in KNOWN_LANGUAGE_TAGS and not is_known_language_tag(tag):
            raise _Invalid(f"{tag[:40]!r} is not an RFC 5646 language tag", *steps, _key_step(tag))


def _extensions(value: Extensions, *steps: str) -> None:
    for key in value:
        if key not in KNOWN_IRIS and not is_known_iri(key):
            raise _Invalid("extension keys must be IRIs", *steps, _key_step(key))


def _present(node: Struct) -> list[str]:
    return [name for name in node.__struct_fields__ if getattr(node, name) is not UNSET]


def _only(node: Struct, allowed: frozenset[str], what: str) -> None:
    for name in _present(node):
        if name not in allowed:
            raise _Invalid(f"is not a property of {what}", name)


def _ifi_count(agent: Agent | StatementObject) -> int:
    count = 0
    if agent.mbox is not UNSET:
        count = 1
        if MBOX_RE.fullmatch(agent.mbox) is None:
            raise _Invalid("must be a mailto IRI such as mailto:learner@example.edu", "mbox")
    if agent.account is not UNSET:
        count += 1
        home = agent.account.homePage
        if home not in KNOWN_IRIS and not is_known_iri(home):
            raise _not_iri(home, "account", "homePage")
    if agent.mbox_sha1sum is not UNSET:
        count += 1
        if SHA1_HEX_RE.fullmatch(agent.mbox_sha1sum) is None:
            raise _Invalid("must be the 40 hex digits of the SHA-1 of a mailto IRI", "mbox_sha1sum")
    if agent.openid is not UNSET:
        count += 1
        # Not the remembering check: an openid names a learner and must not be kept around.
        if not is_iri(agent.openid):
            raise _not_iri(agent.openid, "openid")
    return count


def _agent(agent: Agent | StatementObject, *, object_type_required: bool = False) -> None:
    kind = agent.objectType
    if kind is UNSET:
        if object_type_required:
            raise _Invalid("is required when an Agent is the statement's object", "objectType")
    elif kind != "Agent":
        raise _Invalid("must be 'Agent'", "objectType")
    count = _ifi_count(agent)
    if count != 1:
        raise _Invalid(
            f"an Agent must have exactly one of mbox, mbox_sha1sum, openid, account; found {count}"
        )


def _group(group: Actor | StatementObject) -> None:
    if group.objectType != "Group":
        raise _Invalid("must be 'Group'", "objectType")
    count = _ifi_count(group)
    if count > 1:
        raise _Invalid(f"an identified Group must have exactly one IFI; found {count}")
    members = group.member
    if members is UNSET:
        if count == 0:
            raise _Invalid(
                "a Group without mbox, mbox_sha1sum, openid or account is anonymous and must "
                "list its members in 'member'"
            )
        return
    if count == 0 and not members:
        raise _Invalid("an anonymous Group must list at least one member", "member")
    for index, member in enumerate(members):
        if member.objectType == "Group" or member.member is not UNSET:
            raise _Invalid("a Group's members must be Agents, not Groups", "member", f"[{index}]")
        try:
            _agent(member)
        except _Invalid as bad:
            raise bad.under("member", f"[{index}]") from None


def _actor(actor: Actor) -> None:
    kind = actor.objectType
    if kind is UNSET or kind == "Agent":
        if actor.member is not UNSET:
            raise _Invalid(
                "is not a property of an Agent (a Group needs objectType 'Group')", "member"
            )
        _agent(actor)
    elif kind == "Group":
        _group(actor)
    else:
        raise _Invalid("must be 'Agent' or 'Group' (case-sensitive)", "objectType")


def _components(components: list[InteractionComponent]) -> None:
    seen: set[str] = set()
    for index, component in enumerate(components):
        component_id = component.id
        if not component_id:
            raise _Invalid("must not be empty", f"[{index}]", "id")
        if component_id in seen:
            raise _Invalid(
                f"{component_id[:40]!r} appears twice; ids must be distinct", f"[{index}]", "id"
            )
        seen.add(component_id)
        if component.description is not UNSET:
            _language_map(component.description, f"[{index}]", "description")


def _interaction(definition: Definition, interaction: str) -> None:
    if interaction not in _INTERACTION_TYPES:
        raise _Invalid(
            f"must be one of {', '.join(sorted(_INTERACTION_TYPES))} (case-sensitive)",
            "interactionType",
        )
    if (
        definition.choices is UNSET
        and definition.scale is UNSET
        and definition.source is UNSET
        and definition.target is UNSET
        and definition.steps is UNSET
    ):
        return
    allowed = _COMPONENT_LISTS_BY_TYPE.get(interaction, frozenset())
    for key in _COMPONENT_LISTS:
        components = getattr(definition, key)
        if components is UNSET:
            continue
        if key not in allowed:
            uses = f" (it uses {', '.join(sorted(allowed))})" if allowed else ""
            raise _Invalid(f"is not used by interactionType {interaction!r}{uses}", key)
        try:
            _components(components)
        except _Invalid as bad:
            raise bad.under(key) from None


def _definition(definition: Definition) -> None:
    if definition.name is not UNSET:
        _language_map(definition.name, "name")
    if definition.description is not UNSET:
        _language_map(definition.description, "description")
    kind = definition.type
    if kind is not UNSET and kind not in KNOWN_IRIS and not is_known_iri(kind):
        raise _not_iri(kind, "type")
    if definition.moreInfo is not UNSET:
        _iri(definition.moreInfo, "moreInfo")
    if definition.extensions is not UNSET:
        _extensions(definition.extensions, "extensions")
    interaction = definition.interactionType
    if interaction is not UNSET:
        _interaction(definition, interaction)
    else:
        if definition.correctResponsesPattern is not UNSET:
            raise _Invalid(
                "belongs to interaction activities: add interactionType",
                "correctResponsesPattern",
            )
        for key in _COMPONENT_LISTS:
            if getattr(definition, key) is not UNSET:
                raise _Invalid("belongs to interaction activities: add interactionType", key)


def _activity(activity: Activity | StatementObject) -> None:
    if activity.objectType is not UNSET and activity.objectType != "Activity":
        raise _Invalid("must be 'Activity'", "objectType")
    activity_id = activity.id
    if activity_id is UNSET:
        raise _Invalid("is required (the activity's IRI)", "id")
    if activity_id not in KNOWN_IRIS and not is_known_iri(activity_id):
        raise _not_iri(activity_id, "id")
    if activity.definition is not UNSET:
        try:
            _definition(activity.definition)
        except _Invalid as bad:
            raise bad.under("definition") from None


def _statement_ref(ref: StatementRef | StatementObject) -> None:
    if ref.objectType != "StatementRef":
        raise _Invalid("must be 'StatementRef'", "objectType")
    if ref.id is UNSET:
        raise _Invalid("is required (the UUID of the referenced statement)", "id")
    _uuid(ref.id, "id")


def _object(target: StatementObject, *, in_substatement: bool) -> str:
    kind = "Activity" if target.objectType is UNSET else target.objectType
    if kind == "Activity":
        # One C-level pass over the fields finds any that an Activity does not have.
        foreign = _NOT_OF_ACTIVITY(astuple(target))
        if foreign.count(UNSET) != len(foreign):
            _only(target, _ACTIVITY_ONLY, "an Activity")
        _activity(target)
    elif kind == "Agent":
        _only(target, _AGENT_ONLY, "an Agent")
        _agent(target, object_type_required=True)
    elif kind == "Group":
        _only(target, _GROUP_ONLY, "a Group")
        _group(target)
    elif kind == "StatementRef":
        _only(target, _STATEMENT_REF_ONLY, "a StatementRef")
        _statement_ref(target)
    elif kind == "SubStatement":
        if in_substatement:
            raise _Invalid("a SubStatement cannot contain another SubStatement", "objectType")
        for key in ("id", "stored", "version", "authority"):
            if getattr(target, key) is not UNSET:
                raise _Invalid("is not allowed in a SubStatement", key)
        _only(target, _SUBSTATEMENT_ONLY, "a SubStatement")
        for key in ("actor", "verb", "object"):
            if getattr(target, key) is UNSET:
                raise _Invalid("is required", key)
        _body(target, in_substatement=True)  # type: ignore[arg-type]
    else:
        raise _Invalid(
            "must be one of Activity, Agent, Group, StatementRef, SubStatement (case-sensitive)",
            "objectType",
        )
    return kind


def _score(score: Score) -> None:
    scaled, low, high, raw = score.scaled, score.min, score.max, score.raw
    # Decoded JSON numbers are always finite; converted Python objects may not be.
    if scaled is not UNSET and not -1 <= scaled <= 1:
        raise _Invalid(f"must be between -1 and 1, got {scaled}", "scaled")
    if low is not UNSET and not math.isfinite(low):
        raise _Invalid("must be a finite number", "min")
    if high is not UNSET and not math.isfinite(high):
        raise _Invalid("must be a finite number", "max")
    if raw is not UNSET and not math.isfinite(raw):
        raise _Invalid("must be a finite number", "raw")
    if low is not UNSET and high is not UNSET and not low < high:
        raise _Invalid(f"must be less than max ({low} is not < {high})", "min")
    if raw is not UNSET:
        if low is not UNSET and raw < low:
            raise _Invalid(f"must not be below min ({raw} < {low})", "raw")
        if high is not UNSET and raw > high:
            raise _Invalid(f"must not be above max ({raw} > {high})", "raw")


def _result(result: Result) -> float | None:
    """Check a result; return its duration in seconds when it has one."""
    if result.score is not UNSET:
        try:
            _score(result.score)
        except _Invalid as bad:
            raise bad.under("score") from None
    seconds: float | None = None
    if result.duration is not UNSET:
        seconds = duration_seconds(result.duration)
        if seconds is None:
            raise _Invalid(
                "must be an ISO 8601 duration such as PT1M30.5S "
                "(P[n]Y[n]M[n]DT[n]H[n]M[n]S or P[n]W)",
                "duration",
            )
    if result.extensions is not UNSET:
        _extensions(result.extensions, "extensions")
    return seconds


def _context_activity_list(entry: list[Activity] | Activity, key: str) -> None:
    if isinstance(entry, list):
        for index, activity in enumerate(entry):
            try:
                _activity(activity)
            except _Invalid as bad:
                raise bad.under(key, f"[{index}]") from None
    else:
        try:
            _activity(entry)
        except _Invalid as bad:
            raise bad.under(key) from None


def _context_activities(activities: ContextActivities) -> None:
    if activities.grouping is not UNSET:
        _context_activity_list(activities.grouping, "grouping")
    if activities.parent is not UNSET:
        _context_activity_list(activities.parent, "parent")
    if activities.category is not UNSET:
        _context_activity_list(activities.category, "category")
    if activities.other is not UNSET:
        _context_activity_list(activities.other, "other")


def _context(context: Context, object_type: str) -> None:
    if context.registration is not UNSET and UUID_RE.fullmatch(context.registration) is None:
        _uuid(context.registration, "registration")
    if context.contextActivities is not UNSET:
        try:
            _context_activities(context.contextActivities)
        except _Invalid as bad:
            raise bad.under("contextActivities") from None
    if context.instructor is not UNSET:
        try:
            _actor(context.instructor)
        except _Invalid as bad:
            raise bad.under("instructor") from None
    if context.team is not UNSET:
        if context.team.objectType != "Group":
            raise _Invalid("a team must be a Group (objectType 'Group')", "team", "objectType")
        try:
            _group(context.team)
        except _Invalid as bad:
            raise bad.under("team") from None
    if context.statement is not UNSET:
        try:
            _statement_ref(context.statement)
        except _Invalid as bad:
            raise bad.under("statement") from None
    if object_type != "Activity":
        for key in ("revision", "platform"):
            if getattr(context, key) is not UNSET:
                raise _Invalid("is only allowed when the statement's object is an Activity", key)
    if context.language is not UNSET and not is_known_language_tag(context.language):
        raise _Invalid("must be an RFC 5646 language tag such as en or en-GB", "language")
    if context.extensions is not UNSET:
        _extensions(context.extensions, "extensions")


def _attachments(attachments: list[Attachment]) -> None:
    for index, attachment in enumerate(attachments):
        step = f"[{index}]"
        _iri(attachment.usageType, step, "usageType")
        _language_map(attachment.display, step, "display")
        if attachment.description is not UNSET:
            _language_map(attachment.description, step, "description")
        if MEDIA_TYPE_RE.fullmatch(attachment.contentType) is None:
            raise _Invalid("must be an Internet media type such as text/plain", step, "contentType")
        if attachment.length < 0:
            raise _Invalid("must be a non-negative integer (octets)", step, "length")
        if SHA2_HEX_RE.fullmatch(attachment.sha2) is None:
            raise _Invalid("must be the hex SHA-2 hash of the attachment's data", step, "sha2")
        if attachment.fileUrl is not UNSET:
            _iri(attachment.fileUrl, step, "fileUrl")


def _authority(authority: Actor) -> None:
    if authority.objectType != "Group":
        _actor(authority)
        return
    _group(authority)
    members = authority.member
    if _ifi_count(authority) or members is UNSET or len(members) != 2:
        raise _Invalid(
            "a Group as authority is only for 3-legged OAuth: an anonymous Group of exactly two "
            "Agents"
        )


def _timestamp(value: str, step: str) -> datetime:
    try:
        return parse_timestamp(value, step, SOURCE)
    except InvalidEvent as err:
        raise _Invalid(err.reason, step) from None


class _Checked(NamedTuple):
    """What checking a statement learnt on the way, so mapping does not parse it twice."""

    object_type: str
    timestamp: datetime | None
    duration_s: float | None


def _body(statement: Statement, *, in_substatement: bool) -> _Checked:
    try:
        _actor(statement.actor)
    except _Invalid as bad:
        raise bad.under("actor") from None
    verb = statement.verb
    if verb.id not in KNOWN_IRIS and not is_known_iri(verb.id):
        raise _not_iri(verb.id, "verb", "id")
    if verb.display is not UNSET:
        _language_map(verb.display, "verb", "display")
    try:
        object_type = _object(statement.object, in_substatement=in_substatement)
    except _Invalid as bad:
        raise bad.under("object") from None
    if verb.id == VERB_VOIDED and object_type != "StatementRef":
        raise _Invalid("a voiding statement's object must be a StatementRef", "object")
    duration_s: float | None = None
    if statement.result is not UNSET:
        try:
            duration_s = _result(statement.result)
        except _Invalid as bad:
            raise bad.under("result") from None
    if statement.context is not UNSET:
        try:
            _context(statement.context, object_type)
        except _Invalid as bad:
            raise bad.under("context") from None
    timestamp = None
    if statement.timestamp is not UNSET:
        timestamp = _timestamp(statement.timestamp, "timestamp")
    if statement.attachments is not UNSET:
        try:
            _attachments(statement.attachments)
        except _Invalid as bad:
            raise bad.under("attachments") from None
    return _Checked(object_type, timestamp, duration_s)


def _check(statement: Statement) -> tuple[_Checked, datetime | None]:
    if statement.id is not UNSET and UUID_RE.fullmatch(statement.id) is None:
        _uuid(statement.id, "id")
    body = _body(statement, in_substatement=False)
    stored = None
    if statement.stored is not UNSET:
        stored = _timestamp(statement.stored, "stored")
    if statement.authority is not UNSET:
        try:
            _authority(statement.authority)
        except _Invalid as bad:
            raise bad.under("authority") from None
    if statement.version is not UNSET and _VERSION_RE.fullmatch(statement.version) is None:
        raise _Invalid("must be 1.0 or 1.0.x (this is xAPI 1.0.3)", "version")
    return body, stored


# msgspec reports type errors as "Expected `str`, got `int` - at `$.actor.mbox`".
_MSGSPEC_AT_RE: Final = re.compile(r"(?s)(.*?)(?: - at `\$(.*)`)?")
_MSGSPEC_TYPES: Final = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
    "array | object": "an object or an array of them",
    "object | array": "an object or an array of them",
}
_MSGSPEC_EXPECTED_RE: Final = re.compile(r"Expected `([^`]*)`, got `([^`]*)`")
_MSGSPEC_FIELD_RE: Final = re.compile(r"Object (missing required|contains unknown) field `([^`]*)`")


def _locate(parsed: object, raw_path: str, reason: str) -> str:
    """Turn msgspec's ``$``-path into ours, naming the key msgspec elides as ``[...]``."""
    path = ""
    node = parsed
    for match in re.finditer(r"\.([A-Za-z0-9_@]+)|\[(\d+)\]|(\[\.\.\.\])", raw_path):
        name, index, elided = match.groups()
        if name is not None:
            path = f"{path}.{name}" if path else name
            node = node.get(name) if isinstance(node, dict) else None
        elif index is not None:
            path += f"[{index}]"
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
        elif elided is not None:
            # Only language maps can fail on a value: name the first entry that is not a string.
            bad = None
            if isinstance(node, dict) and reason.startswith("Expected `str`"):
                bad = next((key for key, text in node.items() if type(text) is not str), None)
            path = child(path, bad) if bad is not None else f"{path}[...]"
            node = None
    return path


def _decode_error(err: Exception, parsed: object, base: str) -> InvalidEvent:
    """Translate a msgspec error into an InvalidEvent with our path and a plain reason."""
    if isinstance(err, RecursionError):
        return InvalidEvent(base, "is nested too deeply to read", SOURCE)
    message = str(err)
    match = _MSGSPEC_AT_RE.fullmatch(message)
    assert match is not None  # the pattern matches any text
    reason, raw_path = match.group(1), match.group(2) or ""
    path = _prefixed(base, _locate(parsed, raw_path, reason))
    field = _MSGSPEC_FIELD_RE.fullmatch(reason)
    if field is not None:
        name_path = _prefixed(path, _key_step(field.group(2)))
        if field.group(1) == "missing required":
            return InvalidEvent(name_path, "is required", SOURCE)
        return InvalidEvent(
            name_path,
            "is not a property xAPI defines here (property names are case-sensitive)",
            SOURCE,
        )
    expected = _MSGSPEC_EXPECTED_RE.fullmatch(reason)
    if expected is not None:
        want = _MSGSPEC_TYPES.get(expected.group(1).replace(" | null", ""), expected.group(1))
        got = _MSGSPEC_TYPES.get(expected.group(2), expected.group(2))
        if got == "null":
            return InvalidEvent(
                path, f"must be {want}, not null (null is only allowed in extensions)", SOURCE
            )
        return InvalidEvent(
            path, f"must be {want}, got {got.removeprefix('a ').removeprefix('an ')}", SOURCE
        )
    return InvalidEvent(path, reason, SOURCE)


def decode_statements(raw: bytes | bytearray | memoryview | str) -> tuple[list[Statement], bool]:
    """Decode JSON (one statement or an array of them) straight into the typed model.

    Only the structure is checked here; :func:`normalise_statement` applies the other rules.

    Returns:
        The statements, and whether the payload was an array.

    Raises:
        msgspec.ValidationError, msgspec.DecodeError, RecursionError: whenever the input is not a
            statement or an array of them; callers that need the reason re-read the input with
            :func:`validate_statements`, which explains it with a path.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    head = data[:1]
    if head == b"[" or (head in _JSON_SPACE and bytes(data[:64]).lstrip()[:1] == b"["):
        return _STATEMENTS_DECODER.decode(data), True
    return [_STATEMENT_DECODER.decode(data)], False


def typed_statement(statement: object, path: str = "") -> Statement:
    """Convert a parsed statement into the typed model, checking its structure.

    Raises:
        InvalidEvent: naming the first property of the wrong type, missing or unknown.
    """
    if isinstance(statement, Statement):
        return statement
    if type(statement) is not dict:
        raise InvalidEvent(
            path, f"a statement must be a JSON object, got {json_type(statement)}", SOURCE
        )
    try:
        return msgspec.convert(statement, Statement, strict=True)
    except (msgspec.ValidationError, RecursionError) as err:
        raise _decode_error(err, statement, path) from None


def validate_statement(statement: object, path: str = "") -> Statement:
    """Check one statement (parsed JSON) against the xAPI 1.0.3 rules; return it typed.

    Args:
        statement: the statement as parsed from JSON (or already typed).
        path: where the statement sits in its payload (``[3]`` in an array); prefixes error paths.

    Raises:
        InvalidEvent: naming the first property that breaks a rule (``actor.mbox``,
            ``context.contextActivities.grouping[0].id``), and why.
    """
    typed = typed_statement(statement, path)
    try:
        _check(typed)
    except _Invalid as bad:
        raise bad.event(path) from None
    return typed


def validate_statements(payload: object) -> list[Statement]:
    """Check a single statement or an array of them (parsed JSON); return them typed.

    Raises:
        InvalidEvent: for the first invalid statement, its path starting with ``[index]`` when
            the payload is an array.
    """
    if type(payload) is list:
        if not payload:
            raise InvalidEvent("", "the array holds no statements", SOURCE)
        return [validate_statement(entry, f"[{index}]") for index, entry in enumerate(payload)]
    return [validate_statement(payload)]


def statement_id(statement: Statement) -> str:
    """Return the statement's id in lowercase, or a UUIDv5 derived from its content.

    The content is encoded with sorted keys, so a producer that retries a statement without an
    id gets the same id each time (whatever the order of its properties), and the retry is
    deduplicated downstream.

    Raises:
        InvalidEvent: when the statement cannot be serialised to derive an id.
    """
    if statement.id is not UNSET:
        return statement.id.lower()
    try:
        canonical = _ENCODER.encode(statement)
    except (TypeError, ValueError, OverflowError, RecursionError) as err:
        raise InvalidEvent(
            "", f"cannot derive a statement id from this content: {err}", SOURCE
        ) from None
    return str(uuid.uuid5(STATEMENT_ID_NAMESPACE, canonical.decode("utf-8", "surrogatepass")))


def _fail(path: str, reason: str) -> NoReturn:
    raise InvalidEvent(path, reason, SOURCE)


class _Places:
    """The parts of a statement a profile's sources read, each looked up once."""

    __slots__ = ("activities", "ctx", "definition", "object_id", "registration", "res")

    def __init__(self, statement: Statement) -> None:
        target = statement.object
        definition = target.definition
        self.object_id: str = target.id if target.id is not UNSET else ""
        self.definition: Mapping[str, Any] = (
            definition.extensions
            if definition is not UNSET and definition.extensions is not UNSET
            else _EMPTY
        )
        result = statement.result
        self.res: Mapping[str, Any] = (
            result.extensions if result is not UNSET and result.extensions is not UNSET else _EMPTY
        )
        context = statement.context
        if context is UNSET:
            self.ctx: Mapping[str, Any] = _EMPTY
            self.activities: ContextActivities | None = None
            self.registration: str | None = None
        else:
            self.ctx = context.extensions if context.extensions is not UNSET else _EMPTY
            activities = context.contextActivities
            self.activities = activities if activities is not UNSET else None
            self.registration = (
                context.registration.lower() if context.registration is not UNSET else None
            )

    def activity_ids(self, source: CompiledSource) -> list[str]:
        """Return the ids of the source's context activity list (of its types, if any)."""
        return _activity_ids(self.activities, source)


def _activity_ids(activities: ContextActivities | None, source: CompiledSource) -> list[str]:
    """Return the ids in a context activity list (of the source's types, if any)."""
    if activities is None:
        return []
    entries = getattr(activities, source.key)
    if entries is UNSET:
        return []
    listed = entries if isinstance(entries, list) else [entries]
    types = source.types
    found = []
    for activity in listed:
        if types:
            definition = activity.definition
            if definition is UNSET or definition.type not in types:
                continue
        value = activity.id if source.pattern is None else source.group(activity.id)
        if value is not None:
            found.append(value)
    return found


def _read(
    sources: tuple[CompiledSource, ...], places: _Places, read: Callable[[object, str], Any]
) -> Any:
    """Return the first value a source finds that ``read`` accepts; ``None`` when none does.

    A value of the wrong type fails the statement when its source is strict (tutorstream's own
    extensions), and is passed over otherwise (third-party extensions, whose types vary).
    """
    for source in sources:
        # the places are inlined: this runs for every field of every statement
        kind = source.kind
        value: object
        if kind == "def":
            value = places.definition.get(source.key)
        elif kind == "ctx":
            value = places.ctx.get(source.key)
        elif kind == "res":
            value = places.res.get(source.key)
        elif kind == "acts":
            value = places.activity_ids(source) or None
        elif kind == "obj":
            value = source.group(places.object_id)
        else:
            value = places.registration
        if value is None:
            continue
        if source.strict:
            return read(value, source.path)
        try:
            found = read(value, source.path)
        except InvalidEvent:
            continue
        if found is not None:
            return found
    return None


_FIELD_READS: Final = (
    ("skills", "_skills"),
    ("class_", "_CLASS_TEXT"),
    ("session", "_SESSION_TEXT"),
    ("attempt", "_AT_LEAST_1"),
    ("hint_level", "_AT_LEAST_0"),
    ("hint_count", "_AT_LEAST_1"),
    ("difficulty", "_number"),
    ("resource_relation", "_relation"),
)
# Values already right need no reader call (the common case: one call saved per field).
_ALREADY_RIGHT: Final = {
    "_CLASS_TEXT": f"type(value) is str and value and len(value) <= {MAX_CLASS_ID_LENGTH}",
    "_SESSION_TEXT": f"type(value) is str and value and len(value) <= {MAX_SESSION_ID_LENGTH}",
    "_AT_LEAST_1": "type(value) is int and value >= 1",
    "_AT_LEAST_0": "type(value) is int and value >= 0",
}
_FETCH: Final = {
    "def": "definition.get({S}.key)",
    "res": "res.get({S}.key)",
    "ctx": "ctx.get({S}.key)",
    "acts": "(_activity_ids(activities, {S}) or None)",
    "obj": "{S}.group(target.id)",
    "reg": "registration",
}
# The places of :class:`_Places`, found as locals of the generated reader.
_PRELUDE: Final = """\
def fields(statement):
    target = statement.object
    found = target.definition
    definition = EMPTY if found is UNSET or found.extensions is UNSET else found.extensions
    found = statement.result
    res = EMPTY if found is UNSET or found.extensions is UNSET else found.extensions
    context = statement.context
    if context is UNSET:
        ctx = EMPTY
        activities = registration = None
    else:
        ctx = EMPTY if context.extensions is UNSET else context.extensions
        activities = context.contextActivities
        if activities is UNSET:
            activities = None
        registration = context.registration
        registration = None if registration is UNSET else registration.lower()
"""
_Fields = tuple[Any, Any, Any, Any, Any, Any, Any, Any]


def _fields_reader(profile: CompiledProfile) -> Callable[[Statement], _Fields]:
    """Return one function reading every field of a statement the way :func:`_read` does.

    Built once per profile as straight-line code: one call per statement instead of a loop over
    sources for each of eight fields, which is what keeps profiles off the ingest budget.
    """
    found = profile.readers.get("xapi")
    if found is not None:
        return found  # type: ignore[no-any-return]
    lines = [_PRELUDE]
    scope: dict[str, Any] = {
        "InvalidEvent": InvalidEvent,
        "EMPTY": _EMPTY,
        "UNSET": UNSET,
        "_activity_ids": _activity_ids,
    }
    names = []
    for name, reader in _FIELD_READS:
        scope[reader] = globals()[reader]
        names.append(name)
        lines.append(f"    {name} = None")
        lines.append("    done = False")
        for index, source in enumerate(getattr(profile, name)):
            tag = f"S_{name}_{index}"
            scope[tag] = source
            fetch = _FETCH[source.kind].format(S=tag)
            lines.append("    if not done:")
            lines.append(f"        value = {fetch}")
            lines.append("        if value is not None:")
            fast = _ALREADY_RIGHT.get(reader)
            if fast is not None:
                lines.append(f"            if {fast}:")
                lines.append(f"                {name} = value")
                lines.append("                done = True")
                lines.append("        if value is not None and not done:")
            if source.strict:
                lines.append(f"            {name} = {reader}(value, {tag}.path)")
                lines.append("            done = True")
            else:
                lines.append("            try:")
                lines.append(f"                {name} = {reader}(value, {tag}.path)")
                lines.append("            except InvalidEvent:")
                lines.append(f"                {name} = None")
                lines.append(f"            done = {name} is not None")
    lines.append(f"    return ({', '.join(names)})")
    exec(compile("\n".join(lines), f"<profile {profile.label}>", "exec"), scope)
    reader_fn: Callable[[Statement], _Fields] = scope["fields"]
    profile.readers["xapi"] = reader_fn
    return reader_fn


def _skills(value: object, path: str) -> tuple[str, ...]:
    return skill_ids(value, path, SOURCE)


def _text(limit: int) -> Callable[[object, str], str | None]:
    def read(value: object, path: str) -> str | None:
        if type(value) is list:
            value = value[0] if value else None
        if type(value) is not str or not value:
            return None
        return bounded(value, limit, path, SOURCE)

    return read


_CLASS_TEXT: Final = _text(MAX_CLASS_ID_LENGTH)
_SESSION_TEXT: Final = _text(MAX_SESSION_ID_LENGTH)
_ITEM_TEXT: Final = _text(MAX_ITEM_ID_LENGTH)


def _count(minimum: int) -> Callable[[object, str], int | None]:
    def read(value: object, path: str) -> int | None:
        if type(value) is int and value >= minimum:
            return value
        return optional_int(value, minimum, path, SOURCE)

    return read


_AT_LEAST_0: Final = _count(0)
_AT_LEAST_1: Final = _count(1)


def _number(value: object, path: str) -> float | None:
    return optional_number(value, path, SOURCE)


def _relation(value: object, path: str) -> ResourceRelation | None:
    return resource_relation(value, path, SOURCE)


def _rule(verb_id: str, target: StatementObject, profile: CompiledProfile) -> CompiledVerb | None:
    rules = profile.verbs.get(verb_id)
    if rules is None:
        return None
    for rule in rules:
        if rule.activity_types:
            definition = target.definition
            if definition is UNSET or definition.type not in rule.activity_types:
                continue
        if rule.object_id is not None and (
            target.id is UNSET or rule.object_id.search(target.id) is None
        ):
            continue
        return rule
    return None


def _learner(actor: Actor, pseudonymiser: Pseudonymiser) -> str:
    if actor.mbox is not UNSET:
        return pseudonymiser.mbox(actor.mbox)
    if actor.account is not UNSET:
        return pseudonymiser.account(actor.account.homePage, actor.account.name)
    if actor.mbox_sha1sum is not UNSET or actor.openid is not UNSET:
        return pseudonymiser.xapi_identifier(mbox_sha1sum=actor.mbox_sha1sum, openid=actor.openid)
    # an anonymous Group (only an unmodelled statement gets here): its first member
    members = actor.member if actor.member is not UNSET else []
    return _learner(members[0], pseudonymiser) if members else "anonymous-group"


def _unmodelled(
    statement: Statement,
    timestamp: datetime,
    reason: str,
    pseudonymiser: Pseudonymiser,
    profile: CompiledProfile,
) -> UnmodelledEvent:
    target = statement.object
    places = _Places(statement)
    item_id = target.id if target.id is not UNSET and len(target.id) <= MAX_ITEM_ID_LENGTH else None
    return UnmodelledEvent.model_construct(
        event_id=statement_id(statement),
        learner_id=_learner(statement.actor, pseudonymiser),
        class_id=_read(profile.class_, places, _CLASS_TEXT) or profile.default_class,
        session_id=_read(profile.session, places, _SESSION_TEXT),
        item_id=item_id,
        timestamp=timestamp,
        verb=statement.verb.id[:500],
        reason=reason,
        source=SourceFormat.XAPI,
        profile=profile.label,
    )


def _map(
    statement: Statement,
    checked: _Checked,
    stored: datetime | None,
    pseudonymiser: Pseudonymiser,
    profile: CompiledProfile,
) -> LearningEvent | UnmodelledEvent:
    """Map a checked statement; paths in errors are relative to the statement."""
    timestamp = checked.timestamp or stored
    if timestamp is None:
        _fail(
            "timestamp", "is required: tutorstream orders a learner's events by when they happened"
        )
    verb_id = statement.verb.id
    target = statement.object
    rule = _rule(verb_id, target, profile)
    if rule is None or rule.event_type is None:
        reason = "verb not in profile" if rule is None else "unmodelled in profile"
        return _unmodelled(statement, timestamp, reason, pseudonymiser, profile)
    actor = statement.actor
    if actor.objectType == "Group":
        # tutorstream follows individual learners
        return _unmodelled(statement, timestamp, "group actor", pseudonymiser, profile)
    if checked.object_type != "Activity":
        reason = f"object is a {checked.object_type}"
        return _unmodelled(statement, timestamp, reason, pseudonymiser, profile)
    event_type = rule.event_type
    item_id: str = target.id  # type: ignore[assignment]
    if rule.item:
        item_id = _read(rule.item, _Places(statement), _ITEM_TEXT) or item_id
    if len(item_id) > MAX_ITEM_ID_LENGTH:
        bounded(item_id, MAX_ITEM_ID_LENGTH, "object.id", SOURCE)

    correct: bool | None = None
    response_digest: str | None = None
    score_scaled: float | None = None
    result = statement.result
    if result is not UNSET:
        if result.success is not UNSET:
            correct = result.success
        if result.response is not UNSET:
            response_digest = response_hash(result.response)
        score = result.score
        if score is not UNSET:
            if score.scaled is not UNSET:
                score_scaled = score.scaled
            elif score.raw is not UNSET and score.min is not UNSET and score.max is not UNSET:
                score_scaled = (score.raw - score.min) / (score.max - score.min)
    if verb_id in _VERDICT_VERBS:
        passed = verb_id == VERB_PASSED
        if correct is not None and correct is not passed:
            _fail("result.success", f"is {str(correct).lower()}, which contradicts the verb")
        correct = passed
    duration_s = checked.duration_s
    if duration_s is not None and not math.isfinite(duration_s):
        _fail("result.duration", "is too large")

    reader = profile.readers.get("xapi") or _fields_reader(profile)
    (skills, class_id, session, attempt, hint_level, hint_count, difficulty, relation) = reader(
        statement
    )
    return make_event(
        {
            "event_id": statement_id(statement),
            "learner_id": _learner(actor, pseudonymiser),
            "class_id": class_id or profile.default_class,
            "session_id": session,
            "item_id": item_id,
            "skill_ids": skills if skills is not None else (),
            "event_type": event_type,
            "timestamp": timestamp,
            "correct": correct,
            "response_hash": response_digest,
            "attempt": attempt,
            "duration_s": duration_s,
            "hint_level": hint_level,
            "hint_count": hint_count,
            "item_difficulty": difficulty,
            "resource_relation": relation,
            "score_scaled": score_scaled,
            "source": SourceFormat.XAPI,
            "profile": profile.label,
        }
    )


def normalise_statement(
    statement: object,
    pseudonymiser: Pseudonymiser,
    path: str = "",
    profile: CompiledProfile | None = None,
    received: datetime | None = None,
) -> LearningEvent | UnmodelledEvent:
    """Validate one statement and map it through a statement profile.

    Args:
        statement: the statement, parsed from JSON or already typed by :func:`decode_statements`.
        pseudonymiser: turns the actor's identifier into the learner's pseudonym.
        path: where the statement sits in its payload (``[3]``); prefixes error paths.
        profile: the producer's profile; the built-in one when ``None``.
        received: when the statement reached tutorstream (a Kafka record's timestamp): the
            timestamp of a statement that has neither ``timestamp`` nor ``stored``, as an LRS
            gives a statement without one its stored time.

    Returns:
        The learning event, or an :class:`UnmodelledEvent` for a valid statement the model
        cannot use (a verb the profile does not model, a Group as actor, an object that is not
        an Activity).

    Raises:
        InvalidEvent: when the statement breaks an xAPI rule, has no time at all (no
            ``timestamp``, ``stored`` or ``received``), or has a value of the wrong type where a
            strict source of the profile reads it.
    """
    typed = statement if isinstance(statement, Statement) else typed_statement(statement, path)
    try:
        checked, stored = _check(typed)
    except _Invalid as bad:
        raise bad.event(path) from None
    try:
        return _map(typed, checked, stored or received, pseudonymiser, profile or builtin())
    except InvalidEvent as err:
        if not path:
            raise
        raise InvalidEvent(_prefixed(path, err.path), err.reason, SOURCE) from None

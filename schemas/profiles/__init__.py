"""Statement profiles: how one producer's xAPI (and Caliper) vocabulary maps to LearningEvent.

A profile is a YAML file a data engineer can read and diff. The pydantic models below are its
single source: the loader validates a file against them, and ``schemas/json/StatementProfile.json``
is generated from them. Every error names the file, the line and the field.

Format (``schemas/profiles/builtin.yaml`` is the complete example)::

    profile: my-lms            # id, stored with every event as ``my-lms@3``
    version: 3
    extends: builtin           # optional: this profile's rules first, then the named one's
    default_class: my-lms/unassigned   # class of statements where no class source finds one
    verbs:                     # first matching rule wins
      - ids: [http://id.tincanapi.com/verb/viewed]
        object_id: "/feedback$"            # optional regex (search) over object.id
        activity_types: [https://...]      # optional: object.definition.type is one of them
        event_type: feedback_view          # an EventType, or ``unmodelled`` (stored, counted)
        item: [{from: object_id, pattern: "^(.*)/feedback$"}]  # optional: where the item is
    fields:                    # per field, sources tried in order; the first that finds wins
      hint_level: [{from: result_extension, key: https://my-lms.example/hint}]
      skills:
        - {from: definition_extension, key: https://tutorstream.dev/xapi/extensions/skills}
        - {from: context_activities, list: parent, activity_types: [...]}
        - {from: object_id, pattern: "/item/([^/]+)/[^/]+$"}
      class: [{from: context_activities, list: grouping, activity_types: [...]}]
      session: [{from: registration}, {from: context_extension, key: https://...}]
      correct:                 # Caliper only (xAPI's is result.success)
        - {from: caliper, path: [generated, extensions, com.example.lms, correct]}
    caliper:                   # Caliper event type and actions -> event type
      - {type: ViewEvent, actions: [Viewed], event_type: resource_view}
      - {type: NavigationEvent, actions: [NavigatedTo], object_id: "/results$",
         event_type: feedback_view}  # optional regex over object.id, tried first

Source kinds (``from``): ``definition_extension``, ``result_extension``, ``context_extension``
(with ``key``, an IRI), ``context_activities`` (with ``list``: parent, grouping, category or
other, optional ``activity_types`` and an optional ``pattern`` applied to each id),
``object_id`` (with ``pattern``: a regex whose first group, or group ``value``, is the value)
``registration``, and for Caliper events ``caliper`` (with ``path``, the keys from the event to
the value). A source's ``on_invalid`` says what a value of the wrong type does:
``reject`` (the statement is invalid, the default for tutorstream's own extensions) or
``ignore`` (the field is taken as absent, for third-party extensions whose types vary).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from schemas.events import EventType
from schemas.exceptions import SchemaError
from schemas.formats import is_iri

UNMODELLED: Final = "unmodelled"
"""The event type of a valid statement that carries nothing the model uses."""

BUILTIN_ID: Final = "builtin"

PROFILE_HEADER: Final = "tutorstream-profile"
"""Kafka record header by which a producer names the profile its records are read with."""

_ID_RE: Final = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class ProfileError(SchemaError):
    """Raised when a profile file is unreadable or breaks the format; lists every problem.

    Attributes:
        problems: ``(file, line, field, reason)`` for each problem found.
    """

    def __init__(self, problems: Sequence[tuple[str, int, str, str]]) -> None:
        self.problems = list(problems)
        lines = [
            f"{file}:{line}: {field}: {reason}" if field else f"{file}:{line}: {reason}"
            for file, line, field, reason in self.problems
        ]
        super().__init__("invalid statement profile:\n  " + "\n  ".join(lines))


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_iri(value: str) -> str:
    if not is_iri(value):
        raise ValueError(f"{value[:80]!r} is not an absolute IRI")
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"is not a valid regular expression: {err}") from None
    return value


def _check_pattern(value: str) -> str:
    if re.compile(_check_regex(value)).groups < 1:
        raise ValueError("needs a group, (...) or (?P<value>...), around the value it takes")
    return value


OnInvalid = Literal["reject", "ignore"]


class ExtensionSource(_Rule):
    """A value in an extension of the object's definition, the result or the context."""

    from_: Literal["definition_extension", "result_extension", "context_extension"] = Field(
        alias="from"
    )
    key: str = Field(description="The extension's IRI.")
    on_invalid: OnInvalid = "reject"

    _iri = field_validator("key")(_check_iri)


ActivityList = Literal["parent", "grouping", "category", "other"]


class ContextActivitiesSource(_Rule):
    """The ids of ``context.contextActivities.<list>`` entries (optionally of some types)."""

    from_: Literal["context_activities"] = Field(alias="from")
    list: ActivityList
    activity_types: tuple[str, ...] = Field(
        default=(), description="Only entries whose definition.type is one of these."
    )
    pattern: str | None = Field(
        default=None, description="Regex searched in each id; its group is the value."
    )
    on_invalid: OnInvalid = "ignore"

    @field_validator("activity_types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            _check_iri(entry)
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return None if value is None else _check_pattern(value)


class ObjectIdSource(_Rule):
    """A part of the statement object's id, found by a regex."""

    from_: Literal["object_id"] = Field(alias="from")
    pattern: str = Field(description="Regex searched in object.id; its group is the value.")
    on_invalid: OnInvalid = "ignore"

    _pattern = field_validator("pattern")(_check_pattern)


class RegistrationSource(_Rule):
    """``context.registration``."""

    from_: Literal["registration"] = Field(alias="from")
    on_invalid: OnInvalid = "reject"


class CaliperSource(_Rule):
    """A value in a Caliper event, found by the keys that lead to it from the event.

    Each step is a key of the object reached so far; an array met on the way is read entry by
    entry (``[object, learningObjectives]`` gives every objective), and a Caliper entity (an
    object with an ``id``) stands for its id. Keys are given as a list because Caliper's
    extension namespaces contain dots (``com.instructure.canvas``). Caliper events only: an xAPI
    statement never reads these sources.
    """

    from_: Literal["caliper"] = Field(alias="from")
    path: tuple[str, ...] = Field(
        min_length=1,
        max_length=12,
        description="Keys from the event to the value, e.g. [generated, extensions, x, correct].",
    )
    on_invalid: OnInvalid = "ignore"

    @field_validator("path")
    @classmethod
    def _keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            if not key:
                raise ValueError("a key of the path is empty")
        return value


Source = Annotated[
    ExtensionSource | ContextActivitiesSource | ObjectIdSource | RegistrationSource | CaliperSource,
    Field(discriminator="from_"),
]

_EXTENSIONS_ONLY: Final = (ExtensionSource, CaliperSource)
_ALLOWED: Final[dict[str, tuple[type[_Rule], ...]]] = {
    "hint_level": _EXTENSIONS_ONLY,
    "hint_count": _EXTENSIONS_ONLY,
    "attempt": _EXTENSIONS_ONLY,
    "difficulty": _EXTENSIONS_ONLY,
    "resource_relation": _EXTENSIONS_ONLY,
    # xAPI's correctness is result.success; a Caliper event has no standard place for it
    "correct": (CaliperSource,),
    "skills": (ExtensionSource, ContextActivitiesSource, ObjectIdSource, CaliperSource),
    "class": (ExtensionSource, ContextActivitiesSource, ObjectIdSource, CaliperSource),
    "session": (ExtensionSource, RegistrationSource, CaliperSource),
    "item": (ContextActivitiesSource, ObjectIdSource),
}


def _allowed(field: str, sources: Sequence[_Rule]) -> None:
    allowed = _ALLOWED[field]
    for source in sources:
        if not isinstance(source, allowed):
            kind = getattr(source, "from_", "?")
            names = sorted(
                {
                    name
                    for model in allowed
                    for name in model.model_fields["from_"].annotation.__args__  # type: ignore[union-attr]
                }
            )
            raise ValueError(f"{field} cannot come from {kind}; it can come from {names}")


FIELD_NAMES: Final = (
    "skills",
    "class_",
    "session",
    "attempt",
    "hint_level",
    "hint_count",
    "difficulty",
    "resource_relation",
    "correct",
)
"""The fields of :class:`Fields` that list sources, in the order they are read."""


class Fields(_Rule):
    """Where each field of LearningEvent comes from: sources tried in order."""

    skills: tuple[Source, ...] = ()
    class_: tuple[Source, ...] = Field(default=(), alias="class")
    session: tuple[Source, ...] = ()
    attempt: tuple[Source, ...] = ()
    hint_level: tuple[Source, ...] = ()
    hint_count: tuple[Source, ...] = ()
    difficulty: tuple[Source, ...] = ()
    resource_relation: tuple[Source, ...] = ()
    correct: tuple[Source, ...] = Field(
        default=(), description="Caliper only: whether the answer was right."
    )

    @field_validator(*FIELD_NAMES)
    @classmethod
    def _kinds(cls, value: tuple[_Rule, ...], info: ValidationInfo) -> tuple[_Rule, ...]:
        name = info.field_name or ""
        _allowed("class" if name == "class_" else name, value)
        return value


_MODELLED_AS: Final = (*(t.value for t in EventType), "unmodelled")


def _modelled_as(value: str) -> str:
    if value not in _MODELLED_AS:
        raise ValueError(f"{value!r} is not an event type; use one of {', '.join(_MODELLED_AS)}")
    return value


ModelledAs = Annotated[
    str,
    AfterValidator(_modelled_as),
    Field(json_schema_extra={"enum": list(_MODELLED_AS)}),
]


class VerbRule(_Rule):
    """Verbs that map to one event type, optionally only on some objects."""

    ids: tuple[str, ...] = Field(min_length=1, description="Verb IRIs.")
    event_type: ModelledAs = Field(description="An event type, or 'unmodelled'.")
    activity_types: tuple[str, ...] = Field(
        default=(), description="Only when object.definition.type is one of these."
    )
    object_id: str | None = Field(default=None, description="Only when this regex is in object.id.")
    item: tuple[Source, ...] = Field(
        default=(), description="Where the item is, when it is not the object itself."
    )

    @field_validator("ids", "activity_types")
    @classmethod
    def _iris(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            _check_iri(entry)
        return value

    @field_validator("object_id")
    @classmethod
    def _object_id(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)

    @field_validator("item")
    @classmethod
    def _item(cls, value: tuple[_Rule, ...]) -> tuple[_Rule, ...]:
        _allowed("item", value)
        return value


class CaliperRule(_Rule):
    """Caliper event type and actions that map to one event type (on some objects only)."""

    type: str = Field(pattern=r"^[A-Za-z]+Event$")
    actions: tuple[str, ...] = Field(min_length=1)
    object_id: str | None = Field(
        default=None,
        description="Only when this regex is in the object's id; such rules are tried before "
        "the type's rules without one.",
    )
    event_type: ModelledAs = Field(description="An event type, or 'unmodelled'.")

    @field_validator("object_id")
    @classmethod
    def _object_id(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)


class StatementProfile(_Rule):
    """A statement profile: one producer's vocabulary mapped to LearningEvent."""

    profile: str = Field(pattern=_ID_RE, description="The profile's id.")
    version: int = Field(ge=1)
    description: str = ""
    extends: str | None = Field(
        default=None, pattern=_ID_RE, description="A profile whose rules follow this one's."
    )
    default_class: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Class of statements where no class source finds one.",
    )
    verbs: tuple[VerbRule, ...] = ()
    fields: Fields = Fields()
    caliper: tuple[CaliperRule, ...] = ()


# ---------------------------------------------------------------------- loading


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> list[str]:
    """Record the line of every node under its path; return duplicate-key problems."""
    out.setdefault(path, node.start_mark.line + 1)
    dupes: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                dupes.append(f"{_field((*path, key))}@{key_node.start_mark.line + 1}")
            seen.add(key)
            out[(*path, key)] = key_node.start_mark.line + 1
            dupes.extend(_lines(value_node, (*path, key), out))
    elif isinstance(node, yaml.SequenceNode):
        for index, value_node in enumerate(node.value):
            dupes.extend(_lines(value_node, (*path, index), out))
    return dupes


def _field(loc: Sequence[Any]) -> str:
    text = ""
    for step in loc:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text = f"{text}.{step}" if text else str(step)
    return text


def _line_of(loc: Sequence[Any], lines: Mapping[tuple[Any, ...], int]) -> int:
    steps = tuple(loc)
    while steps:
        if steps in lines:
            return lines[steps]
        steps = steps[:-1]
    return lines.get((), 1)


def parse_profile(text: str, name: str) -> StatementProfile:
    """Parse and validate one profile's YAML text.

    Args:
        text: the file's content.
        name: the file name to report in errors.

    Raises:
        ProfileError: naming the file, line and field of every problem found.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(err, "problem", None) or str(err)
        raise ProfileError([(name, line, "", f"not valid YAML: {reason}")]) from None
    if node is None:
        raise ProfileError([(name, 1, "", "is empty; a profile needs profile, version, verbs")])
    lines: dict[tuple[Any, ...], int] = {}
    dupes = _lines(node, (), lines)
    if dupes:
        twice = []
        for entry in dupes:
            field, _, line = entry.rpartition("@")
            twice.append((name, int(line), field, "is given twice"))
        raise ProfileError(twice)
    data = yaml.SafeLoader("").construct_document(node)
    try:
        return StatementProfile.model_validate(data)
    except ValidationError as err:
        problems: list[tuple[str, int, str, str]] = []
        for error in err.errors(include_url=False):
            loc = _in_file(data, error["loc"])
            problem = (name, _line_of(loc, lines), _field(loc), error["msg"])
            if problem not in problems:
                problems.append(problem)
        raise ProfileError(problems) from None


def _in_file(data: Any, loc: Sequence[Any]) -> list[Any]:
    """Return the steps of a pydantic location that are keys or indexes in the file.

    pydantic adds the member a union chose (``context_activities``) to the location; the
    file has no such key. The last step is kept whatever it is: an unknown key the file has,
    or a missing one it lacks.
    """
    kept: list[Any] = []
    node = data
    for position, step in enumerate(loc):
        in_dict = isinstance(node, dict) and step in node
        if in_dict or (isinstance(node, list) and isinstance(step, int) and step < len(node)):
            node = node[step]
            kept.append(step)
        elif position == len(loc) - 1 and isinstance(node, dict):
            kept.append(step)
    return kept


def load_profile_file(path: str | Path) -> StatementProfile:
    """Read and validate a profile file.

    Raises:
        ProfileError: when the file cannot be read or is not a valid profile.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError([(str(file), 1, "", f"cannot be read: {err}")]) from None
    return parse_profile(text, str(file))


def builtin_profile() -> StatementProfile:
    """Return the built-in profile (``schemas/profiles/builtin.yaml``)."""
    text = resources.files(__package__).joinpath("builtin.yaml").read_text(encoding="utf-8")
    return parse_profile(text, "builtin.yaml")


@dataclass(frozen=True, slots=True)
class ProfileSet:
    """The profiles a component reads with, by id, and the one used when none is named."""

    profiles: Mapping[str, StatementProfile]
    default: str

    def get(self, profile_id: str | None) -> StatementProfile:
        """Return the profile ``profile_id`` names, or the default for ``None`` or ``""``.

        Raises:
            KeyError: for an id no loaded profile has.
        """
        return self.profiles[profile_id or self.default]

    def __iter__(self) -> Iterator[StatementProfile]:
        return iter(self.profiles.values())


def load_profiles(files: Sequence[str | Path] = (), default: str = BUILTIN_ID) -> ProfileSet:
    """Load the built-in profile and ``files``; check ids, ``extends`` and the default.

    Raises:
        ProfileError: for any file with an error (all files are read, all problems reported),
            two files with one id, an ``extends`` or a default that names no profile.
    """
    found: dict[str, StatementProfile] = {BUILTIN_ID: builtin_profile()}
    where: dict[str, str] = {BUILTIN_ID: "builtin.yaml"}
    problems: list[tuple[str, int, str, str]] = []
    for path in files:
        try:
            profile = load_profile_file(path)
        except ProfileError as err:
            problems.extend(err.problems)
            continue
        if profile.profile in found:
            problems.append(
                (
                    str(path),
                    1,
                    "profile",
                    f"{profile.profile!r} is also the id of {where[profile.profile]}",
                )
            )
            continue
        found[profile.profile] = profile
        where[profile.profile] = str(path)
    for profile_id, profile in found.items():
        if profile.extends is not None and profile.extends not in found:
            problems.append(
                (where[profile_id], 1, "extends", f"names {profile.extends!r}, which is not loaded")
            )
    if default not in found:
        problems.append(
            (
                "(settings)",
                1,
                "default profile",
                f"{default!r} names no loaded profile: {sorted(found)}",
            )
        )
    if problems:
        raise ProfileError(problems)
    return ProfileSet(found, default)


class ProfileSettings(BaseModel):
    """Which statement profiles a component loads; nested as ``TUTORSTREAM_PROFILES__*``.

    Attributes:
        files: ``TUTORSTREAM_PROFILES__FILES``, profile files (YAML) to load beside the
            built-in one, separated by commas.
        default: ``TUTORSTREAM_PROFILES__DEFAULT``, the profile of records and keys that name
            none.
    """

    files: str = ""
    default: str = Field(default=BUILTIN_ID, pattern=_ID_RE)

    def paths(self) -> list[Path]:
        """Return the profile files named in :attr:`files`."""
        return [Path(part.strip()) for part in self.files.split(",") if part.strip()]

    def load(self) -> ProfileSet:
        """Load and check the profiles.

        Raises:
            ProfileError: naming the file, line and field of every problem.
        """
        return load_profiles(self.paths(), self.default)

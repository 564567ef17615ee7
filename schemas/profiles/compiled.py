"""Profiles turned into the lookups the normalisers run per statement.

:func:`compile_profile` resolves ``extends`` (this profile's rules first, then its base's),
compiles every regex once, and keys verb rules by verb IRI, so mapping a statement costs one
dict lookup for its verb and one or two for each field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from schemas.events import EventType
from schemas.formats import child
from schemas.profiles import (
    FIELD_NAMES,
    UNMODELLED,
    CaliperSource,
    ContextActivitiesSource,
    ExtensionSource,
    ObjectIdSource,
    ProfileSet,
    RegistrationSource,
    StatementProfile,
    builtin_profile,
)

_EXTENSION_PLACES: Final = {
    "definition_extension": ("def", "object.definition.extensions"),
    "result_extension": ("res", "result.extensions"),
    "context_extension": ("ctx", "context.extensions"),
}


@dataclass(frozen=True, slots=True)
class CompiledSource:
    """One place a field's value is read from.

    Attributes:
        kind: ``def``, ``res``, ``ctx`` (an extension), ``acts`` (context activities),
            ``obj`` (the object id), ``reg`` (the registration) or ``cal`` (a place in a
            Caliper event).
        key: the extension IRI, or the context activity list's name.
        types: activity types an entry must have (empty: any).
        pattern: the compiled regex, whose first group (or ``value``) is the value.
        strict: whether a value of the wrong type makes the statement invalid.
        path: where the value sits in the statement, for error messages.
        steps: for ``cal``, the keys from the event to the value.
    """

    kind: str
    key: str
    types: frozenset[str]
    pattern: re.Pattern[str] | None
    strict: bool
    path: str
    steps: tuple[str, ...] = ()

    def group(self, text: str) -> str | None:
        """Return the value ``pattern`` finds in ``text``, or ``None``."""
        assert self.pattern is not None
        found = self.pattern.search(text)
        if found is None:
            return None
        value = found.group("value") if "value" in self.pattern.groupindex else found.group(1)
        return value or None


@dataclass(frozen=True, slots=True)
class CompiledVerb:
    """One verb rule: its event type (``None``: unmodelled), conditions and item sources."""

    event_type: EventType | None
    activity_types: frozenset[str]
    object_id: re.Pattern[str] | None
    item: tuple[CompiledSource, ...]


@dataclass(frozen=True, slots=True)
class CompiledProfile:
    """A profile ready for the hot path.

    Attributes:
        label: ``id@version``, stored with every event read through it.
        verbs: verb IRI -> rules in order (the first whose conditions hold wins).
        caliper: (Caliper event type, action) -> event type (``None``: unmodelled).
        caliper_when: (Caliper event type, action) -> the rules with an ``object_id``
            condition, in order: (regex over the object's id, event type); tried before
            ``caliper``.
        default_class: class given to events no class source finds one for.
        caliper_fields: per field (``skills``, ``class_``, ..., ``correct``), its ``caliper``
            sources in order; only fields that have some. The xAPI field tuples above never
            hold them, so xAPI statements pay nothing for them.
    """

    label: str
    profile_id: str
    version: int
    verbs: Mapping[str, tuple[CompiledVerb, ...]]
    skills: tuple[CompiledSource, ...]
    class_: tuple[CompiledSource, ...]
    session: tuple[CompiledSource, ...]
    attempt: tuple[CompiledSource, ...]
    hint_level: tuple[CompiledSource, ...]
    hint_count: tuple[CompiledSource, ...]
    difficulty: tuple[CompiledSource, ...]
    resource_relation: tuple[CompiledSource, ...]
    caliper: Mapping[tuple[str, str], EventType | None]
    default_class: str | None
    caliper_fields: Mapping[str, tuple[CompiledSource, ...]] = field(default_factory=dict)
    caliper_when: Mapping[tuple[str, str], tuple[tuple[re.Pattern[str], EventType | None], ...]] = (
        field(default_factory=dict)
    )
    readers: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Per-format field readers built from this profile on first use (see schemas.xapi)."""


def _source(
    source: ExtensionSource
    | ContextActivitiesSource
    | ObjectIdSource
    | RegistrationSource
    | CaliperSource,
) -> CompiledSource:
    strict = source.on_invalid == "reject"
    if isinstance(source, CaliperSource):
        return CompiledSource(
            "cal", "", frozenset(), None, strict, _steps_text(source.path), source.path
        )
    if isinstance(source, ExtensionSource):
        kind, place = _EXTENSION_PLACES[source.from_]
        return CompiledSource(kind, source.key, frozenset(), None, strict, child(place, source.key))
    if isinstance(source, ContextActivitiesSource):
        return CompiledSource(
            "acts",
            source.list,
            frozenset(source.activity_types),
            None if source.pattern is None else re.compile(source.pattern),
            strict,
            f"context.contextActivities.{source.list}",
        )
    if isinstance(source, ObjectIdSource):
        return CompiledSource(
            "obj", "", frozenset(), re.compile(source.pattern), strict, "object.id"
        )
    return CompiledSource("reg", "", frozenset(), None, strict, "context.registration")


def _steps_text(steps: tuple[str, ...]) -> str:
    """Return the path of ``steps`` as error messages write one (``a.b["c.d"]``)."""
    text = ""
    for step in steps:
        text = child(text, step) if text else step
    return text


def _chain(
    profile: StatementProfile, known: Mapping[str, StatementProfile]
) -> list[StatementProfile]:
    chain = [profile]
    seen = {profile.profile}
    while chain[-1].extends is not None:
        base = known[chain[-1].extends]
        if base.profile in seen:
            raise ValueError(f"profile {profile.profile!r} extends itself through {base.profile!r}")
        seen.add(base.profile)
        chain.append(base)
    return chain


def compile_profile(
    profile: StatementProfile, known: Mapping[str, StatementProfile] | None = None
) -> CompiledProfile:
    """Compile ``profile`` (with the profiles its ``extends`` chain names, from ``known``)."""
    chain = _chain(profile, known or {profile.profile: profile})
    verbs: dict[str, list[CompiledVerb]] = {}
    caliper: dict[tuple[str, str], EventType | None] = {}
    when: dict[tuple[str, str], list[tuple[re.Pattern[str], EventType | None]]] = {}
    fields: dict[str, list[CompiledSource]] = {}
    default_class = next((p.default_class for p in chain if p.default_class), None)
    for member in chain:
        for rule in member.verbs:
            compiled = CompiledVerb(
                None if rule.event_type == UNMODELLED else EventType(rule.event_type),
                frozenset(rule.activity_types),
                None if rule.object_id is None else re.compile(rule.object_id),
                tuple(_source(s) for s in rule.item),
            )
            for verb in rule.ids:
                verbs.setdefault(verb, []).append(compiled)
        for caliper_rule in member.caliper:
            mapped = (
                None
                if caliper_rule.event_type == UNMODELLED
                else EventType(caliper_rule.event_type)
            )
            for action in caliper_rule.actions:
                if caliper_rule.object_id is None:
                    caliper.setdefault((caliper_rule.type, action), mapped)
                else:
                    when.setdefault((caliper_rule.type, action), []).append(
                        (re.compile(caliper_rule.object_id), mapped)
                    )
        for name in FIELD_NAMES:
            fields.setdefault(name, []).extend(_source(s) for s in getattr(member.fields, name))
    xapi = {name: tuple(s for s in found if s.kind != "cal") for name, found in fields.items()}
    caliper_fields = {
        name: sources
        for name, found in fields.items()
        if (sources := tuple(s for s in found if s.kind == "cal"))
    }
    return CompiledProfile(
        label=f"{profile.profile}@{profile.version}",
        profile_id=profile.profile,
        version=profile.version,
        verbs={verb: tuple(rules) for verb, rules in verbs.items()},
        skills=xapi["skills"],
        class_=xapi["class_"],
        session=xapi["session"],
        attempt=xapi["attempt"],
        hint_level=xapi["hint_level"],
        hint_count=xapi["hint_count"],
        difficulty=xapi["difficulty"],
        resource_relation=xapi["resource_relation"],
        caliper=caliper,
        default_class=default_class,
        caliper_fields=caliper_fields,
        caliper_when={key: tuple(rules) for key, rules in when.items()},
    )


def compile_profiles(profiles: ProfileSet) -> dict[str, CompiledProfile]:
    """Compile every profile of a set, by id."""
    return {p.profile: compile_profile(p, profiles.profiles) for p in profiles}


_BUILTIN: CompiledProfile | None = None


def builtin() -> CompiledProfile:
    """Return the built-in profile, compiled once."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = compile_profile(builtin_profile())
    return _BUILTIN

"""How a producer's sample maps through a profile: what ``tutorstream profiles check`` reports.

:func:`check_sample` reads JSON Lines (one statement, array of statements, Caliper envelope or
native event per line) and counts, per verb, the event types it became or why it is unmodelled,
and, per field, how many events found it: skills, class (and how many fell back to the
profile's default class), hint levels on hint requests, attempts on answers, sessions. Invalid
lines are listed with their line number, path and reason. :meth:`SampleReport.verdict` says
whether the producer is fit to go live and why not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from schemas.events import EventType, LearningEvent, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from schemas.profiles.compiled import CompiledProfile

MAX_LISTED_INVALID: Final = 50
SKILLS_FLOOR: Final = 0.9
"""Share of answers that must name a skill: mastery and wheel-spinning are per skill."""
CORRECT_FLOOR: Final = 0.9
"""Share of answers that must say whether they were right: every state the model and the
rules tell apart (mastery, wheel-spinning, a wrong response resubmitted) reads it."""

_CHECK_KEY: Final = b"profiles-check: pseudonyms are never shown"


@dataclass(slots=True)
class VerbReport:
    """What one verb (or Caliper type/action) became.

    Attributes:
        statements: how many statements used it.
        event_types: event type -> count, for the modelled ones.
        unmodelled: reason -> count, for the unmodelled ones.
    """

    statements: int = 0
    event_types: Counter[str] = field(default_factory=Counter)
    unmodelled: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class FieldReport:
    """How often a field was found among the events it matters for."""

    found: int = 0
    of: int = 0

    @property
    def share(self) -> float:
        """Return the share found (1.0 when no event needed it)."""
        return self.found / self.of if self.of else 1.0


@dataclass(slots=True)
class SampleReport:
    """The whole check of one sample through one profile."""

    profile: str
    lines: int = 0
    modelled: int = 0
    unmodelled: int = 0
    verbs: dict[str, VerbReport] = field(default_factory=dict)
    fields: dict[str, FieldReport] = field(default_factory=dict)
    default_class: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    skills: Counter[str] = field(default_factory=Counter)
    hint_levels: Counter[int] = field(default_factory=Counter)
    invalid: list[tuple[int, str, str]] = field(default_factory=list)
    invalid_count: int = 0

    def verdict(self) -> tuple[bool, list[str], list[str]]:
        """Return whether the producer is fit to go live, what stops it, and what to watch.

        Not fit: any invalid line; no modelled event; an event with no class at all (set a
        class source or ``default_class``); fewer than 90% of answers naming a skill, or
        saying whether they were right.
        Warnings: unmodelled verbs; events under the default class; hint requests without a
        hint level; answers without an attempt number.
        """
        problems: list[str] = []
        warnings: list[str] = []
        if self.invalid_count:
            problems.append(f"{self.invalid_count} invalid line(s): the DLQ would get them")
        if not self.modelled:
            problems.append("no statement maps to an event the model uses")
        classes = self.fields.get("class", FieldReport())
        if classes.found < classes.of:
            problems.append(
                f"{classes.of - classes.found} event(s) have no class: add a class source or "
                "default_class to the profile"
            )
        skills = self.fields.get("skills", FieldReport())
        if skills.of and skills.share < SKILLS_FLOOR:
            problems.append(
                f"only {skills.share:.0%} of answers name a skill (at least "
                f"{SKILLS_FLOOR:.0%} needed): add a skills source to the profile"
            )
        correct = self.fields.get("correct", FieldReport())
        if correct.of and correct.share < CORRECT_FLOOR:
            problems.append(
                f"only {correct.share:.0%} of answers say whether they were right (at least "
                f"{CORRECT_FLOOR:.0%} needed): xAPI's is result.success; for Caliper, add a "
                "correct source to the profile"
            )
        unmodelled = sorted(v for v, r in self.verbs.items() if r.unmodelled)
        if unmodelled:
            warnings.append(
                f"{self.unmodelled} statement(s) of {len(unmodelled)} verb(s) are stored but "
                f"not modelled: {', '.join(unmodelled[:10])}"
            )
        if self.default_class:
            warnings.append(f"{self.default_class} event(s) fall back to the default class")
        hints = self.fields.get("hint_level", FieldReport())
        if hints.found < hints.of:
            warnings.append(
                f"{hints.of - hints.found} of {hints.of} hint request(s) carry no hint level "
                "(bottom-out hints cannot be told)"
            )
        attempts = self.fields.get("attempt", FieldReport())
        if attempts.found < attempts.of:
            warnings.append(
                f"{attempts.of - attempts.found} of {attempts.of} answer(s) carry no attempt "
                "number (retries are counted from the events instead)"
            )
        return not problems, problems, warnings

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        fit, problems, warnings = self.verdict()
        return {
            "profile": self.profile,
            "fit": fit,
            "problems": problems,
            "warnings": warnings,
            "lines": self.lines,
            "modelled": self.modelled,
            "unmodelled": self.unmodelled,
            "invalid": self.invalid_count,
            "invalid_lines": [
                {"line": line, "path": path, "reason": reason}
                for line, path, reason in self.invalid
            ],
            "verbs": {
                verb: {
                    "statements": r.statements,
                    "event_types": dict(r.event_types),
                    "unmodelled": dict(r.unmodelled),
                }
                for verb, r in sorted(self.verbs.items())
            },
            "fields": {
                name: {"found": f.found, "of": f.of} for name, f in sorted(self.fields.items())
            },
            "default_class": self.default_class,
            "classes": dict(self.classes.most_common(20)),
            "skills": dict(self.skills.most_common(20)),
            "hint_levels": {str(k): v for k, v in sorted(self.hint_levels.items())},
        }


def _field(report: SampleReport, name: str, found: bool) -> None:
    entry = report.fields.setdefault(name, FieldReport())
    entry.of += 1
    entry.found += int(found)


def _verb_of(event: LearningEvent, raw: Any) -> str:
    """Return the verb (or Caliper type/action) a modelled event was read from."""
    if isinstance(raw, dict):
        verb = raw.get("verb")
        if isinstance(verb, dict) and isinstance(verb.get("id"), str):
            return str(verb["id"])
        if "data" in raw and isinstance(raw["data"], list):
            for entry in raw["data"]:
                if isinstance(entry, dict) and str(entry.get("id", "")).lower() == event.event_id:
                    return f"{entry.get('type')}/{entry.get('action')}"
        if "action" in raw:
            return f"{raw.get('type')}/{raw.get('action')}"
        if "event_type" in raw:
            return f"native/{raw['event_type']}"
    if isinstance(raw, list):
        for entry in raw:
            if isinstance(entry, dict) and str(entry.get("id", "")).lower() == event.event_id:
                return _verb_of(event, entry)
    return f"({event.source.value})"


def _modelled(
    report: SampleReport, event: LearningEvent, verb: str, profile: CompiledProfile
) -> None:
    report.modelled += 1
    report.verbs.setdefault(verb, VerbReport()).event_types[event.event_type.value] += 1
    kind = event.event_type
    _field(report, "class", event.class_id is not None)
    if event.class_id is not None:
        if profile.default_class is not None and event.class_id == profile.default_class:
            report.default_class += 1
        report.classes[event.class_id] += 1
    _field(report, "session", event.session_id is not None)
    if kind in (EventType.ANSWER_SUBMIT, EventType.PROBLEM_START):
        if kind is EventType.ANSWER_SUBMIT:
            _field(report, "skills", bool(event.skill_ids))
            _field(report, "attempt", event.attempt is not None)
            _field(report, "correct", event.correct is not None)
            _field(report, "duration", event.duration_s is not None)
        for skill in event.skill_ids:
            report.skills[skill] += 1
    if kind is EventType.HINT_REQUEST:
        _field(report, "hint_level", event.hint_level is not None)
        _field(report, "hint_count", event.hint_count is not None)
        if event.hint_level is not None:
            report.hint_levels[event.hint_level] += 1
    if kind is EventType.RESOURCE_VIEW:
        _field(report, "resource_relation", event.resource_relation is not None)


def check_sample(lines: Iterable[str | bytes], profile: CompiledProfile) -> SampleReport:
    """Read a JSON Lines sample through ``profile`` and report how it maps.

    Blank lines are skipped; every other line counts, and an invalid one is listed (the first
    :data:`MAX_LISTED_INVALID`) with its line number, the failing path and the reason.
    """
    import orjson

    pseudonymiser = pseudonymiser_for(_CHECK_KEY)
    report = SampleReport(profile=profile.label)
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        report.lines += 1
        unmodelled: list[UnmodelledEvent] = []
        try:
            raw = orjson.loads(text)
            events = normalise(raw, pseudonymiser, profile=profile, unmodelled=unmodelled)
        except orjson.JSONDecodeError as err:
            report.invalid_count += 1
            if len(report.invalid) < MAX_LISTED_INVALID:
                report.invalid.append((number, "", f"not valid JSON: {err}"))
            continue
        except InvalidEvent as err:
            report.invalid_count += 1
            if len(report.invalid) < MAX_LISTED_INVALID:
                report.invalid.append((number, err.path, err.reason))
            continue
        for event in events:
            _modelled(report, event, _verb_of(event, raw), profile)
        for stored in unmodelled:
            report.unmodelled += 1
            entry = report.verbs.setdefault(stored.verb, VerbReport())
            entry.unmodelled[stored.reason] += 1
        for event in events:
            report.verbs[_verb_of(event, raw)].statements += 1
        for stored in unmodelled:
            report.verbs[stored.verb].statements += 1
    return report

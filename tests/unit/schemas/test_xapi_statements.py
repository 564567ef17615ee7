from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from contract_data import (
    CLASS_TYPE,
    KEY,
    expected_event_type,
    load_fixture,
    new_uuid,
    statements,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import (
    EventType,
    LearningEvent,
    ResourceRelation,
    SourceFormat,
    UnmodelledEvent,
)
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise
from schemas.pseudonym import IdentifierKind, Pseudonymiser, mbox_sha1sum_of
from schemas.vocabulary import (
    EXT_ATTEMPT,
    EXT_DIFFICULTY,
    EXT_HINT_COUNT,
    EXT_HINT_LEVEL,
    EXT_RESOURCE_RELATION,
    EXT_SKILLS,
    VERB_ANSWERED,
    VERB_COMPLETED,
    VERB_EXPERIENCED,
    VERB_FAILED,
    VERB_INTERACTED,
    VERB_PASSED,
    VERB_PAUSED,
    VERB_PLAYED,
    VERB_REQUESTED_HINT,
    VERB_SEEKED,
    VERB_VIEWED_FEEDBACK,
    VIDEO_ACTIVITY_TYPE,
    VIDEO_SESSION_ID,
)
from schemas.xapi import statement_id, validate_statement, validate_statements

pytestmark = pytest.mark.unit

DELETE = object()
SPEC_STATEMENTS = [
    "appendix_a_simple_statement.json",
    "appendix_a_attempted_duration_in_seconds.json",
    "appendix_a_long_example.json",
    "appendix_d_statement.json",
    "appendix_d_signed_statement.json",
    "section_2_4_4_3_substatement_planned.json",
]


def spec(name: str) -> dict[str, Any]:
    statement: dict[str, Any] = load_fixture(f"xapi/{name}")
    return statement


def base() -> dict[str, Any]:
    """The specification's Appendix D statement: valid, and with a verb tutorstream reads."""
    return spec("appendix_d_statement.json")


def mutated(statement: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return a copy with ``path`` (dots and [index]) set to ``value``, or removed for DELETE."""
    result = copy.deepcopy(statement)
    steps = [int(s) if s.isdigit() else s for s in re.findall(r"[^.\[\]]+", path)]
    node: Any = result
    for step in steps[:-1]:
        if isinstance(step, str) and step not in node:
            node[step] = {}
        node = node[step]
    if value is DELETE:
        del node[steps[-1]]
    else:
        node[steps[-1]] = value
    return result


def unmodelled_of(statement: Any) -> UnmodelledEvent:
    """Normalise a valid statement the model cannot use; return its unmodelled event."""
    unmodelled: list[UnmodelledEvent] = []
    assert normalise(orjson.dumps(statement), KEY, unmodelled=unmodelled) == []
    assert normalise(statement, KEY, unmodelled=unmodelled) == []
    assert unmodelled[0] == unmodelled[1]
    return unmodelled[0]


def error_of(payload: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        normalise(orjson.dumps(payload), KEY)
    return caught.value


# --- the specification's own statements ---------------------------------------------------


@pytest.mark.parametrize("name", SPEC_STATEMENTS)
def test_spec_example_statements_are_valid_xapi(name: str) -> None:
    typed = validate_statement(spec(name))
    assert typed.verb.id == spec(name)["verb"]["id"]


def test_spec_attempted_example_normalises_with_result_fields() -> None:
    statement = spec("appendix_a_attempted_duration_in_seconds.json")
    (event,) = normalise(orjson.dumps(statement), KEY)
    assert event.event_type is EventType.PROBLEM_START
    assert event.event_id == "7ccd3322-e1a5-411a-a67d-6a735c76f119"
    assert event.duration_s == 1234.0
    assert event.score_scaled == 0.95
    assert event.correct is True
    assert event.timestamp == datetime(2015, 12, 18, 12, 17, tzinfo=UTC)
    assert event.item_id == "http://example.adlnet.gov/xapi/example/simpleCBT"
    assert event.source is SourceFormat.XAPI
    assert event.learner_id == Pseudonymiser(KEY).pseudonym(
        IdentifierKind.MBOX_SHA1SUM, mbox_sha1sum_of("mailto:example.learner@adlnet.gov")
    )


@pytest.mark.parametrize("name", ["appendix_d_statement.json", "appendix_d_signed_statement.json"])
def test_spec_experienced_examples_are_resource_views(name: str) -> None:
    (event,) = normalise(orjson.dumps(spec(name)), KEY)
    assert event.event_type is EventType.RESOURCE_VIEW
    assert event.item_id == "https://www.youtube.com/watch?v=xh4kIiH3Sm8"
    assert event.timestamp == datetime(2013, 4, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "verb"),
    [
        ("appendix_a_simple_statement.json", "http://example.com/xapi/verbs#sent-a-statement"),
        ("appendix_a_long_example.json", "http://adlnet.gov/expapi/verbs/attended"),
        ("section_2_4_4_3_substatement_planned.json", "http://example.com/planned"),
    ],
)
def test_valid_statements_with_verbs_tutorstream_does_not_read_are_stored_unmodelled(
    name: str, verb: str
) -> None:
    statement = spec(name)
    # the specification's example has no timestamp; the LRS sets one when it stores it
    statement.setdefault("timestamp", "2013-05-18T05:32:34.804Z")
    stored = unmodelled_of(statement)
    assert (stored.verb, stored.reason, stored.profile) == (
        verb,
        "verb not in profile",
        "builtin@3",
    )
    assert stored.source is SourceFormat.XAPI
    assert stored.event_id == statement.get("id", stored.event_id).lower()


@pytest.mark.parametrize("kind", ["agent", "group", "substatement"])
def test_spec_objects_that_are_not_activities_are_stored_unmodelled(kind: str) -> None:
    statement = mutated(base(), "object", load_fixture("xapi/appendix_b_objects.json")[kind])
    validate_statement(statement)
    stored = unmodelled_of(statement)
    assert stored.reason.startswith("object is a ")


def test_spec_activity_object_example_is_read_as_the_item() -> None:
    activity = load_fixture("xapi/appendix_b_objects.json")["activity"]
    (event,) = normalise(orjson.dumps(mutated(base(), "object", activity)), KEY)
    assert event.item_id == "http://www.example.co.uk/exampleactivity"


@pytest.mark.parametrize(
    "interaction",
    sorted(load_fixture("xapi/appendix_c_interaction_definitions.json")),
)
def test_spec_interaction_definitions_are_answerable_items(interaction: str) -> None:
    definition = load_fixture("xapi/appendix_c_interaction_definitions.json")[interaction]
    statement = mutated(base(), "object.definition", definition)
    statement = mutated(statement, "verb.id", VERB_ANSWERED)
    statement = mutated(statement, "result", {"success": True, "response": "golf[,]tetris"})
    (event,) = normalise(orjson.dumps(statement), KEY)
    assert event.event_type is EventType.ANSWER_SUBMIT
    assert event.response_hash == hashlib.sha256(b"golf[,]tetris").hexdigest()


# --- rules of the specification, one broken at a time -------------------------------------

CHOICE = load_fixture("xapi/appendix_c_interaction_definitions.json")["choice"]
GROUP = load_fixture("xapi/appendix_b_objects.json")["group"]
AGENT = {"objectType": "Agent", "mbox": "mailto:tutor@example.edu"}

BROKEN_RULES: list[tuple[str, Any, str, str]] = [
    # (path changed, new value, error path, words in the reason)
    ("actor", DELETE, "actor", "required"),
    ("verb", DELETE, "verb", "required"),
    ("object", DELETE, "object", "required"),
    ("actor", None, "actor", "not null"),
    ("Actor", AGENT, "Actor", "not a property"),
    ("id", "AA97B177-9383-4934-8543-0F91A7A028368", "id", "UUID"),
    ("id", "MA97B177-9383-4934-8543-0F91A7A02836", "id", "UUID"),
    ("id", 12345, "id", "must be a string"),
    ("actor.mbox", "mailto:should.fail.com", "actor.mbox", "mailto"),
    ("actor.mbox", "http://should.fail.com", "actor.mbox", "mailto"),
    ("actor.mbox_sha1sum", "ebd31e95054c018b10727ccffd2ef2ec3a016ee9", "actor", "exactly one"),
    ("actor.mbox", DELETE, "actor", "exactly one"),
    ("actor.objectType", "agent", "actor.objectType", "'Agent' or 'Group'"),
    ("actor.objectType", 123, "actor.objectType", "must be a string"),
    ("actor.name", 123, "actor.name", "must be a string"),
    ("actor", {"mbox_sha1sum": "abc"}, "actor.mbox_sha1sum", "40 hex"),
    ("actor", {"openid": "ab=c://should.fail.com"}, "actor.openid", "IRI"),
    ("actor", {"account": {"name": "x"}}, "actor.account.homePage", "required"),
    ("actor", {"account": {"homePage": "http://x.example"}}, "actor.account.name", "required"),
    (
        "actor",
        {"account": {"homePage": "ab=c://should.fail.com", "name": "x"}},
        "actor.account.homePage",
        "IRI",
    ),
    (
        "actor",
        {"account": {"homePage": "http://x.example", "name": 7}},
        "actor.account.name",
        "string",
    ),
    ("actor", {"objectType": "Group", "name": "team"}, "actor", "anonymous"),
    ("actor", {"objectType": "Group", "member": []}, "actor.member", "at least one"),
    ("actor", {"objectType": "Group", "member": {"mbox": "mailto:a@b.c"}}, "actor.member", "array"),
    ("actor", {"objectType": "Group", "member": [GROUP]}, "actor.member[0]", "not Groups"),
    ("actor", {**GROUP, "mbox": "mailto:g@example.com"}, "actor", "exactly one IFI"),
    ("actor", {"mbox": "mailto:a@b.c", "member": [AGENT]}, "actor.member", "Group"),
    ("verb.id", "ab=c://should.fail.com", "verb.id", "IRI"),
    ("verb.id", DELETE, "verb.id", "required"),
    ("verb.display", "a12345 attended", "verb.display", "must be an object"),
    ("verb.display", {"a12345": "attended"}, "verb.display.a12345", "RFC 5646"),
    ("verb.display", {"en-US": 3}, 'verb.display["en-US"]', "string"),
    ("object.objectType", "activity", "object.objectType", "case-sensitive"),
    ("object.id", DELETE, "object.id", "required"),
    ("object.id", "not an iri", "object.id", "IRI"),
    ("object.mbox", "mailto:a@b.c", "object.mbox", "not a property of an Activity"),
    ("object.definition", "text", "object.definition", "must be an object"),
    ("object.definition.name", 12345, "object.definition.name", "must be an object"),
    ("object.definition.type", "should error", "object.definition.type", "IRI"),
    ("object.definition.moreInfo", "ab=c://x", "object.definition.moreInfo", "IRI"),
    ("object.definition.extensions", "x", "object.definition.extensions", "must be an object"),
    (
        "object.definition.extensions",
        {"should fail": True},
        'object.definition.extensions["should fail"]',
        "IRIs",
    ),
    ("object.definition.interactionType", "choiCe", "object.definition.interactionType", "case"),
    (
        "object.definition.correctResponsesPattern",
        ["a"],
        "object.definition.correctResponsesPattern",
        "interactionType",
    ),
    (
        "object.definition",
        {**CHOICE, "interactionType": "true-false"},
        "object.definition.choices",
        "not used by interactionType 'true-false'",
    ),
    (
        "object.definition",
        {**CHOICE, "choices": [{"id": "golf"}, {"id": "golf"}]},
        "object.definition.choices[1].id",
        "distinct",
    ),
    (
        "object.definition",
        {**CHOICE, "choices": [{"id": "golf", "description": {"en-US": 1}}]},
        'object.definition.choices[0].description["en-US"]',
        "string",
    ),
    ("object", {"objectType": "Agent", "name": "x"}, "object", "exactly one"),
    ("object", {"objectType": "StatementRef", "id": "x"}, "object.id", "UUID"),
    ("object", {"objectType": "StatementRef"}, "object.id", "required"),
    (
        "object",
        {"objectType": "StatementRef", "id": new_uuid(), "definition": {}},
        "object.definition",
        "not a property of a StatementRef",
    ),
    (
        "object",
        {**load_fixture("xapi/appendix_b_objects.json")["substatement"], "id": new_uuid()},
        "object.id",
        "not allowed in a SubStatement",
    ),
    (
        "object",
        {**load_fixture("xapi/appendix_b_objects.json")["substatement"], "stored": "x"},
        "object.stored",
        "not allowed",
    ),
    (
        "object",
        {
            **load_fixture("xapi/appendix_b_objects.json")["substatement"],
            "object": load_fixture("xapi/appendix_b_objects.json")["substatement"],
        },
        "object.object.objectType",
        "another SubStatement",
    ),
    (
        "object",
        {"objectType": "SubStatement", "actor": AGENT, "object": {"id": "http://x.example"}},
        "object.verb",
        "required",
    ),
    ("verb.id", "http://adlnet.gov/expapi/verbs/voided", "object", "StatementRef"),
    ("result", {"success": "true"}, "result.success", "true or false"),
    ("result", {"completion": "false"}, "result.completion", "true or false"),
    ("result", {"response": 12345}, "result.response", "string"),
    ("result", {"duration": "PA1H0M0S"}, "result.duration", "ISO 8601 duration"),
    ("result", {"duration": "P4W1D"}, "result.duration", "ISO 8601 duration"),
    ("result", {"duration": 12345}, "result.duration", "string"),
    ("result", {"score": {"scaled": 1.01}}, "result.score.scaled", "between -1 and 1"),
    ("result", {"score": {"scaled": "1"}}, "result.score.scaled", "number"),
    ("result", {"score": {"raw": 11, "max": 10}}, "result.score.raw", "above max"),
    ("result", {"score": {"raw": 1, "min": 2}}, "result.score.raw", "below min"),
    ("result", {"score": {"min": 5, "max": 5}}, "result.score.min", "less than max"),
    ("result", {"score": 5}, "result.score", "must be an object"),
    ("result", {"extensions": 12345}, "result.extensions", "must be an object"),
    ("context", {"registration": "should fail"}, "context.registration", "UUID"),
    ("context", {"registration": {"key": 1}}, "context.registration", "string"),
    ("context", {"instructor": "x"}, "context.instructor", "must be an object"),
    ("context", {"team": AGENT}, "context.team.objectType", "Group"),
    ("context", {"contextActivities": "x"}, "context.contextActivities", "must be an object"),
    (
        "context",
        {"contextActivities": {"foo": []}},
        "context.contextActivities.foo",
        "not a property",
    ),
    (
        "context",
        {"contextActivities": {"grouping": "x"}},
        "context.contextActivities.grouping",
        "object or an array",
    ),
    (
        "context",
        {"contextActivities": {"parent": [{"id": "http://a.example"}, {"idd": "x"}]}},
        "context.contextActivities.parent[1].idd",
        "not a property",
    ),
    ("context", {"revision": 3}, "context.revision", "string"),
    ("context", {"language": "a12345"}, "context.language", "RFC 5646"),
    (
        "context",
        {"statement": {"objectType": "statementref", "id": new_uuid()}},
        "context.statement.objectType",
        "StatementRef",
    ),
    (
        "context",
        {"statement": {"objectType": "StatementRef", "id": "1"}},
        "context.statement.id",
        "UUID",
    ),
    ("context", {"extensions": {"should fail": 1}}, 'context.extensions["should fail"]', "IRIs"),
    ("timestamp", "01/011/2015", "timestamp", "not an ISO 8601 timestamp"),
    ("timestamp", "should fail", "timestamp", "not an ISO 8601 timestamp"),
    ("timestamp", "2013-04-01T12:00:00", "timestamp", "no time zone"),
    ("timestamp", "2008-09-15T15:53:00.601-00:00", "timestamp", "unknown"),
    ("timestamp", "2008-09-15T15:53:00.601-0000", "timestamp", "unknown"),
    ("timestamp", "2008-09-15T15:53:00.601-00", "timestamp", "unknown"),
    ("timestamp", "2013-02-30T12:00:00Z", "timestamp", "not a valid date"),
    ("stored", "yesterday", "stored", "not an ISO 8601 timestamp"),
    ("version", "1.1.0", "version", "1.0"),
    ("version", "0.9.9", "version", "1.0"),
    ("version", "should fail", "version", "1.0"),
    ("authority", GROUP, "authority", "3-legged OAuth"),
    (
        "authority",
        {"objectType": "Group", "member": [AGENT, AGENT, AGENT]},
        "authority",
        "exactly two",
    ),
    ("attachments", {"usageType": "x"}, "attachments", "array"),
    ("attachments[0].usageType", "should fail", "attachments[0].usageType", "IRI"),
    ("attachments[0].length", "27", "attachments[0].length", "integer"),
    ("attachments[0].sha2", "should fail", "attachments[0].sha2", "SHA-2"),
    ("attachments[0].contentType", 123, "attachments[0].contentType", "string"),
    ("attachments[0].contentType", "not a type", "attachments[0].contentType", "media type"),
    ("attachments[0].fileUrl", "should fail", "attachments[0].fileUrl", "IRI"),
    ("attachments[0].display", DELETE, "attachments[0].display", "required"),
]


@pytest.mark.parametrize(
    ("where", "value", "path", "words"),
    BROKEN_RULES,
    ids=[f"{where}->{path}" for where, _, path, _ in BROKEN_RULES],
)
def test_each_broken_rule_is_named_by_path_and_reason(
    where: str, value: Any, path: str, words: str
) -> None:
    statement = spec("appendix_d_signed_statement.json")
    broken = mutated(statement, where, value)
    error = error_of(broken)
    assert error.path == path, error
    assert words.lower() in error.reason.lower(), error
    assert error.source == "xapi"
    # The parsed-object path (as the HTTP edge uses it) reports the same thing.
    with pytest.raises(InvalidEvent) as parsed:
        normalise(broken, KEY)
    assert (parsed.value.path, parsed.value.reason) == (error.path, error.reason)


ACCEPTED_VARIANTS: list[tuple[str, Any]] = [
    ("version", "1.0"),
    ("version", "1.0.9"),
    ("timestamp", "2099-04-01T12:00:00.123456789+05:30"),
    ("timestamp", "2013-04-01t12:00:00z"),
    ("result", {"duration": "PT4H35M59.14S"}),
    ("result", {"duration": "P3Y1M29DT4H35M59.14S"}),
    ("result", {"duration": "P4W"}),
    ("result", {"score": {"scaled": 1.0, "raw": 3, "min": 0, "max": 3}}),
    ("context", {"extensions": {"http://example.com/ex": None}}),
    ("context", {"extensions": {"http://example.com/ex": ""}}),
    ("context", {"extensions": {}}),
    ("context", {"language": "zh-Hant"}),
    ("context", {"language": "sr-Latn-RS"}),
    ("context", {"language": "cmn"}),
    ("context", {"team": GROUP, "instructor": GROUP}),
    ("context", {"statement": {"objectType": "StatementRef", "id": new_uuid()}}),
    ("verb.display", {"de": "erlebt", "es-419": "experimentó"}),
    ("actor", {"objectType": "Group", "member": [AGENT]}),
    ("actor", {"account": {"homePage": "http://www.example.com", "name": "1625378"}}),
    ("authority", {"objectType": "Group", "member": [AGENT, {"openid": "http://o.example/"}]}),
    ("authority", {"account": {"homePage": "http://cloud.scorm.com/", "name": "anonymous"}}),
    ("id", "FD41C918-B88B-4B20-A0A5-A4C32391AAA0"),
]


@pytest.mark.parametrize(
    ("where", "value"), ACCEPTED_VARIANTS, ids=[w for w, _ in ACCEPTED_VARIANTS]
)
def test_valid_variants_are_accepted(where: str, value: Any) -> None:
    statement = mutated(spec("appendix_d_signed_statement.json"), where, value)
    validate_statement(statement)
    if statement["actor"].get("objectType") != "Group":  # valid, but not a single learner
        assert len(normalise(orjson.dumps(statement), KEY)) == 1


def test_statement_ids_are_lowercased_for_dedupe() -> None:
    statement = mutated(base(), "id", "FD41C918-B88B-4B20-A0A5-A4C32391AAA0")
    (event,) = normalise(orjson.dumps(statement), KEY)
    assert event.event_id == "fd41c918-b88b-4b20-a0a5-a4c32391aaa0"


def test_offsets_are_converted_to_utc() -> None:
    statement = mutated(base(), "timestamp", "2024-03-01T10:15:00.250+05:30")
    (event,) = normalise(orjson.dumps(statement), KEY)
    assert event.timestamp == datetime(2024, 3, 1, 4, 45, 0, 250000, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC


def test_stored_stands_in_for_a_missing_timestamp_and_one_of_them_is_required() -> None:
    statement = mutated(base(), "timestamp", DELETE)
    assert error_of(statement).path == "timestamp"
    (event,) = normalise(orjson.dumps({**statement, "stored": "2020-01-01T00:00:00Z"}), KEY)
    assert event.timestamp == datetime(2020, 1, 1, tzinfo=UTC)


# --- mapping to LearningEvent -------------------------------------------------------------


def rich_answer() -> dict[str, Any]:
    statement = mutated(base(), "verb.id", VERB_ANSWERED)
    statement["object"]["definition"]["extensions"] = {
        EXT_SKILLS: ["fractions.add", "fractions.compare"],
        EXT_DIFFICULTY: 0.75,
        EXT_HINT_COUNT: 3,
    }
    statement["result"] = {
        "success": False,
        "response": "3/8",
        "duration": "PT1M2.5S",
        "score": {"raw": 1, "min": 0, "max": 4},
        "extensions": {EXT_HINT_LEVEL: 2},
    }
    statement["context"] = {
        "registration": "EC531277-B57B-4C15-8D91-D292C5B2B8F7",
        "instructor": {"mbox": "mailto:teacher@school.example.edu"},
        "contextActivities": {
            "grouping": [
                {"id": "https://lms.example.edu/terms/2024"},
                {"id": "https://lms.example.edu/classes/7b", "definition": {"type": CLASS_TYPE}},
            ]
        },
        "extensions": {EXT_ATTEMPT: 2, EXT_RESOURCE_RELATION: "contradicts"},
    }
    return statement


def test_every_learning_event_field_is_read_from_its_xapi_place() -> None:
    (event,) = normalise(orjson.dumps(rich_answer()), KEY)
    assert event.event_type is EventType.ANSWER_SUBMIT
    assert event.event_id == "33cff416-e331-4c9d-969e-5373a1756120"
    assert event.class_id == "https://lms.example.edu/classes/7b"
    assert event.session_id == "ec531277-b57b-4c15-8d91-d292c5b2b8f7"
    assert event.skill_ids == ("fractions.add", "fractions.compare")
    assert event.item_difficulty == 0.75
    assert event.hint_count == 3
    assert event.hint_level == 2
    assert event.attempt == 2
    assert event.correct is False
    assert event.response_hash == hashlib.sha256(b"3/8").hexdigest()
    assert event.duration_s == pytest.approx(62.5)
    assert event.score_scaled == 0.25
    assert event.resource_relation is ResourceRelation.CONTRADICTS
    dumped = json.dumps(event.model_dump(mode="json"))
    assert "3/8" not in dumped
    assert "example@example.com" not in dumped
    assert "teacher@school" not in dumped


def test_first_grouping_activity_is_the_class_when_none_is_typed_as_one() -> None:
    statement = rich_answer()
    del statement["context"]["contextActivities"]["grouping"][1]["definition"]
    (event,) = normalise(orjson.dumps(statement), KEY)
    assert event.class_id == "https://lms.example.edu/terms/2024"


@pytest.mark.parametrize(
    ("verb", "activity_type", "expected"),
    [
        (VERB_PLAYED, VIDEO_ACTIVITY_TYPE, EventType.MEDIA_PLAY),
        (VERB_PAUSED, VIDEO_ACTIVITY_TYPE, EventType.MEDIA_PAUSE),
        (VERB_SEEKED, VIDEO_ACTIVITY_TYPE, EventType.MEDIA_SEEK),
        (VERB_COMPLETED, VIDEO_ACTIVITY_TYPE, EventType.MEDIA_COMPLETE),
        (
            VERB_COMPLETED,
            "http://adlnet.gov/expapi/activities/assessment",
            EventType.PROBLEM_COMPLETE,
        ),
        (VERB_EXPERIENCED, None, EventType.RESOURCE_VIEW),
        (VERB_INTERACTED, VIDEO_ACTIVITY_TYPE, EventType.RESOURCE_VIEW),
        ("http://id.tincanapi.com/verb/viewed", None, EventType.RESOURCE_VIEW),
        ("http://id.tincanapi.com/verb/skipped", None, EventType.PROBLEM_COMPLETE),
        ("http://adlnet.gov/expapi/verbs/responded", None, EventType.ANSWER_SUBMIT),
        ("http://activitystrea.ms/schema/1.0/consume", None, EventType.RESOURCE_VIEW),
        (VERB_REQUESTED_HINT, None, EventType.HINT_REQUEST),
        (VERB_VIEWED_FEEDBACK, None, EventType.FEEDBACK_VIEW),
    ],
)
def test_verbs_map_to_the_closed_event_set(
    verb: str, activity_type: str | None, expected: EventType
) -> None:
    statement = mutated(base(), "verb.id", verb)
    if activity_type is not None:
        statement["object"]["definition"]["type"] = activity_type
    (event,) = normalise(orjson.dumps(statement), KEY)
    assert event.event_type is expected


def test_video_session_id_is_the_session_without_a_registration() -> None:
    statement = mutated(base(), "verb.id", VERB_PLAYED)
    statement["context"] = {"extensions": {VIDEO_SESSION_ID: "9c2fe1e0-session"}}
    (event,) = normalise(orjson.dumps(statement), KEY)
    assert event.session_id == "9c2fe1e0-session"


@pytest.mark.parametrize(("verb", "correct"), [(VERB_PASSED, True), (VERB_FAILED, False)])
def test_passed_and_failed_complete_the_problem_with_their_verdict(
    verb: str, correct: bool
) -> None:
    (event,) = normalise(orjson.dumps(mutated(base(), "verb.id", verb)), KEY)
    assert (event.event_type, event.correct) == (EventType.PROBLEM_COMPLETE, correct)
    contradiction = mutated(mutated(base(), "verb.id", verb), "result", {"success": not correct})
    error = error_of(contradiction)
    assert (error.path, "contradicts" in error.reason) == ("result.success", True)


def test_a_group_actor_is_stored_unmodelled() -> None:
    statement = mutated(base(), "actor", GROUP)
    validate_statement(statement)
    assert unmodelled_of(statement).reason == "group actor"


DEFINITION_EXT = "object.definition.extensions"
TUTORSTREAM_EXTENSION_ERRORS = [
    (DEFINITION_EXT, {EXT_SKILLS: 5}, f'{DEFINITION_EXT}["{EXT_SKILLS}"]', "array of skill"),
    (DEFINITION_EXT, {EXT_SKILLS: ["ok", ""]}, f'{DEFINITION_EXT}["{EXT_SKILLS}"][1]', "non-empty"),
    (DEFINITION_EXT, {EXT_DIFFICULTY: "hard"}, f'{DEFINITION_EXT}["{EXT_DIFFICULTY}"]', "finite"),
    (DEFINITION_EXT, {EXT_HINT_COUNT: 0}, f'{DEFINITION_EXT}["{EXT_HINT_COUNT}"]', "at least 1"),
    ("context.extensions", {EXT_ATTEMPT: "2"}, f'context.extensions["{EXT_ATTEMPT}"]', "integer"),
    (
        "context.extensions",
        {EXT_RESOURCE_RELATION: "maybe"},
        f'context.extensions["{EXT_RESOURCE_RELATION}"]',
        "supports",
    ),
    (
        "result.extensions",
        {EXT_HINT_LEVEL: -1},
        f'result.extensions["{EXT_HINT_LEVEL}"]',
        "at least 0",
    ),
]


@pytest.mark.parametrize(("where", "value", "path", "words"), TUTORSTREAM_EXTENSION_ERRORS)
def test_tutorstream_extensions_with_wrong_values_are_refused_at_their_key(
    where: str, value: dict[str, Any], path: str, words: str
) -> None:
    error = error_of(mutated(base(), where, value))
    assert error.path == path
    assert words in error.reason


def test_attempt_written_as_a_whole_float_is_accepted() -> None:
    (event,) = normalise(
        orjson.dumps(mutated(base(), "context.extensions", {EXT_ATTEMPT: 3.0})), KEY
    )
    assert event.attempt == 3


# --- ids, arrays, and both ways in --------------------------------------------------------


def test_statements_without_id_get_the_same_id_whatever_their_key_order() -> None:
    statement = mutated(base(), "id", DELETE)
    reordered = json.loads(json.dumps(dict(reversed(list(statement.items())))))
    first = normalise(orjson.dumps(statement), KEY)[0].event_id
    again = normalise(json.dumps(reordered).encode(), KEY)[0].event_id
    other = normalise(orjson.dumps(mutated(statement, "timestamp", "2013-04-01T12:00:01Z")), KEY)
    assert first == again
    assert first != other[0].event_id
    assert first == statement_id(validate_statement(statement))


def test_arrays_normalise_in_order_and_errors_carry_the_index() -> None:
    good = [mutated(base(), "id", new_uuid()) for _ in range(3)]
    events = normalise(orjson.dumps(good), KEY)
    assert [event.event_id for event in events] == [statement["id"] for statement in good]
    broken = [*good[:2], mutated(base(), "actor.mbox", "nope"), good[2]]
    error = error_of(broken)
    assert error.path == "[2].actor.mbox"
    assert validate_statements(good)[1].id == good[1]["id"]
    with pytest.raises(InvalidEvent) as caught:
        validate_statements(broken)
    assert caught.value.path == "[2].actor.mbox"


def test_an_unmodelled_statement_in_an_array_keeps_the_others() -> None:
    launched = mutated(base(), "verb.id", "http://adlnet.gov/expapi/verbs/launched")
    launched["id"] = new_uuid()
    unmodelled: list[UnmodelledEvent] = []
    events = normalise(orjson.dumps([base(), launched]), KEY, unmodelled=unmodelled)
    assert [event.event_id for event in events] == [base()["id"]]
    assert [(u.event_id, u.reason) for u in unmodelled] == [
        (launched["id"], "unmodelled in profile")
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statement=statements())
def test_generated_statements_normalise_to_valid_events(statement: dict[str, Any]) -> None:
    from_bytes = normalise(orjson.dumps(statement), KEY)
    from_dict = normalise(statement, KEY)
    assert from_bytes == from_dict
    (event,) = from_bytes
    # The event is exactly what full pydantic validation of its own dump produces.
    assert LearningEvent.model_validate(event.model_dump()) == event
    assert LearningEvent.model_validate_json(event.model_dump_json()) == event
    assert event.event_type is expected_event_type(statement)
    assert event.item_id == statement["object"]["id"]
    result = statement.get("result", {})
    assert event.correct == (
        result.get("success")
        if statement["verb"]["id"] not in (VERB_PASSED, VERB_FAILED)
        else statement["verb"]["id"] == VERB_PASSED
    )
    if "response" in result:
        assert event.response_hash == hashlib.sha256(result["response"].encode()).hexdigest()
    if "id" in statement:
        assert event.event_id == statement["id"].lower()
    dumped = event.model_dump_json()
    for identifier in ("mbox", "mbox_sha1sum", "openid"):
        if identifier in statement["actor"]:
            assert statement["actor"][identifier] not in dumped


@settings(max_examples=150, deadline=None)
@given(statement=statements(), data=st.data())
def test_corrupting_any_property_of_a_valid_statement_is_reported_not_crashed(
    statement: dict[str, Any], data: st.DataObject
) -> None:
    paths: list[list[str | int]] = []

    def walk(node: Any, trail: list[str | int]) -> None:
        if trail:
            paths.append(trail)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*trail, key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, [*trail, index])

    walk(statement, [])
    trail = data.draw(st.sampled_from(paths))
    replacement = data.draw(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=5),
            st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2),
            st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**63 - 1), max_size=2),
        )
    )
    broken = copy.deepcopy(statement)
    node: Any = broken
    for step in trail[:-1]:
        node = node[step]
    node[trail[-1]] = replacement
    for payload in (json.dumps(broken).encode(), broken):
        try:
            events = normalise(payload, KEY)
        except InvalidEvent as error:
            assert error.reason
            assert isinstance(error.path, str)
        else:
            assert len(events) == 1

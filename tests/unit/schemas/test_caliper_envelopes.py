from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from contract_data import KEY, fixture_names, load_fixture

from schemas.caliper import CALIPER_V1P2, validate_envelope, validate_event
from schemas.events import EventType, LearningEvent, SourceFormat, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise
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

pytestmark = pytest.mark.unit

SECTION = "https://example.edu/terms/201601/courses/7/sections/1"
SESSION = "https://example.edu/sessions/1f6442a482de72ea6ad134943812bff564a76259"
LEARNER = "https://example.edu/users/554433"


def v1p2(name: str) -> dict[str, Any]:
    event: dict[str, Any] = load_fixture(f"caliper/v1p2/{name}")
    return event


def envelope(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "sensor": "https://example.edu/sensors/1",
        "sendTime": "2016-11-15T11:05:01.000Z",
        "dataVersion": CALIPER_V1P2,
        "data": list(events),
    }


def one(payload: Any) -> LearningEvent:
    (event,) = normalise(orjson.dumps(payload), KEY)
    return event


def unmodelled_of(payload: Any) -> UnmodelledEvent:
    """Normalise a valid record the model cannot use; return the one stored unmodelled event."""
    unmodelled: list[UnmodelledEvent] = []
    assert normalise(orjson.dumps(payload), KEY, unmodelled=unmodelled) == []
    assert len(unmodelled) == 1
    return unmodelled[0]


def error_of(payload: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        normalise(orjson.dumps(payload), KEY)
    return caught.value


# --- IMS Caliper 1.2 example events -------------------------------------------------------

READ = [
    ("caliperEventAssessmentItemStarted.json", EventType.PROBLEM_START, "/assess/1/items/3"),
    ("caliperEventAssessmentItemCompleted.json", EventType.ANSWER_SUBMIT, "/assess/1/items/3"),
    ("caliperEventAssessmentItemSkipped.json", EventType.PROBLEM_COMPLETE, "/assess/1/items/2"),
    ("caliperEventAssessmentStarted.json", EventType.PROBLEM_START, "/sections/1/assess/1"),
    ("caliperEventAssessmentSubmitted.json", EventType.PROBLEM_COMPLETE, "/sections/1/assess/1"),
    ("caliperEventMediaPausedVideo.json", EventType.MEDIA_PAUSE, "https://example.edu/UQVK-dsU7-Y"),
    ("caliperEventNavigationNavigatedToWebPage.json", EventType.RESOURCE_VIEW, "/pages/2"),
    ("caliperEventNavigationNavigatedToWebPageThinned.json", EventType.RESOURCE_VIEW, "/pages/2"),
    (
        "caliperEventNavigationNavigatedToCollectionItem.json",
        EventType.RESOURCE_VIEW,
        "/resources/2",
    ),
    ("caliperEventViewViewedDocument.json", EventType.RESOURCE_VIEW, "/etexts/201.epub"),
    ("caliperEventViewViewedDocumentExtended.json", EventType.RESOURCE_VIEW, "/etexts/200.epub"),
    ("caliperEventViewViewedDocumentFedSession.json", EventType.RESOURCE_VIEW, "/reader/202.epub"),
    ("caliperEventViewViewedQuestionnaireItem.json", EventType.RESOURCE_VIEW, "/items/2"),
    (
        "caliperEventNavigationNavigatedToQuestionnaireItem.json",
        EventType.RESOURCE_VIEW,
        "/items/2",
    ),
    ("caliperEventToolUseUsed.json", EventType.RESOURCE_VIEW, "https://example.edu"),
    ("caliperEventToolUseUsedWithProgress.json", EventType.RESOURCE_VIEW, "https://example.edu"),
]


@pytest.mark.parametrize(("name", "event_type", "item_end"), READ)
def test_spec_events_of_read_types_normalise(
    name: str, event_type: EventType, item_end: str
) -> None:
    raw = v1p2(name)
    for payload in (raw, envelope(raw)):
        event = one(payload)
        assert event.event_type is event_type
        assert event.item_id is not None and event.item_id.endswith(item_end)
        assert event.event_id == raw["id"]
        assert event.source is SourceFormat.CALIPER
        assert event.learner_id == Pseudonymiser(KEY).caliper_actor(LEARNER)
        assert event.timestamp == datetime.fromisoformat(raw["eventTime"])
        assert LearningEvent.model_validate(event.model_dump()) == event


def test_item_completed_carries_response_attempt_class_and_session() -> None:
    event = one(v1p2("caliperEventAssessmentItemCompleted.json"))
    # Multi-part answers hash as xAPI writes them, so one answer hashes alike in both formats.
    assert event.response_hash == hashlib.sha256(b"subject[,]object[,]predicate").hexdigest()
    assert event.attempt == 1
    assert event.class_id == SECTION
    assert event.session_id == SESSION


def test_assessment_submitted_takes_the_attempt_duration() -> None:
    event = one(v1p2("caliperEventAssessmentSubmitted.json"))
    assert event.duration_s == 630.0
    assert event.attempt == 1


def test_thinned_event_reads_entities_given_as_iris() -> None:
    event = one(v1p2("caliperEventNavigationNavigatedToWebPageThinned.json"))
    assert (event.class_id, event.session_id) == (SECTION, SESSION)


@pytest.mark.parametrize(
    "name",
    [
        "caliperEnvelopeEventSingle.json",
        "caliperEnvelopeEventThinned.json",
        "caliperEnvelopeToolUseEvent.json",
    ],
)
def test_spec_envelopes_normalise(name: str) -> None:
    payload = v1p2(name)
    events = normalise(orjson.dumps(payload), KEY)
    assert [event.event_id for event in events] == [item["id"] for item in payload["data"]]
    assert len(validate_envelope(payload)) == len(payload["data"])


def test_envelope_batch_with_an_unread_event_type_names_it() -> None:
    error = error_of(v1p2("caliperEnvelopeEventBatch.json"))
    assert (error.path, error.source) == ("data[1].type", "caliper")
    assert "AnnotationEvent" in error.reason
    assert "AssessmentItemEvent" in error.reason


def test_entities_in_an_envelope_are_refused_as_not_events() -> None:
    error = error_of(v1p2("caliperEnvelopeMixedBatch.json"))
    assert error.path == "data[0]"
    assert "entity (Person)" in error.reason


def test_inline_and_array_contexts_are_accepted() -> None:
    payload = v1p2("caliperEnvelopeEventContextArray.json")
    payload["data"][0].update(type="ViewEvent", action="Viewed")
    assert one(payload).event_type is EventType.RESOURCE_VIEW
    inline = v1p2("caliperEventMessagePostedInlineContext.json")
    validate_event(inline)


UNREAD = [
    name
    for name in fixture_names("caliper/v1p2")
    if name.startswith("caliperEvent")
    and not any(name == read for read, _, _ in READ)
    and "ToolUseUsedAnonymous" not in name
    and not name.startswith(("caliperEventSession", "caliperEventGrade"))
]


@pytest.mark.parametrize(
    "name",
    [
        name
        for name in fixture_names("caliper/v1p2")
        if name.startswith(("caliperEventSession", "caliperEventGrade"))
    ],
)
def test_canvas_sessions_and_grades_are_checked_and_stored_unmodelled(name: str) -> None:
    event = v1p2(name)
    stored = unmodelled_of(event)
    assert stored.verb == f"{event['type']}/{event['action']}"
    assert stored.reason in ("unmodelled in profile", "actor is a SoftwareApplication")


@pytest.mark.parametrize("name", UNREAD)
def test_spec_events_of_unread_types_are_refused_with_the_read_types(name: str) -> None:
    event = v1p2(name)
    validate_event(event)
    error = error_of(event)
    assert error.path == "type"
    assert "does not read it" in error.reason


def test_anonymous_actor_is_stored_as_unmodelled() -> None:
    stored = unmodelled_of(v1p2("caliperEventToolUseUsedAnonymous.json"))
    assert stored.reason == "anonymous actor"
    assert stored.verb == "ToolUseEvent/Used"


# --- IMS Caliper 1.2 error fixtures -------------------------------------------------------

EXPECTED_PATHS = {
    "caliperEvent-NoActor.json": "actor",
    "caliperEvent-NullActor.json": "actor",
    "caliperEvent-NoAction.json": "action",
    "caliperEvent-NoEventTime.json": "eventTime",
    "caliperEvent-NullEventTime.json": "eventTime",
    "caliperEvent-NoId.json": "id",
    "caliperEvent-NullId.json": "id",
    "caliperEvent-NoObject.json": "object",
    "caliperEvent-NullObject.json": "object",
    "caliperEvent-NoType.json": "type",
    "caliperEvent-NullType.json": "type",
    "caliperEvent-UnknownAction.json": "action",
    "caliperEvent-UnknownEventType.json": "type",
    "caliperEvent-UnknownProfile.json": "profile",
    "caliperEvent-MalformedActorNotAString.json": "actor",
    "caliperEvent-MalformedActorWrongEntityType.json": "actor.type",
    "caliperEvent-MalformedEdAppNotAString.json": "edApp",
    "caliperEvent-MalformedEdAppWrongEntityType.json": "edApp.type",
    "caliperEvent-MalformedExtensionsNotAString.json": "extensions",
    "caliperEvent-MalformedExtensionsNotAnIRI.json": "extensions",
    "caliperEvent-MalformedFederatedSessionNotAString.json": "federatedSession",
    "caliperEvent-MalformedFederatedSessionWrongEntityType.json": "federatedSession.type",
    "caliperEvent-MalformedGroupNotAString.json": "group",
    "caliperEvent-MalformedGroupWrongEntityType.json": "group.type",
    "caliperEvent-MalformedMembershipNotAString.json": "membership",
    "caliperEvent-MalformedMembershipWrongEntityType.json": "membership.type",
    "caliperEvent-MalformedReferrerNotAString.json": "referrer",
    "caliperEvent-MalformedSessionNotAString.json": "session",
    "caliperEvent-MalformedSessionWrongEntityType.json": "session.type",
    "caliperEvent-MalformedTargetNotAString.json": "target",
    "caliperEventAssessment-MalformedGeneratedWrongEntityType.json": "generated.type",
    "caliperEventAssessment-MalformedObjectWrongEntityType.json": "object.type",
    "caliperEventAssessment-WrongAction.json": "action",
    "caliperEventAssessmentItem-MalformedGeneratedWrongEntityType.json": "generated.type",
    "caliperEventAssessmentItem-MalformedObjectWrongEntityType.json": "object.type",
    "caliperEventAssessmentItem-MalformedReferrerWrongEntityType.json": "referrer.type",
    "caliperEventAssessmentItem-WrongAction.json": "action",
    "caliperEventMedia-MalformedObjectWrongEntityType.json": "object.type",
    "caliperEventMedia-MalformedTargetWrongEntityType.json": "target.type",
    "caliperEventMedia-WrongAction.json": "action",
    "caliperEventNavigation-MalformedObjectWrongEntityType.json": "object.type",
    "caliperEventNavigation-MalformedReferrerEntityType.json": "referrer.type",
    "caliperEventNavigation-WrongAction.json": "action",
    "caliperEventToolUse-MalformedGeneratedWrongEntityType.json": "generated.type",
    "caliperEventToolUse-MalformedOjbectWrongEntityType.json": "object.type",
    "caliperEventToolUse-MalformedTargetWrongEntityType.json": "target.type",
    "caliperEventToolUse-WrongAction.json": "action",
    "caliperEventView-MalformedObjectWrongEntityType.json": "object.type",
    "caliperEventView-MalformedTargetWrongEntityType.json": "target.type",
    "caliperEventView-WrongAction.json": "action",
}


@pytest.mark.parametrize("name", fixture_names("caliper/v1p2/errors"))
def test_every_caliper_error_fixture_is_refused(name: str) -> None:
    fixture = load_fixture(f"caliper/v1p2/errors/{name}")
    for payload, prefix in ((fixture, ""), (envelope(fixture), "data[0].")):
        error = error_of(payload)
        assert error.reason
        if name in EXPECTED_PATHS:
            assert error.path == prefix + EXPECTED_PATHS[name], error


# --- Canvas, which sends Caliper 1.1 ------------------------------------------------------


def test_canvas_quiz_submission_is_a_problem_completion_on_the_quiz() -> None:
    payload = load_fixture("canvas/quiz_submitted.json")
    event = one(payload)
    assert event.event_type is EventType.PROBLEM_COMPLETE
    assert event.item_id == "urn:instructure:canvas:quiz:11210000002223333"
    assert event.class_id == "urn:instructure:canvas:course:21070000000100123"
    assert event.session_id == "urn:instructure:canvas:session:dc29809b38908fe0890a8098b8982211"
    assert event.event_id == "urn:uuid:06e01cb6-fdde-4327-b3f0-4c47a95d0f52"
    assert event.learner_id == Pseudonymiser(KEY).caliper_actor(
        "urn:instructure:canvas:user:21070000000987123"
    )
    dumped = json.dumps(event.model_dump(mode="json"))
    for raw in ("21070000000987123", "oxana", "1243245", "93.184.216.34"):
        assert raw not in dumped


def test_canvas_navigation_to_an_assignment_is_a_resource_view() -> None:
    event = one(load_fixture("canvas/asset_accessed_assignment.json"))
    assert event.event_type is EventType.RESOURCE_VIEW
    assert event.item_id == "urn:instructure:canvas:assignment:21070000000000144"
    assert "oxana@example.com" not in event.model_dump_json()


def test_canvas_events_by_the_platform_itself_are_not_a_learner() -> None:
    stored = unmodelled_of(load_fixture("canvas/asset_accessed_attachment.json"))
    assert stored.reason == "actor is a SoftwareApplication"
    assert stored.profile == "builtin@3"


def test_an_attempt_as_object_is_only_read_from_caliper_1_1() -> None:
    payload = load_fixture("canvas/quiz_submitted.json")
    event = payload["data"][0]
    event["@context"] = CALIPER_V1P2
    payload["dataVersion"] = CALIPER_V1P2
    assert error_of(payload).path == "data[0].object.type"


# --- envelopes and events, broken ---------------------------------------------------------

ENVELOPE_BREAKS = [
    ("sensor", None, "sensor"),
    ("sendTime", "2016-11-15T11:05:01", "sendTime"),
    ("dataVersion", "http://purl.imsglobal.org/ctx/caliper/v9", "dataVersion"),
    ("data", {"not": "an array"}, "data"),
    ("data", [], "data"),
    ("data", [42], "data[0]"),
]


@pytest.mark.parametrize(("key", "value", "path"), ENVELOPE_BREAKS)
def test_broken_envelopes_are_named(key: str, value: Any, path: str) -> None:
    payload = v1p2("caliperEnvelopeEventSingle.json")
    if value is None:
        del payload[key]
    else:
        payload[key] = value
    assert error_of(payload).path == path


EVENT_BREAKS = [
    ("id", "c51570e4-f8ed-4c18-bb3a-dfe51b2cc594", "id", "urn:uuid"),
    ("@context", "http://example.com/ctx", "@context", "Caliper context"),
    ("@context", 7, "@context", "context IRI"),
    ("eventTime", "2016-11-15 10:15:00", "eventTime", "time zone"),
    ("actor", {"id": "not an iri", "type": "Person"}, "actor.id", "IRI"),
    ("actor", {"id": LEARNER}, "actor.type", "type name"),
    ("action", 7, "action", "string"),
    ("generated", {"type": "Attempt"}, "generated.id", "IRI"),
]


@pytest.mark.parametrize(("key", "value", "path", "words"), EVENT_BREAKS)
def test_broken_events_are_named(key: str, value: Any, path: str, words: str) -> None:
    event = v1p2("caliperEventAssessmentItemStarted.json")
    event[key] = value
    error = error_of(envelope(event))
    assert error.path == "data[0]." + path
    assert words in error.reason


MEDIA_ACTIONS = [
    ("Started", EventType.MEDIA_PLAY),
    ("Resumed", EventType.MEDIA_PLAY),
    ("Restarted", EventType.MEDIA_PLAY),
    ("Paused", EventType.MEDIA_PAUSE),
    ("JumpedTo", EventType.MEDIA_SEEK),
    ("ForwardedTo", EventType.MEDIA_SEEK),
    ("Ended", EventType.MEDIA_COMPLETE),
]


@pytest.mark.parametrize(("action", "event_type"), MEDIA_ACTIONS)
def test_media_actions_map_to_media_events(action: str, event_type: EventType) -> None:
    event = v1p2("caliperEventMediaPausedVideo.json")
    event["action"] = action
    assert one(event).event_type is event_type


def test_valid_caliper_actions_tutorstream_does_not_use_are_stored_as_unmodelled() -> None:
    event = v1p2("caliperEventMediaPausedVideo.json")
    event["action"] = "ChangedVolume"
    stored = unmodelled_of(event)
    assert (stored.verb, stored.reason) == (
        "MediaEvent/ChangedVolume",
        "event type and action not in profile",
    )
    event["action"] = "Deleted"
    assert "not an action of MediaEvent" in error_of(event).reason


def test_tutorstream_extensions_are_read_from_event_and_object() -> None:
    event = v1p2("caliperEventAssessmentItemCompleted.json")
    event["object"]["extensions"] = {
        EXT_SKILLS: ["logic.order"],
        EXT_DIFFICULTY: 1.5,
        EXT_HINT_COUNT: 4,
    }
    event["extensions"] = {
        EXT_CORRECT: True,
        EXT_ATTEMPT: 3,
        EXT_RESOURCE_RELATION: "supports",
    }
    normalised = one(event)
    assert normalised.skill_ids == ("logic.order",)
    assert (normalised.item_difficulty, normalised.hint_count) == (1.5, 4)
    assert (normalised.correct, normalised.attempt) == (True, 3)
    assert normalised.resource_relation == "supports"


def test_correctness_may_come_on_the_generated_response() -> None:
    event = v1p2("caliperEventAssessmentItemCompleted.json")
    event["generated"]["extensions"] = {EXT_CORRECT: False}
    assert one(event).correct is False
    event["generated"]["extensions"] = {EXT_CORRECT: "no"}
    error = error_of(event)
    assert error.path == f'generated.extensions["{EXT_CORRECT}"]'


def test_tool_use_with_a_hint_level_is_a_hint_request_on_the_referring_item() -> None:
    event = v1p2("caliperEventToolUseUsed.json")
    event["extensions"] = {EXT_HINT_LEVEL: 1}
    event["referrer"] = {"id": "https://example.edu/assess/1/items/3", "type": "AssessmentItem"}
    normalised = one(event)
    assert normalised.event_type is EventType.HINT_REQUEST
    assert (normalised.item_id, normalised.hint_level) == (
        "https://example.edu/assess/1/items/3",
        1,
    )
    del event["referrer"]
    assert error_of(event).path == "referrer"


def test_view_of_feedback_names_the_item_it_is_for() -> None:
    event = v1p2("caliperEventViewViewedDocument.json")
    event["extensions"] = {EXT_FEEDBACK_FOR: "https://example.edu/assess/1/items/3"}
    normalised = one(event)
    assert normalised.event_type is EventType.FEEDBACK_VIEW
    assert normalised.item_id == "https://example.edu/assess/1/items/3"
    event["extensions"] = {EXT_FEEDBACK_FOR: "item three"}
    assert error_of(event).path == f'extensions["{EXT_FEEDBACK_FOR}"]'


def test_bad_durations_on_the_generated_attempt_are_named() -> None:
    event = v1p2("caliperEventAssessmentSubmitted.json")
    event["generated"]["duration"] = "ten minutes"
    assert error_of(event).path == "generated.duration"


def test_timestamps_with_offsets_become_utc() -> None:
    event = copy.deepcopy(v1p2("caliperEventAssessmentItemStarted.json"))
    event["eventTime"] = "2016-11-15T11:15:00.000+01:00"
    assert one(event).timestamp == datetime(2016, 11, 15, 10, 15, tzinfo=UTC)

"""Statement profiles: the file format's errors, the built-in vocabulary, a producer's dialect."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from contract_data import KEY, load_fixture

from schemas.events import EventType, LearningEvent, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise
from schemas.profiles import (
    ProfileError,
    StatementProfile,
    builtin_profile,
    load_profiles,
    parse_profile,
)
from schemas.profiles.compiled import CompiledProfile, builtin, compile_profile, compile_profiles

pytestmark = pytest.mark.unit

ADL = "http://adlnet.gov/expapi/verbs/"
TINCAN = "http://id.tincanapi.com/verb/"
LMS = "https://lms.example.edu/xapi/"


def statement(
    verb: str, object_id: str = "https://lms.example.edu/item/fractions/3", **parts: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "actor": {"objectType": "Agent", "mbox": "mailto:ada@example.edu"},
        "verb": {"id": verb},
        "object": {"objectType": "Activity", "id": object_id},
        "timestamp": "2026-03-02T09:00:00Z",
    }
    body.update(parts)
    return body


def read(
    body: dict[str, Any], profile: CompiledProfile | None = None
) -> LearningEvent | UnmodelledEvent:
    unmodelled: list[UnmodelledEvent] = []
    events = normalise(orjson.dumps(body), KEY, profile=profile, unmodelled=unmodelled)
    assert len(events) + len(unmodelled) == 1
    return events[0] if events else unmodelled[0]


# --- the file format ----------------------------------------------------------------------

GOOD = """\
profile: my-lms
version: 3
extends: builtin
default_class: my-lms/unassigned
verbs:
  - ids: [https://lms.example.edu/xapi/verbs/hinted]
    event_type: hint_request
fields:
  hint_level:
    - {from: result_extension, key: https://lms.example.edu/xapi/hint-level}
  skills:
    - {from: object_id, pattern: "/item/([^/]+)/[^/]+$"}
  class:
    - {from: context_extension, key: https://lms.example.edu/xapi/section}
"""


def test_a_good_profile_loads_and_names_its_version() -> None:
    profile = parse_profile(GOOD, "my-lms.yaml")
    assert (profile.profile, profile.version, profile.extends) == ("my-lms", 3, "builtin")


@pytest.mark.parametrize(
    ("text", "line", "field", "reason"),
    [
        (GOOD.replace("hint_request", "hint"), 7, "verbs[0].event_type", "is not an event type"),
        (GOOD.replace("version: 3", "version: 0"), 2, "version", "greater than or equal to 1"),
        (
            GOOD.replace("{from: object_id, pattern:", "{from: object_id, patern:"),
            12,
            "fields.skills[0].patern",
            "Extra inputs",
        ),
        (
            GOOD.replace('"/item/([^/]+)/[^/]+$"', '"/item/[^/]+"'),
            12,
            "fields.skills[0].pattern",
            "needs a group",
        ),
        (
            GOOD.replace('"/item/([^/]+)/[^/]+$"', '"/item/(["'),
            12,
            "fields.skills[0].pattern",
            "not a valid regular expression",
        ),
        (
            GOOD.replace("key: https://lms.example.edu/xapi/hint-level", "key: hint-level"),
            10,
            "fields.hint_level[0].key",
            "not an absolute IRI",
        ),
        (
            GOOD.replace(
                "{from: result_extension, key: https://lms.example.edu/xapi/hint-level}",
                "{from: registration}",
            ),
            9,
            "fields.hint_level",
            "hint_level cannot come from registration",
        ),
        (GOOD + "version: 4\n", 15, "version", "given twice"),
    ],
)
def test_every_profile_error_names_file_line_and_field(
    text: str, line: int, field: str, reason: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile(text, "my-lms.yaml")
    problems = caught.value.problems
    assert ("my-lms.yaml", line, field) in [(f, n, name) for f, n, name, _ in problems], problems
    assert any(reason in why for _, _, _, why in problems), problems
    assert f"my-lms.yaml:{line}: {field}:" in str(caught.value)


def test_all_the_errors_of_a_file_are_reported_at_once(tmp_path: Path) -> None:
    broken = GOOD.replace("version: 3", "version: x").replace("hint_request", "hint")
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    other = tmp_path / "unreadable.yaml"
    other.write_text("profile: [unclosed\n")
    with pytest.raises(ProfileError) as caught:
        load_profiles([path, other])
    found = {(Path(f).name, n, name) for f, n, name, _ in caught.value.problems}
    assert ("broken.yaml", 2, "version") in found
    assert ("broken.yaml", 7, "verbs[0].event_type") in found
    assert any(name == "unreadable.yaml" for name, _, _ in found)


def test_a_missing_base_or_default_profile_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "orphan.yaml"
    path.write_text(GOOD.replace("extends: builtin", "extends: nowhere"))
    with pytest.raises(ProfileError, match="extends: names 'nowhere'"):
        load_profiles([path])
    with pytest.raises(ProfileError, match="default profile"):
        load_profiles([], default="absent")


def test_the_published_schema_is_the_models() -> None:
    schema = StatementProfile.model_json_schema()
    assert set(schema["required"]) == {"profile", "version"}


# --- the built-in profile -----------------------------------------------------------------


def test_the_builtin_profile_is_valid_and_labelled() -> None:
    profile = builtin_profile()
    assert builtin().label == f"builtin@{profile.version}"


@pytest.mark.parametrize(
    ("verb", "object_id", "expected"),
    [
        (ADL + "attempted", "https://lms.example.edu/q/1", EventType.PROBLEM_START),
        (ADL + "answered", "https://lms.example.edu/q/1", EventType.ANSWER_SUBMIT),
        (ADL + "passed", "https://lms.example.edu/q/1", EventType.PROBLEM_COMPLETE),
        (TINCAN + "viewed", "https://lms.example.edu/page/7", EventType.RESOURCE_VIEW),
        (TINCAN + "viewed", "https://lms.example.edu/q/1/feedback", EventType.FEEDBACK_VIEW),
        (TINCAN + "skipped", "https://lms.example.edu/q/1", EventType.PROBLEM_COMPLETE),
        ("https://w3id.org/xapi/video/verbs/seeked", "https://v.example/1", EventType.MEDIA_SEEK),
        (
            "http://activitystrea.ms/schema/1.0/consume",
            "https://h5p.example/1",
            EventType.RESOURCE_VIEW,
        ),
    ],
)
def test_builtin_vocabulary(verb: str, object_id: str, expected: EventType) -> None:
    event = read(statement(verb, object_id))
    assert isinstance(event, LearningEvent)
    assert event.event_type is expected
    assert event.profile == builtin().label


def test_a_feedback_view_is_about_the_item_it_belongs_to() -> None:
    event = read(statement(TINCAN + "viewed", "https://lms.example.edu/q/1/feedback"))
    assert isinstance(event, LearningEvent) and event.item_id == "https://lms.example.edu/q/1"


@pytest.mark.parametrize(
    "verb",
    [
        ADL + "launched",
        ADL + "initialized",
        "https://w3id.org/xapi/adl/verbs/satisfied",
        "https://w3id.org/xapi/adl/verbs/logged-in",
        LMS + "verbs/bookmarked",
    ],
)
def test_known_and_unknown_verbs_the_model_does_not_use_are_unmodelled(verb: str) -> None:
    stored = read(statement(verb))
    assert isinstance(stored, UnmodelledEvent)
    assert (stored.verb, stored.profile) == (verb, "builtin@3")


def test_moodle_course_in_the_grouping_is_the_class_not_the_site() -> None:
    context = {
        "contextActivities": {
            "grouping": [
                {
                    "id": "https://moodle.example.edu",
                    "definition": {"type": "http://id.tincanapi.com/activitytype/lms"},
                },
                {
                    "id": "https://moodle.example.edu/course/view.php?id=7",
                    "definition": {"type": "http://id.tincanapi.com/activitytype/lms/course"},
                },
            ]
        },
        "extensions": {"http://id.tincanapi.com/extension/attempt-id": 2},
    }
    event = read(statement(ADL + "answered", context=context))
    assert isinstance(event, LearningEvent)
    assert event.class_id == "https://moodle.example.edu/course/view.php?id=7"
    assert event.attempt == 2


def test_a_third_party_extension_of_the_wrong_type_is_passed_over_not_refused() -> None:
    context = {"extensions": {"http://id.tincanapi.com/extension/attempt-id": "second"}}
    event = read(statement(ADL + "answered", context=context))
    assert isinstance(event, LearningEvent) and event.attempt is None


# --- a producer's dialect -----------------------------------------------------------------


def my_lms(**changes: Any) -> CompiledProfile:
    profile = parse_profile(GOOD, "my-lms.yaml")
    if changes:
        profile = profile.model_copy(update=changes)
    return compile_profile(profile, {"builtin": builtin_profile(), "my-lms": profile})


def test_a_producer_profile_reads_its_own_verbs_and_places_before_the_builtin_ones() -> None:
    profile = my_lms()
    hint = statement(
        LMS + "verbs/hinted",
        "https://lms.example.edu/item/fractions/3",
        result={"extensions": {LMS + "hint-level": 2}},
        context={"extensions": {LMS + "section": "https://lms.example.edu/course/9/section/2"}},
    )
    event = read(hint, profile)
    assert isinstance(event, LearningEvent)
    assert (event.event_type, event.hint_level, event.skill_ids, event.class_id, event.profile) == (
        EventType.HINT_REQUEST,
        2,
        ("fractions",),
        "https://lms.example.edu/course/9/section/2",
        "my-lms@3",
    )
    # the built-in vocabulary still applies after the producer's own rules
    assert read(statement(ADL + "answered"), profile).event_type is EventType.ANSWER_SUBMIT  # type: ignore[union-attr]


def test_no_class_found_is_the_producers_default_class() -> None:
    event = read(statement(ADL + "answered"), my_lms())
    assert isinstance(event, LearningEvent) and event.class_id == "my-lms/unassigned"
    assert read(statement(ADL + "answered")).class_id is None


def test_a_wrong_type_in_a_strict_source_is_still_invalid() -> None:
    bad = statement(ADL + "answered", result={"extensions": {LMS + "hint-level": "two"}})
    with pytest.raises(InvalidEvent) as caught:
        normalise(orjson.dumps(bad), KEY, profile=my_lms())
    assert caught.value.path == f'result.extensions["{LMS}hint-level"]'


def test_every_loaded_profile_compiles(tmp_path: Path) -> None:
    path = tmp_path / "my-lms.yaml"
    path.write_text(GOOD)
    compiled = compile_profiles(load_profiles([path], default="my-lms"))
    assert set(compiled) == {"builtin", "my-lms"}
    before = copy.deepcopy(statement(ADL + "answered"))
    assert read(before, compiled["my-lms"]).profile == "my-lms@3"


def test_the_core_verb_table_and_the_builtin_profile_agree() -> None:
    from schemas.vocabulary import XAPI_VERB_EVENT_TYPES

    rules = builtin().verbs
    for verb, event_type in XAPI_VERB_EVENT_TYPES.items():
        unconditional = [r for r in rules[verb] if not r.activity_types and r.object_id is None]
        assert unconditional[0].event_type is event_type, verb


@pytest.mark.parametrize(
    "object_id",
    [
        "https://lms.example.edu/q/1/hint",
        "https://lms.example.edu/q/1/hints",
        "https://lms.example.edu/q/1/hint/3",
    ],
)
def test_a_tin_can_view_of_an_items_hint_is_a_hint_request_on_the_item(object_id: str) -> None:
    event = read(statement(TINCAN + "viewed", object_id))
    assert isinstance(event, LearningEvent)
    assert (event.event_type, event.item_id) == (
        EventType.HINT_REQUEST,
        "https://lms.example.edu/q/1",
    )


EDX = "https://lms.openedx.example.org"
BLOCK = "block-v1:SchoolX+MATH7+2026+type@problem+block@0f3a9c"


def test_open_edx_demand_hints_and_problem_checks_as_ralph_writes_them_share_the_item() -> None:
    hint = read(
        statement(
            ADL + "interacted",
            f"{EDX}/{BLOCK}",
            object={
                "objectType": "Activity",
                "id": f"{EDX}/{BLOCK}",
                "definition": {
                    "type": "http://adlnet.gov/expapi/activities/interaction",
                    "extensions": {
                        "https://w3id.org/xapi/acrossx/extensions/supplemental-info": 0,
                        "https://w3id.org/xapi/acrossx/extensions/total-items": 3,
                    },
                },
            },
        )
    )
    answer = read(statement(ADL + "answered", f"{EDX}/xblock/{BLOCK}"))
    assert isinstance(hint, LearningEvent) and isinstance(answer, LearningEvent)
    assert (hint.event_type, hint.item_id, hint.hint_count) == (EventType.HINT_REQUEST, BLOCK, 3)
    assert (answer.event_type, answer.item_id) == (EventType.ANSWER_SUBMIT, BLOCK)
    # an interaction that is not a problem stays a resource view
    other = read(statement(ADL + "interacted", f"{EDX}/courses/x/about"))
    assert isinstance(other, LearningEvent) and other.event_type is EventType.RESOURCE_VIEW


def test_moodle_quiz_review_is_feedback_and_question_tags_are_skills() -> None:
    tag = "http://id.tincanapi.com/activitytype/tag"
    other = [
        {
            "id": "https://moodle.example.edu/tag/index.php?tag=fractions",
            "definition": {"type": tag},
        },
        {"id": "https://moodle.example.edu/tags/ratios", "definition": {"type": tag}},
    ]
    answer = read(statement(ADL + "answered", context={"contextActivities": {"other": other}}))
    assert isinstance(answer, LearningEvent) and answer.skill_ids == ("fractions",)
    review = read(
        statement(
            TINCAN + "viewed",
            "https://moodle.example.edu/mod/quiz/review.php?attempt=4",
            context={
                "contextActivities": {
                    "parent": [{"id": "https://moodle.example.edu/mod/quiz/view.php?id=5"}]
                }
            },
        )
    )
    assert isinstance(review, LearningEvent)
    assert (review.event_type, review.item_id) == (
        EventType.FEEDBACK_VIEW,
        "https://moodle.example.edu/mod/quiz/view.php?id=5",
    )


def test_an_h5p_question_inside_a_content_has_the_content_as_its_skill() -> None:
    event = read(
        statement(ADL + "answered", "https://h5p.example.org/h5p/embed/41?subContentId=ab-12")
    )
    assert isinstance(event, LearningEvent)
    assert event.skill_ids == ("https://h5p.example.org/h5p/embed/41",)


# --- Caliper places ---------------------------------------------------------------------------

CALIPER_LMS = """\
profile: caliper-lms
version: 1
extends: builtin
fields:
  correct:
    - {from: caliper, path: [generated, extensions, com.example.lms, correct]}
  skills:
    - {from: caliper, path: [object, extensions, com.example.lms, outcomes]}
  hint_count:
    - {from: caliper, path: [object, extensions, com.example.lms, hints], on_invalid: reject}
caliper:
  - type: NavigationEvent
    actions: [NavigatedTo]
    object_id: "/results$"
    event_type: feedback_view
"""


def caliper_lms() -> CompiledProfile:
    return compile_profile(
        parse_profile(CALIPER_LMS, "caliper-lms.yaml"),
        {
            "builtin": builtin_profile(),
            "caliper-lms": parse_profile(CALIPER_LMS, "caliper-lms.yaml"),
        },
    )


def item_completed(**ext: Any) -> dict[str, Any]:
    """The Caliper 1.2 specification's AssessmentItemEvent Completed, with an LMS's extensions."""
    event: dict[str, Any] = load_fixture("caliper/v1p2/caliperEventAssessmentItemCompleted.json")
    if "correct" in ext:
        event["generated"]["extensions"] = {"com.example.lms": {"correct": ext["correct"]}}
    if "outcomes" in ext or "hints" in ext:
        lms = {k: ext[k] for k in ("outcomes", "hints") if k in ext}
        event["object"]["extensions"] = {"com.example.lms": lms}
    return event


@pytest.mark.parametrize(
    ("text", "line", "field", "reason"),
    [
        (
            CALIPER_LMS.replace(
                "path: [generated, extensions, com.example.lms, correct]", "path: []"
            ),
            6,
            "fields.correct[0].path",
            "at least 1 item",
        ),
        (
            CALIPER_LMS.replace(
                "{from: caliper, path: [generated, extensions, com.example.lms, correct]}",
                "{from: result_extension, key: https://lms.example.edu/xapi/correct}",
            ),
            5,
            "fields.correct",
            "correct cannot come from result_extension",
        ),
        (
            CALIPER_LMS.replace("path: [object, extensions, com.example.lms, outcomes]", "key: x"),
            8,
            "fields.skills[0].key",
            "Extra inputs",
        ),
        (CALIPER_LMS.replace('"/results$"', '"/results($"'), 14, "caliper[0].object_id", "regular"),
    ],
)
def test_caliper_source_and_rule_errors_name_file_line_and_field(
    text: str, line: int, field: str, reason: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile(text, "caliper-lms.yaml")
    problems = caught.value.problems
    assert ("caliper-lms.yaml", line, field) in [(f, n, name) for f, n, name, _ in problems], (
        problems
    )
    assert any(reason in why for _, _, _, why in problems), problems


def test_a_producer_profile_reads_correctness_and_skills_from_caliper_places() -> None:
    event = read(item_completed(correct=False, outcomes=["o-12", "o-14"], hints=3), caliper_lms())
    assert isinstance(event, LearningEvent)
    assert (event.event_type, event.correct, event.skill_ids, event.hint_count) == (
        EventType.ANSWER_SUBMIT,
        False,
        ("o-12", "o-14"),
        3,
    )
    assert event.profile == "caliper-lms@1"
    # the built-in profile knows nothing of the LMS's extension
    plain = read(item_completed(correct=False, outcomes=["o-12"]))
    assert (plain.correct, plain.skill_ids) == (None, ())  # type: ignore[union-attr]


def test_a_caliper_value_of_the_wrong_type_is_passed_over_unless_its_source_is_strict() -> None:
    event = read(item_completed(correct="yes", outcomes=[7]), caliper_lms())
    assert (event.correct, event.skill_ids) == (None, ())  # type: ignore[union-attr]
    with pytest.raises(InvalidEvent) as caught:
        normalise(orjson.dumps(item_completed(hints="three")), KEY, profile=caliper_lms())
    assert caught.value.path == 'object.extensions["com.example.lms"].hints'


def test_caliper_sources_cost_xapi_statements_nothing() -> None:
    """A profile's ``caliper`` sources are kept apart from the ones xAPI statements read."""
    profile = caliper_lms()
    assert {name for name in profile.caliper_fields} == {"correct", "skills", "hint_count"}
    for name in ("skills", "class_", "session", "hint_count"):
        assert all(source.kind != "cal" for source in getattr(profile, name))
    answer = read(statement(ADL + "answered"), profile)
    assert isinstance(answer, LearningEvent) and answer.skill_ids == ()


def test_the_builtin_profile_reads_caliper_learning_objectives_as_skills() -> None:
    """The Caliper specification's place for what an item exercises: LearningObjective entities
    or their IRIs in the object's ``learningObjectives``."""
    event = item_completed()
    event["object"]["learningObjectives"] = [
        {"id": "https://example.edu/outcomes/ratios", "type": "LearningObjective"},
        "https://example.edu/outcomes/fractions",
    ]
    read_event = read(event)
    assert isinstance(read_event, LearningEvent)
    assert read_event.skill_ids == (
        "https://example.edu/outcomes/ratios",
        "https://example.edu/outcomes/fractions",
    )


def test_canvas_quiz_results_page_is_feedback_and_other_pages_are_resources() -> None:
    """Canvas shows a quiz submission's results at /courses/<c>/quizzes/<q>/history."""
    event: dict[str, Any] = load_fixture(
        "caliper/v1p2/caliperEventNavigationNavigatedToWebPage.json"
    )
    results = copy.deepcopy(event)
    results["object"]["id"] = (
        "https://canvas.example.edu/courses/565/quizzes/2223/history?quiz_submission_id=9"
    )
    assert read(results).event_type is EventType.FEEDBACK_VIEW  # type: ignore[union-attr]
    assert read(event).event_type is EventType.RESOURCE_VIEW  # type: ignore[union-attr]
    # a producer's conditional rule comes before the built-in ones
    mine = copy.deepcopy(event)
    mine["object"]["id"] = "https://lms.example.edu/quiz/4/results"
    assert read(mine, caliper_lms()).event_type is EventType.FEEDBACK_VIEW  # type: ignore[union-attr]
    assert read(mine).event_type is EventType.RESOURCE_VIEW  # type: ignore[union-attr]


def test_an_h5p_answer_change_is_unmodelled_not_a_resource_view() -> None:
    """H5P sends ``interacted`` on a question when the learner changes an answer (not a hint,
    not a read); ``interacted`` elsewhere is still a resource view."""
    question = "https://h5p.example.org/h5p/embed/41?subContentId=8c1f0e2a-77d2-4b8e-a2b7-1c1b"
    stored = read(statement(ADL + "interacted", question))
    assert isinstance(stored, UnmodelledEvent)
    assert (stored.verb, stored.profile) == (ADL + "interacted", builtin().label)
    elsewhere = read(statement(ADL + "interacted", "https://lms.example.edu/simulation/2"))
    assert elsewhere.event_type is EventType.RESOURCE_VIEW  # type: ignore[union-attr]

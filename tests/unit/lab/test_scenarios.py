"""Scenario scoring, and the scripted streams as each producer style writes them."""

from __future__ import annotations

import pytest

from inference.lab.scenarios.learners import SCENARIOS, Variant, cohort
from inference.lab.scenarios.scoring import (
    LearnerOutcome,
    floors,
    format_table,
    judge,
    report,
    summarise,
)
from inference.lab.scenarios.script import Kind
from inference.lab.scenarios.styles import STYLES
from inference.runtime import LearnerModel
from schemas.events import EventType, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise
from tutorstream.scenarios.runner import build_suite, run_offline

pytestmark = pytest.mark.unit


def _outcome(
    interventions: tuple[tuple[int, str], ...],
    *,
    onset: int | None = 5,
    intended: tuple[str, ...] = ("gaming", "overconfidence"),
    scenario: str = "rapid_guessing",
    variant: str = "v",
    style: str = "s",
) -> LearnerOutcome:
    return LearnerOutcome("l", scenario, variant, style, intended, onset, 40, 0, interventions)


def test_detection_counts_only_intended_states_inside_the_window() -> None:
    assert judge(_outcome(((5, "gaming"),))).delay == 0
    assert judge(_outcome(((15, "gaming"),))).delay == 10  # the window's last statement
    assert not judge(_outcome(((16, "gaming"),))).detected  # one past it
    assert not judge(_outcome(((4, "gaming"),))).detected  # before the onset
    assert judge(_outcome(((4, "gaming"),))).before_onset == 1
    # a documented equivalent counts; another state does not
    assert judge(_outcome(((9, "overconfidence"),))).delay == 4
    wrong_state = judge(_outcome(((6, "anchoring"),)))
    assert not wrong_state.detected and wrong_state.states == ("anchoring",)
    # the first intended state in the window gives the delay
    assert judge(_outcome(((6, "anchoring"), (8, "gaming"), (12, "gaming")))).delay == 3
    assert judge(_outcome(((6, "gaming"),)), within=0).detected is False


def test_a_stream_without_its_onset_is_not_detected_and_controls_are_judged_on_flags() -> None:
    assert not judge(_outcome(((3, "gaming"),), onset=None)).detected
    control = judge(_outcome(((3, "overconfidence"),), onset=None, intended=()))
    assert control.flagged and not control.detected
    assert not judge(_outcome((), onset=None, intended=())).flagged


def test_summary_rates_medians_and_floors() -> None:
    hits = [_outcome(((5 + d, "gaming"),), variant="v0") for d in (0, 2, 4, 6)]
    misses = [_outcome(((30, "gaming"),))]
    controls = [_outcome((), onset=None, intended=(), scenario="engaged") for _ in range(49)] + [
        _outcome(((2, "overconfidence"),), onset=None, intended=(), scenario="engaged")
    ]
    rows = summarise(hits + misses + controls)
    behaviour, control = rows
    assert (behaviour.learners, behaviour.detected, behaviour.median_delay) == (5, 4, 3.0)
    assert behaviour.rate == pytest.approx(0.8) and not behaviour.met
    assert behaviour.variants == {"v0": [4, 4], "v": [1, 0]}
    assert (control.learners, control.flagged, control.rate) == (50, 1, 0.02)
    assert control.met and control.states == {"overconfidence": 1}
    verdict = floors(rows)
    assert not verdict["detection"]["met"] and verdict["detection"]["failing"] == [
        "rapid_guessing/s"
    ]
    assert verdict["controls"]["met"]
    text = format_table(rows)
    assert "BELOW FLOOR" in text and "ABOVE CEILING" not in text
    assert report(rows, model="m@1")["rows"][0]["rate"] == pytest.approx(0.8)


def test_every_scenario_records_its_onset_and_is_reproducible() -> None:
    for scenario in SCENARIOS:
        variant = scenario.variants[0]
        first = cohort(scenario, variant, 3, seed=1, prefix="x-")
        assert first == cohort(scenario, variant, 3, seed=1, prefix="x-")
        for learner in first:
            assert (learner.onset_act is None) == learner.control
            assert [a.at for a in learner.acts] == sorted(a.at for a in learner.acts)


def test_wheel_spinning_onset_is_the_tenth_item_without_three_first_answers_right() -> None:
    scenario = next(s for s in SCENARIOS if s.name == "wheel_spinning")
    for learner in cohort(scenario, scenario.variants[0], 5, seed=3, prefix=""):
        assert learner.onset_act is not None
        onset = learner.acts[learner.onset_act]
        answers = [
            a
            for a in learner.acts[: learner.onset_act + 1]
            if a.kind is Kind.ANSWER and a.attempt == 1
        ]
        on_skill = [a for a in answers if a.skill == onset.skill]
        assert onset.kind is Kind.ANSWER and len(on_skill) == 10
        run = best = 0
        for a in on_skill:
            run = run + 1 if a.correct else 0
            best = max(best, run)
        assert best < 3


def test_the_reference_style_maps_every_act_and_keeps_the_retry_grammar() -> None:
    style = next(s for s in STYLES if s.name == "tutorstream")
    scenario = next(s for s in SCENARIOS if s.name == "resubmission")
    key = b"k"
    for attempted in (True, False):
        variant = Variant("v", attempted_before_retry=attempted, feedback_views=True)
        (learner,) = cohort(scenario, variant, 1, seed=2, prefix="")
        statements, onset = style.statements(learner)
        events = [normalise(s.payload, key)[0] for s in statements]
        assert [e.event_id for e in events] == [s.event_id for s in statements]
        assert onset is not None and events[onset].event_type is EventType.ANSWER_SUBMIT
        starts = sum(e.event_type is EventType.PROBLEM_START for e in events)
        retries = sum(a.kind is Kind.START and a.retry for a in learner.acts)
        items = sum(a.kind is Kind.START and not a.retry for a in learner.acts)
        assert starts == items + (retries if attempted else 0)
        answers = [e for e in events if e.event_type is EventType.ANSWER_SUBMIT]
        assert all(e.skill_ids and e.response_hash and e.class_id for e in answers)


def test_other_styles_write_valid_records_in_their_own_vocabulary() -> None:
    """Every style's records are valid JSON in its format; today only some verbs are read."""
    suite = build_suite(per_scenario=2, per_control=2, seed=5)
    assert suite.left_out["openedx"]["resubmission"] == ["responses"]
    assert "hint_abuse" in suite.left_out["canvas"]
    refused: dict[str, set[str]] = {}
    for rendered in suite.rendered:
        for statement in rendered.statements:
            try:
                normalise(statement.payload, b"k")
            except InvalidEvent as err:
                refused.setdefault(rendered.style.name, set()).add(err.reason.split(";")[0])
    # the records themselves are valid: what is refused is only vocabulary not mapped yet
    for reasons in refused.values():
        assert all("is not one tutorstream understands" in r for r in reasons), reasons


def test_offline_run_raises_interventions_on_the_learners_statements() -> None:
    """An xAPI style and a Caliper style, through the processor and the next-item policy."""
    styles = [s for s in STYLES if s.name in ("tutorstream", "canvas")]
    suite = build_suite(per_scenario=2, per_control=2, seed=6, styles=styles)
    outcomes, runs = run_offline(suite, LearnerModel.load(intra_op_threads=1))
    assert len(outcomes) == len(suite.rendered)
    assert not runs["tutorstream"].dead_letters and not runs["canvas"].dead_letters
    by_name = {r.learner.learner: r for r in suite.rendered}
    raised = [(o, i) for o in outcomes for i, _ in o.interventions]
    assert raised  # hint abusers at least
    for outcome, index in raised:
        assert 0 <= index < len(by_name[outcome.learner].statements)


def test_each_style_is_read_with_its_skills_correctness_and_hints_through_its_profile() -> None:
    """The built-in profile, or the producer profile a style's integrator writes, reads the
    skill from the style's own place and the correctness on every answer (Canvas's through a
    ``caliper`` source), and its hints as hint requests; H5P's answer changes are unmodelled."""
    from tutorstream.scenarios.runner import style_profile

    scenarios = [s for s in SCENARIOS if s.name in ("hint_abuse", "wheel_spinning")]
    suite = build_suite(per_scenario=2, per_control=0, seed=7, scenarios=scenarios)
    # per style: the script's skill -> the skill ids read from the answers
    answers: dict[str, dict[str, set[tuple[str, ...]]]] = {}
    hints: dict[str, list[int]] = {}
    unmodelled: dict[str, set[str]] = {}
    for rendered in suite.rendered:
        style = rendered.style
        profile = style_profile(style)
        for statement in rendered.statements:
            act = rendered.learner.acts[statement.act]
            skipped: list[UnmodelledEvent] = []
            events = normalise(statement.payload, b"k", profile=profile, unmodelled=skipped)
            if not events:
                unmodelled.setdefault(style.name, set()).add(skipped[0].verb)
                continue
            (event,) = events
            if act.kind is Kind.ANSWER:
                assert event.event_type is EventType.ANSWER_SUBMIT
                assert event.correct is act.correct, (style.name, event)
                read = answers.setdefault(style.name, {}).setdefault(act.skill, set())
                read.add(event.skill_ids)
            elif act.kind is Kind.HINT:
                is_hint = event.event_type is EventType.HINT_REQUEST
                hints.setdefault(style.name, []).append(int(is_hint))
    assert sorted(answers) == ["canvas", "h5p", "moodle", "openedx", "tincan", "tutorstream"]
    for by_skill in answers.values():
        # one skill id per scripted skill, never none, and distinct skills kept apart
        assert all(len(ids) == 1 and () not in ids for ids in by_skill.values()), by_skill
        assert len({next(iter(ids)) for ids in by_skill.values()}) == len(by_skill)
    assert {name: min(found) for name, found in hints.items()} == {
        "tutorstream": 1,
        "tincan": 1,
        "openedx": 1,
    }
    # H5P sends nothing for a tip, so hint abuse is not written in it; its `interacted` (an
    # answer changed before it is checked) is stored unmodelled, not read as a resource view
    assert "hints" in suite.left_out["h5p"]["hint_abuse"]
    assert unmodelled == {"h5p": {"http://adlnet.gov/expapi/verbs/interacted"}}

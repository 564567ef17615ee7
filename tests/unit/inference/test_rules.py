"""The literature-defined rules beside the model (inference.rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inference.rules import BehaviourRules, RuleMemory
from schemas.events import EventType, LearningEvent, SourceFormat

pytestmark = pytest.mark.unit
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _event(kind: EventType, at: float, item: str = "i1", **rest: object) -> LearningEvent:
    return LearningEvent(
        event_id=f"e{at}-{kind}",
        learner_id="l1",
        item_id=item,
        event_type=kind,
        timestamp=T0 + timedelta(seconds=at),
        source=SourceFormat.NATIVE,
        **rest,  # type: ignore[arg-type]
    )


def _answer(
    at: float, item: str, correct: bool, response: str = "r", **rest: object
) -> LearningEvent:
    return _event(
        EventType.ANSWER_SUBMIT, at, item, correct=correct, response_hash=response, **rest
    )


def test_same_wrong_response_twice_again_is_anchoring_whatever_starts_between() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    states = []
    for n in range(3):
        rules.observe(memory, _event(EventType.PROBLEM_START, 10 * n))
        states.append(rules.observe(memory, _answer(10 * n + 5, "i1", False, "x")).finding)
    assert states[0] is None and states[1] is None
    assert states[2] is not None and states[2].state == "anchoring"


def test_revised_wrong_answers_are_not_anchoring() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    found = [
        rules.observe(memory, _answer(30.0 * n, "i1", False, f"r{n}")).finding for n in range(4)
    ]
    assert found == [None] * 4


@pytest.mark.parametrize(
    ("levels", "count"),
    [(True, True), (False, True), (False, False)],
    ids=["levels", "count", "none"],
)
def test_hints_clicked_through_to_the_bottom_out_is_gaming(levels: bool, count: bool) -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    found = None
    for level in (1, 2, 3):
        extra: dict[str, object] = {}
        if levels:
            extra["hint_level"] = level
        if count:
            extra["hint_count"] = 3
        found = rules.observe(memory, _event(EventType.HINT_REQUEST, level * 1.5, **extra)).finding
        if level < 3:
            assert found is None
    assert found is not None and found.state == "gaming"


def test_hints_read_before_the_next_are_not_gaming() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    found = [
        rules.observe(memory, _event(EventType.HINT_REQUEST, 30.0 * n, hint_count=3)).finding
        for n in (1, 2, 3)
    ]
    assert found == [None] * 3


def test_ten_opportunities_without_three_in_a_row_is_wheel_spinning() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    pattern = [True, True, False] * 4
    found = [
        rules.observe(memory, _answer(n, f"i{n}", ok, skill_ids=("s",))).finding
        for n, ok in enumerate(pattern[:10])
    ]
    assert all(f is None for f in found[:9])
    assert found[9] is not None and found[9].state == "wheel_spinning"


def test_three_in_a_row_within_ten_is_mastery_and_retries_are_not_opportunities() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    found = []
    for n in range(12):
        ok = n in (4, 5, 6)
        found.append(rules.observe(memory, _answer(2 * n, f"i{n}", ok, skill_ids=("s",))).finding)
        # a retry of the same item is not another opportunity
        rules.observe(memory, _answer(2 * n + 1, f"i{n}", True, "right", skill_ids=("s",)))
    assert found == [None] * 12


def test_quick_and_right_is_not_overconfidence_but_often_wrong_is() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    for n in range(10):
        vetoes = rules.observe(memory, _answer(n, f"i{n}", n not in (3, 7))).vetoes
    assert "overconfidence" in vetoes
    for n in range(10, 13):
        vetoes = rules.observe(memory, _answer(n, f"i{n}", False)).vetoes
    assert "overconfidence" not in vetoes


def test_confirmation_needs_a_resource_read_after_a_wrong_answer() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    assert "confirmation" in rules.observe(memory, _answer(1, "i1", False)).vetoes
    read = rules.observe(memory, _event(EventType.RESOURCE_VIEW, 2, "page"))
    assert "confirmation" not in read.vetoes


def test_memory_round_trips() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    rules.observe(memory, _answer(1, "i1", False, skill_ids=("s",)))
    rules.observe(memory, _event(EventType.HINT_REQUEST, 2, hint_level=1, hint_count=3))
    assert RuleMemory.from_dict(memory.to_dict()) == memory
    assert RuleMemory.from_dict(None) == RuleMemory()


def test_no_state_of_the_model_before_a_first_answer() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    first = rules.observe(memory, _event(EventType.HINT_REQUEST, 0))
    assert first.vetoes == {
        "anchoring",
        "gaming",
        "wheel_spinning",
        "overconfidence",
        "confirmation",
    }
    assert "gaming" not in rules.observe(memory, _answer(5, "i1", True)).vetoes


def test_wheel_spinning_needs_the_definition_where_skills_are_known() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    assert (
        "wheel_spinning" in rules.observe(memory, _answer(1, "i1", False, skill_ids=("s",))).vetoes
    )
    unknown = RuleMemory()
    assert "wheel_spinning" not in rules.observe(unknown, _answer(1, "i1", False)).vetoes


def test_anchoring_needs_a_wrong_response_given_again_where_responses_are_known() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    assert "anchoring" in rules.observe(memory, _answer(1, "i1", False, "x")).vetoes
    assert "anchoring" not in rules.observe(memory, _answer(2, "i1", False, "x")).vetoes
    bare = LearningEvent(
        event_id="n1",
        learner_id="l1",
        item_id="i2",
        event_type=EventType.ANSWER_SUBMIT,
        timestamp=T0,
        correct=False,
        source=SourceFormat.NATIVE,
    )
    assert "anchoring" not in rules.observe(RuleMemory(), bare).vetoes


def test_resubmission_after_a_resource_is_left_to_the_model() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    rules.observe(memory, _answer(1, "i1", False, "x"))
    found = []
    for n in range(2):
        rules.observe(memory, _event(EventType.RESOURCE_VIEW, 10 * n + 5, "page"))
        found.append(rules.observe(memory, _answer(10 * n + 9, "i1", False, "x")).finding)
    assert found == [None, None]


def test_rapid_wrong_answers_without_durations_are_rapid_guessing() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    rules.observe(memory, _answer(0, "i0", True))
    found = []
    for n in range(1, 4):  # each answer two seconds after the previous one, wrong
        found.append(rules.observe(memory, _answer(2.0 * n, f"i{n}", False, f"g{n}")).finding)
    assert found[:2] == [None, None]
    assert found[2] is not None and (found[2].state, found[2].rule) == ("gaming", "rapid_guessing")


def test_quick_right_answers_are_fluency_not_guessing() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    found = [
        rules.observe(memory, _answer(n, f"i{n}", True, duration_s=2.0)).finding for n in range(6)
    ]
    assert found == [None] * 6


def test_an_answer_that_came_out_of_order_is_not_taken_as_rapid() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    rules.observe(memory, _answer(100, "i0", True))
    found = [rules.observe(memory, _answer(50 - n, f"i{n + 1}", False, f"g{n}")) for n in range(4)]
    assert [f.finding for f in found] == [None] * 4

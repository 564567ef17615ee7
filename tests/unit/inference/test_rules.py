"""The literature-defined rules beside the model (inference.rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inference.rules import BehaviourRules, Finding, RuleMemory
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
    pattern = [True, False, False, True] * 3
    found = [
        rules.observe(memory, _answer(60.0 * n, f"i{n}", ok, skill_ids=("s",))).finding
        for n, ok in enumerate(pattern[:10])
    ]
    assert all(f is None for f in found[:9])
    assert found[9] is not None and found[9].state == "wheel_spinning"


def test_three_in_a_row_within_ten_is_mastery_and_retries_are_not_opportunities() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    found = []
    for n in range(12):
        ok = n in (4, 5, 6)
        answer = _answer(60.0 * n, f"i{n}", ok, skill_ids=("s",))
        found.append(rules.observe(memory, answer).finding)
        # a retry of the same item is not another opportunity
        rules.observe(memory, _answer(60.0 * n + 30, f"i{n}", True, "right", skill_ids=("s",)))
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
    assert "anchoring" in rules.observe(memory, _answer(30, "i1", False, "x")).vetoes
    assert "anchoring" not in rules.observe(memory, _answer(90, "i1", False, "x")).vetoes
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


def test_a_lucky_guess_among_rapid_answers_does_not_hide_guessing() -> None:
    """Two of three rapid answers right is still chance for a guesser (p = 0.16 at 25%)."""
    rules, memory = BehaviourRules(), RuleMemory()
    found = []
    for n, ok in enumerate((True, True, False)):
        rules.observe(memory, _event(EventType.PROBLEM_START, 10.0 * n, f"i{n}"))
        found.append(rules.observe(memory, _answer(10.0 * n + 1.5, f"i{n}", ok, f"g{n}")).finding)
    assert found[:2] == [None, None]
    assert found[2] is not None and found[2].rule == "rapid_guessing"


def test_rapid_guessing_is_found_again_after_a_lucky_streak() -> None:
    """The definition holds on any rapid answer while it holds, not only at its third one."""
    rules, memory = BehaviourRules(), RuleMemory()
    outcomes = (True, True, True, False, False)
    found = [
        rules.observe(memory, _answer(n, f"i{n}", ok, f"g{n}", duration_s=1.0)).finding
        for n, ok in enumerate(outcomes)
    ]
    assert found[:4] == [None] * 4  # three of three, then three of four right: not chance
    assert found[4] is not None and found[4].rule == "rapid_guessing"


def test_fluent_quick_answers_with_one_slip_are_not_guessing() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    found = [
        rules.observe(memory, _answer(n, f"i{n}", ok, f"g{n}", duration_s=2.0)).finding
        for n, ok in enumerate((True, True, True, False))
    ]
    assert found == [None] * 4


def test_answers_sent_at_one_instant_are_not_rapid() -> None:
    """A quiz page's questions submitted together share one timestamp and say no time."""
    rules, memory = BehaviourRules(), RuleMemory()
    rules.observe(memory, _event(EventType.PROBLEM_START, 0, "quiz"))
    found = [rules.observe(memory, _answer(60, f"q{n}", False, f"g{n}")) for n in range(5)]
    assert [f.finding for f in found] == [None] * 5


def test_the_threshold_depends_on_where_the_time_runs_from() -> None:
    """Four seconds after opening an item is an answer read; four seconds after answering
    another one, with no start between, also holds moving on to it: a rapid guess."""
    bare, started = RuleMemory(), RuleMemory()
    rules = BehaviourRules()
    found_bare, found_started = [], []
    for n in range(4):
        found_bare.append(rules.observe(bare, _answer(4.0 * n, f"i{n}", False, f"g{n}")).finding)
        rules.observe(started, _event(EventType.PROBLEM_START, 10.0 * n, f"i{n}"))
        answer = _answer(10.0 * n + 4, f"i{n}", False, f"g{n}")
        found_started.append(rules.observe(started, answer).finding)
    assert found_started == [None] * 4
    assert any(f is not None and f.rule == "rapid_guessing" for f in found_bare)


def test_a_rapid_wrong_answer_is_no_evidence_of_anchoring() -> None:
    rules, memory = BehaviourRules(), RuleMemory()

    def bare(at: float, item: str, correct: bool) -> LearningEvent:
        return _event(EventType.ANSWER_SUBMIT, at, item, correct=correct)

    rules.observe(memory, bare(0, "i0", True))
    considered = rules.observe(memory, bare(40, "i1", False))
    guessed = rules.observe(memory, bare(41, "i2", False))
    assert "anchoring" not in considered.vetoes
    assert "anchoring" in guessed.vetoes


def _slip(rules: BehaviourRules, memory: RuleMemory, at: float, item: str, dwell: float) -> None:
    rules.observe(memory, _answer(at, item, False, "w"))
    rules.observe(memory, _event(EventType.FEEDBACK_VIEW, at + 1, item, duration_s=dwell))
    rules.observe(memory, _answer(at + 10, item, True, "r"))


def test_a_wrong_answer_put_right_after_reading_the_feedback_is_a_slip() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    for n in range(7):
        rules.observe(memory, _answer(100.0 * n, f"i{n}", True))
    for n in range(7, 10):
        _slip(rules, memory, 100.0 * n, f"i{n}", dwell=6.0)
    assert "overconfidence" in rules.observe(memory, _answer(2000, "j", True)).vetoes


def test_a_wrong_answer_put_right_with_the_feedback_skipped_is_no_slip() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    for n in range(7):
        rules.observe(memory, _answer(100.0 * n, f"i{n}", True))
    for n in range(7, 10):
        _slip(rules, memory, 100.0 * n, f"i{n}", dwell=1.0)
    assert "overconfidence" not in rules.observe(memory, _answer(2000, "j", True)).vetoes


def _practise(
    rules: BehaviourRules, memory: RuleMemory, outcomes: str, *, fixed: bool
) -> list[Finding | None]:
    """First answers on one skill (``r`` right, ``w`` wrong), each wrong one retried."""
    found: list[Finding | None] = []
    for n, mark in enumerate(outcomes):
        first = _answer(100.0 * n, f"i{n}", mark == "r", f"a{n}", skill_ids=("s",))
        found.append(rules.observe(memory, first).finding)
        if mark == "w":
            retry = _answer(100.0 * n + 50, f"i{n}", fixed, f"b{n}", skill_ids=("s",))
            rules.observe(memory, retry)
    return found


def test_wheel_spinning_holds_at_fifteen_opportunities_whatever_was_put_right() -> None:
    rules, memory = BehaviourRules(), RuleMemory()
    found = _practise(rules, memory, "rwwrwrwwrw" + "rwwrw", fixed=True)
    assert all(f is None for f in found[:14])
    assert getattr(found[14], "state", None) == "wheel_spinning"


def test_learning_from_feedback_is_productive_persistence() -> None:
    rules, stuck, learning = BehaviourRules(), RuleMemory(), RuleMemory()
    pattern = "rwwrwrwwrw"
    spun = _practise(rules, stuck, pattern, fixed=False)
    kept = _practise(rules, learning, pattern, fixed=True)
    assert getattr(spun[9], "state", None) == "wheel_spinning"
    assert kept == [None] * 10


def test_memory_of_an_older_release_loads() -> None:
    older = {
        "i": {},
        "s": ["i1"],
        "k": {"s": [4, 1, 0]},
        "h": [None, 0, -1, True, 0.0],
        "r": [1, 0],
        "n": [2, ["s"], "i1", True],
        "q": [[0, 1], 10.0],
        "w": [True, False],
    }
    memory = RuleMemory.from_dict(older)
    assert memory.skills == {"s": [4, 1, 0, 0, 0, 0]}
    assert (memory.after_start, memory.slip_pending, memory.fix_item) == (False, False, None)
    assert RuleMemory.from_dict(memory.to_dict()) == memory


def test_a_learner_who_reads_the_feedback_on_wrong_answers_is_not_overconfident() -> None:
    def run(dwell: float) -> frozenset[str]:
        rules, memory = BehaviourRules(), RuleMemory()
        vetoes: frozenset[str] = frozenset()
        for n in range(6):  # wrong first answers, each retried wrong once more
            for k, response in enumerate(("w1", "w2")):
                at = 200.0 * n + 90 * k
                vetoes = rules.observe(memory, _answer(at, f"i{n}", False, response)).vetoes
                read = _event(EventType.FEEDBACK_VIEW, at + 30, f"i{n}", duration_s=dwell)
                rules.observe(memory, read)
        return vetoes

    assert "overconfidence" in run(dwell=12.0)
    assert "overconfidence" not in run(dwell=1.0)

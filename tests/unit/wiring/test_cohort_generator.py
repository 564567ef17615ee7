from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import EventType, SourceFormat
from schemas.normalise import normalise
from tutorstream.cohort import class_stream, generate_cohort

pytestmark = pytest.mark.unit

KEY = b"unit-test-pseudonym-key-0123456789abcdef"


def test_the_same_seed_gives_the_same_class_and_another_seed_another() -> None:
    first = list(generate_cohort(learners=20, events=2000, seed=4))

    assert first == list(generate_cohort(learners=20, events=2000, seed=4))
    assert first != list(generate_cohort(learners=20, events=2000, seed=5))


@settings(max_examples=25, deadline=None)
@given(
    learners=st.integers(min_value=1, max_value=60),
    events=st.integers(min_value=0, max_value=400),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_generated_event_normalises_in_time_order(
    learners: int, events: int, seed: int
) -> None:
    generated = list(generate_cohort(learners, events, seed))
    normalised = [normalise(event, KEY)[0] for event in generated]

    assert len(generated) == events
    assert len({e["event_id"] for e in generated}) == events
    assert [e.timestamp for e in normalised] == sorted(e.timestamp for e in normalised)
    assert all(e.source is SourceFormat.NATIVE for e in normalised)
    assert len({e["learner_id"] for e in generated}) <= learners
    for raw, event in zip(generated, normalised, strict=True):
        assert event.learner_id != raw["learner_id"]


def test_a_class_works_problems_with_hints_feedback_and_attempts() -> None:
    start = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
    generated = list(generate_cohort(learners=45, events=6000, seed=9, start=start))
    by_learner: dict[str, list[dict[str, object]]] = defaultdict(list)
    for event in generated:
        by_learner[str(event["learner_id"])].append(event)

    assert len(by_learner) == 45
    assert len({e["class_id"] for e in generated}) == 2
    assert generated[0]["timestamp"] == "2025-03-03T09:30:00.000Z"
    assert {e["event_type"] for e in generated} >= {
        EventType.PROBLEM_START.value,
        EventType.ANSWER_SUBMIT.value,
        EventType.HINT_REQUEST.value,
        EventType.FEEDBACK_VIEW.value,
        EventType.PROBLEM_COMPLETE.value,
    }
    answers = [e for e in generated if e["event_type"] == "answer_submit"]
    assert all(int(str(e["attempt"])) >= 1 and "response" in e for e in answers)
    assert 0.2 < sum(bool(e["correct"]) for e in answers) / len(answers) < 0.9
    hints = [e for e in generated if e["event_type"] == "hint_request"]
    assert all(1 <= int(str(e["hint_level"])) <= int(str(e["hint_count"])) for e in hints)
    # Each learner's events stay in their own order: their sequence numbers only grow.
    for events in by_learner.values():
        numbers = [int(str(e["event_id"]).rsplit("-", 1)[1]) for e in events]
        assert numbers == sorted(numbers)


@pytest.mark.parametrize(("learners", "events"), [(0, 10), (5, -1)])
def test_impossible_sizes_are_refused(learners: int, events: int) -> None:
    with pytest.raises(ValueError, match=r"learner|events"):
        list(generate_cohort(learners, events, seed=1))


def test_a_class_stream_goes_on_course_after_course_in_the_same_classes() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    stream = class_stream(learners=35, seed=11, start=start, course_events=300)
    events = [next(stream) for _ in range(1000)]

    # the first course is the generated class of that size; the stream does not end with it
    assert events[:300] == list(generate_cohort(35, 300, 11, start=start))
    assert len({e["event_id"] for e in events}) == 1000
    # later courses bring learners of their own into the classes of the first seed
    first_seed = {"class-bkt-11-000", "class-bkt-11-001"}  # 35 learners: two classes of 30
    assert {e["class_id"] for e in events} <= first_seed
    assert {e["class_id"] for e in events[300:]} & {e["class_id"] for e in events[:300]}
    assert {e["learner_id"] for e in events[300:600]}.isdisjoint(
        {e["learner_id"] for e in events[:300]}
    )
    stamps = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in events]
    assert stamps == sorted(stamps) and stamps[0] == start


def test_a_class_stream_needs_a_learner_and_a_course() -> None:
    with pytest.raises(ValueError, match="at least one learner"):
        next(class_stream(learners=0, seed=1, start=datetime(2026, 3, 2, tzinfo=UTC)))

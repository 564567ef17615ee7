import math
from typing import Any

import numpy as np
import pytest

from inference.features import (
    EVENT_FEATURE_INDEX,
    EVENT_FEATURES,
    QUERY_FEATURES,
    FeatureExtractor,
    FeatureStore,
    ItemNorms,
    LearnerFeatureState,
)
from inference.lab.dataset import compute_features
from inference.lab.simulator import CohortConfig, EventColumns, simulate_cohort
from schemas.events import EventType, LearningEvent, ResourceRelation, SourceFormat

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def cohort() -> EventColumns:
    return simulate_cohort(
        CohortConfig(family="irt", n_learners=6, seed=11, problems_per_learner=40)
    )


def test_fast_path_and_learning_event_path_give_identical_features(cohort: EventColumns) -> None:
    fast, fast_query, nxt = compute_features(cohort)
    store = FeatureStore()
    objects = cohort.objects
    for i in cohort.time_order().tolist():
        event = cohort.learning_event(i)
        row = store.update(event)
        np.testing.assert_array_equal(row, fast[i], err_msg=f"row {i} {event.event_type}")
        j = int(nxt[i])
        if j >= 0:
            o = int(cohort.obj[j])
            q = store.query(event.learner_id, objects.object_ids[o], objects.skill_ids[o])
            np.testing.assert_array_equal(q, fast_query[i], err_msg=f"query at row {i}")
    assert fast.shape == (len(cohort), len(EVENT_FEATURES))
    assert fast_query.shape == (len(cohort), len(QUERY_FEATURES))
    assert np.isfinite(fast).all() and np.abs(fast).max() <= 1.0
    assert np.isfinite(fast_query).all() and np.abs(fast_query).max() <= 1.0


def test_feature_states_survive_serialisation_round_trip(cohort: EventColumns) -> None:
    store = FeatureStore()
    events = [cohort.learning_event(i) for i in cohort.time_order().tolist()]
    half = len(events) // 2
    for event in events[:half]:
        store.update(event)
    # Round-trip every state through bytes, then continue both copies on the same events.
    copy = FeatureStore()
    copy.learners = {
        k: LearnerFeatureState.from_bytes(v.to_bytes()) for k, v in store.learners.items()
    }
    copy.items = {k: ItemNorms.from_bytes(v.to_bytes()) for k, v in store.items.items()}
    assert copy.learners == store.learners and copy.items == store.items
    for event in events[half:]:
        np.testing.assert_array_equal(copy.update(event), store.update(event))
    assert copy.learners == store.learners


def _event(kind: EventType, t: int, **kw: Any) -> LearningEvent:
    from datetime import UTC, datetime, timedelta

    base = datetime(2025, 3, 1, 9, tzinfo=UTC)
    return LearningEvent(
        event_id=f"e{t}",
        learner_id="l1",
        item_id=kw.pop("item_id", "item-a"),
        skill_ids=kw.pop("skill_ids", ("s1",)),
        event_type=kind,
        timestamp=base + timedelta(seconds=t),
        source=SourceFormat.NATIVE,
        **kw,
    )


def test_features_of_a_hand_built_sequence() -> None:
    fx = FeatureExtractor()
    learner = LearnerFeatureState()
    norms = ItemNorms()
    f = EVENT_FEATURE_INDEX
    fx.update(learner, norms, _event(EventType.PROBLEM_START, 0))
    wrong = fx.update(
        learner,
        norms,
        _event(
            EventType.ANSWER_SUBMIT, 2, correct=False, response_hash="aa", attempt=1, duration_s=2.0
        ),
    )
    assert wrong[f["answer_wrong"]] == 1.0
    # 2 s against the 30 s prior mean is under 10% of the mean: a rapid guess.
    assert wrong[f["rapid_guess"]] == 1.0
    assert wrong[f["log_time_ratio"]] == pytest.approx(math.log(2.0 / 30.0) / 3.0, abs=1e-6)
    res = fx.update(
        learner,
        None,
        _event(
            EventType.RESOURCE_VIEW,
            5,
            item_id="res-1",
            duration_s=20.0,
            resource_relation=ResourceRelation.SUPPORTS,
        ),
    )
    assert res[f["resource_supports_after_wrong"]] == 1.0
    again = fx.update(
        learner,
        norms,
        _event(
            EventType.ANSWER_SUBMIT, 9, correct=False, response_hash="aa", attempt=2, duration_s=4.0
        ),
    )
    # Same response as the earlier wrong one, and the feedback was never read.
    assert again[f["repeat_response"]] == 1.0
    assert again[f["feedback_skipped"]] == 1.0
    assert again[f["new_response_share"]] == 0.5
    # Item norms learn from first answers only.
    assert norms.n_first == 1 and norms.n_first_correct == 0 and norms.n_timed == 1
    hint = fx.update(
        learner,
        norms,
        _event(EventType.HINT_REQUEST, 10, hint_level=3, hint_count=3, duration_s=1.0),
    )
    assert (
        hint[f["hint_depth"]] == 1.0
        and hint[f["bottom_out"]] == 1.0
        and hint[f["fast_hint"]] == 1.0
    )


def _wrong(t: int, **kw: Any) -> LearningEvent:
    return _event(EventType.ANSWER_SUBMIT, t, correct=False, response_hash="aa", **kw)


@pytest.mark.parametrize("habit", ["open item", "attempt number"])
def test_a_start_before_each_retry_continues_the_item(habit: str) -> None:
    fx = FeatureExtractor()
    learner = LearnerFeatureState()
    norms = ItemNorms()
    f = EVENT_FEATURE_INDEX
    fx.update(learner, norms, _event(EventType.PROBLEM_START, 0))
    fx.update(learner, norms, _event(EventType.HINT_REQUEST, 1, hint_level=1, hint_count=3))
    fx.update(learner, norms, _wrong(2, duration_s=8.0))
    if habit == "attempt number":
        # the LMS closed the item after the wrong answer; the next start says it is attempt 2
        fx.update(learner, norms, _event(EventType.PROBLEM_COMPLETE, 3))
        fx.update(learner, norms, _event(EventType.PROBLEM_START, 4, attempt=2))
    else:
        fx.update(learner, norms, _event(EventType.PROBLEM_START, 4))
    again = fx.update(learner, norms, _wrong(6, duration_s=8.0))
    # the same wrong response is seen again, the hint remembered; feedback owed on the wrong
    # answer is remembered while the item stays open (a completion settles it)
    assert again[f["repeat_response"]] == 1.0
    assert again[f["feedback_skipped"]] == (1.0 if habit == "open item" else 0.0)
    assert again[f["attempt"]] == pytest.approx(0.25)
    assert again[f["hints_on_item"]] == pytest.approx(0.2)
    # norms and ratings still learn from the first answer only
    assert norms.n_first == 1


def test_a_start_on_another_item_or_a_finished_one_is_a_new_problem() -> None:
    fx = FeatureExtractor()
    learner = LearnerFeatureState()
    norms = ItemNorms()
    f = EVENT_FEATURE_INDEX
    fx.update(learner, norms, _event(EventType.PROBLEM_START, 0))
    fx.update(learner, norms, _wrong(2, duration_s=8.0))
    fx.update(learner, norms, _event(EventType.PROBLEM_COMPLETE, 3))
    fx.update(learner, norms, _event(EventType.PROBLEM_START, 4))
    fresh = fx.update(learner, norms, _wrong(6, duration_s=8.0))
    assert fresh[f["repeat_response"]] == 0.0
    assert fresh[f["attempt"]] == 0.0


def test_an_answer_after_the_bottom_out_hint_is_no_evidence_of_mastery() -> None:
    fx = FeatureExtractor()
    helped, unhelped = LearnerFeatureState(), LearnerFeatureState()
    fx.update(helped, None, _event(EventType.PROBLEM_START, 0))
    fx.update(helped, None, _event(EventType.HINT_REQUEST, 1, hint_level=3, hint_count=3))
    fx.update(helped, None, _event(EventType.ANSWER_SUBMIT, 2, correct=True, duration_s=5.0))
    fx.update(unhelped, None, _event(EventType.PROBLEM_START, 0))
    fx.update(unhelped, None, _event(EventType.ANSWER_SUBMIT, 2, correct=False, duration_s=5.0))
    # the bottom-out hint gave the answer away: the update is that of a wrong answer
    assert helped.skill_view("s1") == unhelped.skill_view("s1")
    assert helped.skill_view("s1").streak == 0
    assert helped.theta == pytest.approx(unhelped.theta)

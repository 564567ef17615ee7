import re

import numpy as np
import pytest

from inference.lab.metrics import roc_auc
from inference.lab.simulator import CohortConfig, EventColumns, simulate_cohort
from inference.lab.simulator.columns import EVENT_TYPES
from inference.states import NONE, STATES
from schemas.events import EventType

pytestmark = pytest.mark.unit

FAMILIES = ("bkt", "irt")


@pytest.fixture(scope="module", params=FAMILIES)
def cohort(request: pytest.FixtureRequest) -> EventColumns:
    # A modest cohort: enough events for stable shares, small enough for a quick test.
    return simulate_cohort(CohortConfig(family=request.param, n_learners=60, seed=20))


def _columns_equal(a: EventColumns, b: EventColumns) -> None:
    for name in (
        "learner",
        "seq",
        "event_type",
        "t_us",
        "session",
        "obj",
        "correct",
        "response",
        "attempt",
        "hint_level",
        "hint_count",
        "relation",
        "state",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("duration_s", "score", "p_correct"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.learner_ids == b.learner_ids and a.class_ids == b.class_ids


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_gives_same_events_and_other_seed_differs(family: str) -> None:
    config = CohortConfig(family=family, n_learners=5, seed=3, problems_per_learner=30)
    first, again = simulate_cohort(config), simulate_cohort(config)
    _columns_equal(first, again)
    other = simulate_cohort(
        CohortConfig(family=family, n_learners=5, seed=4, problems_per_learner=30)
    )
    assert len(other) != len(first) or not np.array_equal(other.correct, first.correct)


def test_a_learner_does_not_depend_on_cohort_size() -> None:
    small = simulate_cohort(CohortConfig(n_learners=2, seed=9, problems_per_learner=20))
    large = simulate_cohort(CohortConfig(n_learners=4, seed=9, problems_per_learner=20))
    rows = large.learner < 2
    np.testing.assert_array_equal(small.t_us, large.t_us[rows])
    np.testing.assert_array_equal(small.correct, large.correct[rows])


def test_rare_states_each_hold_three_to_fifteen_percent_of_events(cohort: EventColumns) -> None:
    share = np.bincount(cohort.state, minlength=len(STATES)) / len(cohort)
    for k, name in enumerate(STATES):
        if k != NONE:
            assert 0.03 <= share[k] <= 0.15, f"{cohort.family} {name}: {share[k]:.3f}"
    assert share[NONE] > 0.4


def test_oracle_auc_is_as_hard_as_real_classrooms(cohort: EventColumns) -> None:
    answers = cohort.correct >= 0
    auc = roc_auc(cohort.correct[answers], cohort.p_correct[answers])
    assert 0.75 <= auc <= 0.85, f"{cohort.family} oracle AUC {auc:.3f}"
    # The oracle is calibrated: it is the probability the answers were drawn from.
    assert abs(cohort.p_correct[answers].mean() - cohort.correct[answers].mean()) < 0.01


def test_states_show_in_events_the_way_the_issue_describes(cohort: EventColumns) -> None:
    code = {t: i for i, t in enumerate(EVENT_TYPES)}
    answer = cohort.event_type == code[EventType.ANSWER_SUBMIT]
    fast = cohort.duration_s < 5.0
    gaming, none = cohort.state == STATES.index("gaming"), cohort.state == NONE
    # Gaming answers are far more often rapid than engaged ones.
    assert fast[answer & gaming].mean() > 3 * fast[answer & none].mean()
    # Confirmation seekers open resources that back their answer; engaged learners do not.
    resource = cohort.event_type == code[EventType.RESOURCE_VIEW]
    supports = cohort.relation == 0
    conf = cohort.state == STATES.index("confirmation")
    assert supports[resource & conf].mean() > 0.5 > supports[resource & none].mean()
    # Overlap: engaged learners also sometimes answer in a rush and skim feedback.
    assert fast[answer & none].any()


def test_learning_events_are_valid_and_pseudonymous(cohort: EventColumns) -> None:
    hexid = re.compile(r"^[0-9a-f]{64}$")
    events = [cohort.learning_event(i) for i in range(0, len(cohort), 997)]
    assert all(hexid.match(e.learner_id) for e in events)
    assert all(e.class_id and e.class_id.startswith("class-") for e in events)
    answers = [e for e in events if e.event_type is EventType.ANSWER_SUBMIT]
    assert answers and all(e.correct is not None and e.response_hash for e in answers)
    ids = [cohort.event_id(i) for i in range(len(cohort))]
    assert len(set(ids)) == len(ids)
    # Each learner's events are in time order.
    same = cohort.learner[1:] == cohort.learner[:-1]
    assert (np.diff(cohort.t_us)[same] > 0).all()

"""Producer habits on a simulated cohort: what is left out, added and kept."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.lab.scenarios.habits import apply_habits
from inference.lab.simulator.cohort import CohortConfig, simulate_cohort
from inference.lab.simulator.columns import EVENT_TYPE_CODE, EventColumns
from schemas.events import EventType

pytestmark = pytest.mark.unit

START = EVENT_TYPE_CODE[EventType.PROBLEM_START]
ANSWER = EVENT_TYPE_CODE[EventType.ANSWER_SUBMIT]
HINT = EVENT_TYPE_CODE[EventType.HINT_REQUEST]
FEEDBACK = EVENT_TYPE_CODE[EventType.FEEDBACK_VIEW]


@pytest.fixture(scope="module")
def cohort() -> EventColumns:
    return simulate_cohort(
        CohortConfig(family="bkt", n_learners=30, seed=8, problems_per_learner=40)
    )


def test_no_share_changes_nothing_and_a_share_is_reproducible(cohort: EventColumns) -> None:
    assert apply_habits(cohort, 0.0, 1) is cohort
    one, two = apply_habits(cohort, 0.6, 1), apply_habits(cohort, 0.6, 1)
    assert np.array_equal(one.event_type, two.event_type)
    assert np.array_equal(one.duration_s, two.duration_s, equal_nan=True)


def test_habits_leave_out_signals_and_add_retry_starts(cohort: EventColumns) -> None:
    out = apply_habits(cohort, 1.0, 2)
    # rows of each learner stay contiguous, numbered and in time order
    same = np.diff(out.learner) == 0
    assert (np.diff(out.seq)[same] == 1).all() and (np.diff(out.t_us)[same] >= 0).all()
    # the states of the rows kept are the simulator's: every label still comes from it
    assert set(np.unique(out.state)) <= set(np.unique(cohort.state))

    def per(cols: EventColumns, code: int) -> np.ndarray:
        return np.bincount(cols.learner[cols.event_type == code], minlength=30)

    assert (per(out, FEEDBACK) == 0).any() and (per(cohort, FEEDBACK) > 0).all()
    retries = (cohort.event_type == ANSWER) & (cohort.attempt > 1)
    assert per(out, START).sum() != per(cohort, START).sum() or not retries.any()
    hints = out.event_type == HINT
    assert (out.hint_level[hints] == -1).any() and (out.hint_level[hints] >= 0).any()
    assert np.isnan(out.duration_s).mean() > np.isnan(cohort.duration_s).mean()
    # items seen without skills are twins that name none
    assert len(out.objects.object_ids) == 2 * len(cohort.objects.object_ids)
    twins = out.obj >= len(cohort.objects.object_ids)
    assert twins.any() and all(out.objects.skill_ids[o] == () for o in np.unique(out.obj[twins]))
    new_starts = (out.event_type == START) & (out.attempt == 0) & np.isnan(out.p_correct)
    assert new_starts.any() and not math.isnan(float(np.nanmean(out.p_correct)))

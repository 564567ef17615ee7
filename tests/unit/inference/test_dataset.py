from pathlib import Path

import numpy as np
import pytest

from inference.features import EVENT_FEATURES, QUERY_FEATURES
from inference.lab.dataset import (
    WindowDataset,
    build_dataset,
    next_answer_rows,
    windows_from_columns,
)
from inference.lab.simulator import CohortConfig, EventColumns, simulate_cohort
from inference.lab.simulator.columns import EVENT_TYPE_CODE
from schemas.events import EventType

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def cohort() -> EventColumns:
    return simulate_cohort(
        CohortConfig(family="bkt", n_learners=8, seed=5, problems_per_learner=30)
    )


@pytest.fixture(scope="module")
def data(cohort: EventColumns) -> WindowDataset:
    return windows_from_columns(cohort, window=16)


def test_shapes_and_types(data: WindowDataset) -> None:
    n, t = len(data), data.window
    assert t == 16
    assert data.X.shape == (n, t, len(EVENT_FEATURES)) and data.X.dtype == np.float32
    assert data.M.shape == (n, t) and data.M.dtype == np.bool_
    assert data.Q.shape == (n, len(QUERY_FEATURES)) and data.Q.dtype == np.float32
    for name in ("y_state", "learner", "step"):
        assert getattr(data, name).shape == (n,) and getattr(data, name).dtype == np.int64
    assert data.y_next.dtype == np.float32 and data.oracle.dtype == np.float32


def test_windows_end_at_the_decision_and_pad_on_the_left(
    data: WindowDataset, cohort: EventColumns
) -> None:
    np.testing.assert_array_equal(data.X[:, -1], data.event_features[data.decision_row])
    assert data.M[:, -1].all()
    # Padding only on the left, zeros there, and never crossing into another learner.
    assert (np.diff(data.M.astype(int), axis=1) >= 0).all()
    assert (data.X[~data.M] == 0).all()
    rows = data.window_index[data.M]
    owners = np.repeat(data.learner, data.M.sum(axis=1))
    np.testing.assert_array_equal(cohort.learner[rows], owners)


def test_labels_come_from_the_next_answer(data: WindowDataset, cohort: EventColumns) -> None:
    nxt = next_answer_rows(cohort)
    target = nxt[data.decision_row]
    assert (target > data.decision_row).all()
    assert (cohort.event_type[target] == EVENT_TYPE_CODE[EventType.ANSWER_SUBMIT]).all()
    np.testing.assert_array_equal(data.y_next, cohort.correct[target].astype(np.float32))
    np.testing.assert_allclose(data.oracle, cohort.p_correct[target], rtol=1e-6)
    np.testing.assert_array_equal(data.y_state, cohort.state[data.decision_row])
    # Every event followed by an answer of the same learner is a decision point.
    assert len(data) == int((nxt >= 0).sum())


def test_one_window_per_answer_predicts_it_from_every_event_before(
    data: WindowDataset, cohort: EventColumns
) -> None:
    once = data.before_answer
    target = next_answer_rows(cohort)[data.decision_row]
    np.testing.assert_array_equal(once, target == data.decision_row + 1)
    # Each answer that has an event before it (of its learner) is predicted exactly once.
    answers = np.flatnonzero(cohort.event_type == EVENT_TYPE_CODE[EventType.ANSWER_SUBMIT])
    preceded = answers[(answers > 0) & (cohort.learner[answers - 1] == cohort.learner[answers])]
    np.testing.assert_array_equal(np.sort(target[once]), preceded)


def test_batches_match_the_full_arrays(data: WindowDataset) -> None:
    idx = np.array([0, 5, len(data) - 1])
    x, m, q = data.batch(idx)
    np.testing.assert_array_equal(x, data.X[idx])
    np.testing.assert_array_equal(m, data.M[idx])
    np.testing.assert_array_equal(q, data.Q[idx])


def test_save_load_round_trip(tmp_path: Path, data: WindowDataset) -> None:
    path = tmp_path / "windows.npz"
    data.save(path)
    loaded = WindowDataset.load(path)
    np.testing.assert_array_equal(loaded.X, data.X)
    np.testing.assert_array_equal(loaded.Q, data.Q)
    np.testing.assert_array_equal(loaded.y_state, data.y_state)
    assert (loaded.family, loaded.seed) == (data.family, data.seed)


def test_split_by_learner_keeps_learners_apart(data: WindowDataset) -> None:
    a, b = data.split_by_learner(0.5, seed=1)
    assert len(a) + len(b) == len(data)
    assert not set(a.learner.tolist()) & set(b.learner.tolist())


def test_build_dataset_is_deterministic_and_strided() -> None:
    one = build_dataset("irt", 4, seed=12, window=8, problems_per_learner=20, warmup_learners=3)
    two = build_dataset("irt", 4, seed=12, window=8, problems_per_learner=20, warmup_learners=3)
    np.testing.assert_array_equal(one.X, two.X)
    np.testing.assert_array_equal(one.Q, two.Q)
    strided = build_dataset(
        "irt", 4, seed=12, window=8, problems_per_learner=20, warmup_learners=3, stride=4
    )
    assert (strided.step % 4 == 0).all() and len(strided) < len(one)

from dataclasses import replace

import numpy as np
import pytest

from inference.lab.ceiling import (
    AnswerContext,
    BKTJointFilter,
    answer_likelihood,
    ceiling_for_windows,
    ceiling_from_columns,
    observable_ceiling,
    window_targets,
)
from inference.lab.curriculum import Curriculum, Item, Skill, response_hash
from inference.lab.dataset import next_answer_rows, windows_from_columns
from inference.lab.metrics import log_loss, roc_auc
from inference.lab.simulator.cohort import CohortConfig, make_learner, simulate_cohort
from inference.lab.simulator.columns import EventColumns, ObjectTable
from inference.lab.simulator.learners import BKTLearner
from inference.states import ANCHORING, NONE

pytestmark = pytest.mark.unit

FAMILIES = ("bkt", "irt")


def _config(family: str) -> CohortConfig:
    return CohortConfig(family=family, n_learners=16, seed=31, problems_per_learner=80)


@pytest.fixture(scope="module", params=FAMILIES)
def cohort(request: pytest.FixtureRequest) -> tuple[CohortConfig, EventColumns]:
    config = _config(request.param)
    return config, simulate_cohort(config)


def _key(cols: EventColumns, rows: np.ndarray) -> np.ndarray:
    return np.asarray(cols.obj[rows].astype(np.int64) * 2 + (cols.attempt[rows] > 1))


def _item_attempt_rate(config: CohortConfig, cols: EventColumns, targets: np.ndarray) -> np.ndarray:
    """Population average: each item's first-answer and retry success rates in another cohort."""
    other = simulate_cohort(replace(config, seed=config.seed + 100, n_learners=60))
    answers = np.flatnonzero(other.correct >= 0)
    y = other.correct[answers].astype(np.float64)
    size = 2 * other.objects.n_items
    sums = np.bincount(_key(other, answers), weights=y, minlength=size)
    counts = np.bincount(_key(other, answers), minlength=size)
    rate = (sums + 5.0 * y.mean()) / (counts + 5.0)
    return np.asarray(rate[_key(cols, targets)])


def test_aligned_with_the_dataset_windows_and_a_probability(
    cohort: tuple[CohortConfig, EventColumns],
) -> None:
    config, cols = cohort
    data = windows_from_columns(cols, window=8)
    p = ceiling_for_windows(cols, config, data.decision_row)
    assert p.shape == data.y_next.shape
    assert np.all(np.isfinite(p))
    assert np.all((p >= 0.0) & (p <= 1.0))
    # certain only where the simulator is (a gamer's last remaining option)
    targets = next_answer_rows(cols)[data.decision_row]
    oracle = cols.p_correct[targets]
    uncertain = (oracle > 0.0) & (oracle < 1.0)
    assert uncertain.mean() > 0.99
    assert np.all((p[uncertain] > 0.0) & (p[uncertain] < 1.0))
    # the rows the ceiling predicts are the dataset's next-answer targets
    np.testing.assert_array_equal(cols.correct[targets].astype(np.float32), data.y_next)
    np.testing.assert_array_equal(window_targets(cols), data.decision_row)
    # the one-call entry point simulates the same cohort and returns the same values
    same = observable_ceiling(
        config.family, config.seed, config.n_learners, problems_per_learner=80
    )
    np.testing.assert_array_equal(same, p)


def test_between_population_average_and_oracle(
    cohort: tuple[CohortConfig, EventColumns],
) -> None:
    config, cols = cohort
    rows = window_targets(cols)
    targets = next_answer_rows(cols)[rows]
    y = cols.correct[targets].astype(np.float64)
    oracle = cols.p_correct[targets]
    p = ceiling_from_columns(cols, config).p_next[rows]
    # not the oracle: it does not know the latent knowledge
    assert np.mean(np.abs(p - oracle)) > 0.02
    assert log_loss(y, oracle) < log_loss(y, p)
    # better than the cohort's base rate and than other learners' success on each item
    base = np.full_like(y, y.mean())
    average = _item_attempt_rate(config, cols, targets)
    assert log_loss(y, p) < min(log_loss(y, average), log_loss(y, base)) - 0.05
    assert roc_auc(y, p) > roc_auc(y, average) + 0.02


def test_full_evidence_beats_answers_only_for_bkt() -> None:
    config = _config("bkt")
    cols = simulate_cohort(config)
    rows = window_targets(cols)
    y = cols.correct[next_answer_rows(cols)[rows]].astype(np.float64)
    full = ceiling_from_columns(cols, config, "full").p_next[rows]
    answers = ceiling_from_columns(cols, config, "answers").p_next[rows]
    assert log_loss(y, full) < log_loss(y, answers)


def test_bkt_answer_conditions_reproduce_the_oracle() -> None:
    # Every logged oracle probability is the filter's answer formula at one knowledge state:
    # the answer conditions rebuilt from the events are the simulator's.
    config = _config("bkt")
    result = ceiling_from_columns(simulate_cohort(config), config, "answers")
    assert result.answers > 1000
    assert result.oracle_matches == result.answers


def test_population_prior_runs_and_is_no_better_than_the_true_one() -> None:
    config = CohortConfig(family="irt", n_learners=6, seed=32, problems_per_learner=60)
    cols = simulate_cohort(config)
    rows = window_targets(cols)
    y = cols.correct[next_answer_rows(cols)[rows]].astype(np.float64)
    true = ceiling_from_columns(cols, config, prior="true").p_next[rows]
    population = ceiling_from_columns(cols, config, prior="population").p_next[rows]
    assert np.all((population > 0.0) & (population < 1.0))
    assert not np.allclose(true, population)
    assert log_loss(y, true) < log_loss(y, population) + 0.01


def test_recorded_parameters_are_the_simulated_learners() -> None:
    # The filter builds learners itself; they must be the very learners of the cohort.
    from inference.lab.ceiling import _RecordedBKT, bkt_initial_knowledge
    from inference.lab.curriculum import make_curriculum
    from inference.lab.simulator.cohort import learner_seed

    curriculum = make_curriculum()
    objects = ObjectTable.from_curriculum(curriculum)
    for index in range(3):
        original = make_learner("bkt", curriculum, objects, 31, index)
        assert isinstance(original, BKTLearner)
        recorded = _RecordedBKT(index, curriculum, objects, learner_seed(31, index, "bkt"))
        assert recorded.known == original.known
        assert recorded.learn_rate == original.learn_rate
        assert recorded.carelessness == original.carelessness
        l0 = bkt_initial_knowledge(recorded)
        assert l0.shape == (1, len(curriculum.skills))
        assert np.all((l0 > 0.0) & (l0 < 1.0))


def _two_skill_curriculum() -> Curriculum:
    skills = (Skill(0, "skill-00", (), 0), Skill(1, "skill-01", (0,), 1))
    items = tuple(
        Item(
            s,
            f"item-{s}",
            (s,),
            0.0,
            1.0,
            20.0,
            4,
            3,
            None,
            tuple(response_hash(f"item-{s}", o) for o in range(4)),
        )
        for s in range(2)
    )
    return Curriculum(skills, items, ((0,), (1,)))


def _context(item: Item, *, correct: bool, attempt: int = 1, **kw: object) -> AnswerContext:
    fields: dict[str, object] = {
        "row": 0,
        "item": item,
        "state": NONE,
        "attempt": attempt,
        "hints": 0,
        "bottom_out": False,
        "tried": frozenset(),
        "last_wrong": -1,
        "feedback_read": True,
        "phase_hints": 0,
        "hint_phase": False,
        "correct": correct,
        "response": 0 if correct else 1,
        "duration_s": 20.0,
    }
    fields.update(kw)
    return AnswerContext(**fields)  # type: ignore[arg-type]


def test_joint_filter_posterior_by_hand() -> None:
    curriculum = _two_skill_curriculum()
    learner = BKTLearner(0, curriculum, ObjectTable.from_curriculum(curriculum), 5, 0)
    filt = BKTJointFilter(learner, np.array([[0.3, 0.4]]), np.ones(1))
    item = curriculum.items[1]
    assert filt.p_all_known(item) == pytest.approx(0.4)
    pu, pk = filt.p_know(item)
    assert pk > 0.5 > pu
    lik = answer_likelihood(filt.p_know(item), _context(item, correct=True), "answers")
    np.testing.assert_allclose(lik, [pu, pk])
    filt.observe(lik, item)
    z = 0.4 * pk + 0.6 * pu
    assert filt.p_all_known(item) == pytest.approx(0.4 * pk / z)
    # learning on skill 1: full rate where skill 0 is known, 0.12 of it where it is not
    rate = learner.learn_rate[1]
    none_known, only_0 = 0.7 * 0.6 * pu / z, 0.3 * 0.6 * pu / z
    filt.learn(item, 1.0)
    expected = 0.4 * pk / z + only_0 * rate + none_known * rate * 0.12
    assert filt.p_all_known(item) == pytest.approx(expected)
    # skill 0 is untouched by practice on skill 1
    assert filt.p_all_known(curriculum.items[0]) == pytest.approx(0.3)


def test_response_likelihood_sums_to_one_over_outcomes() -> None:
    item = _two_skill_curriculum().items[0]
    p_known = np.array([0.2, 0.9])
    for state in (NONE, ANCHORING):
        kw = {"state": state, "tried": frozenset({1}), "last_wrong": 1}
        total = answer_likelihood(p_known, _context(item, correct=True, attempt=2, **kw), "full")
        for response in range(1, item.n_options):
            ctx = _context(item, correct=False, attempt=2, response=response, **kw)
            total = total + answer_likelihood(p_known, ctx, "full")
        np.testing.assert_allclose(total, 1.0)

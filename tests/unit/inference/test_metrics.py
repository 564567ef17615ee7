import math

import numpy as np
import pytest

from inference.lab.metrics import (
    binary_scores,
    cohen_kappa,
    detection_delay,
    expected_calibration_error,
    false_alert_rate,
    log_loss,
    next_answer_scores,
    roc_auc,
    state_report,
)
from inference.states import STATES

pytestmark = pytest.mark.unit


def test_auc_counts_pairs_and_halves_ties() -> None:
    # Positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4, 0.8>0.1, 0.4=0.4, 0.4>0.1) = 3.5/4.
    assert roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert roc_auc([1, 0], [0.2, 0.9]) == 0.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.9]))


def test_log_loss_and_calibration_by_hand() -> None:
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    # Bin [0.2, 0.3): mean p 0.25 vs rate 0.5; bin [0.9, 1.0]: 0.9 vs 1.0.
    ece = expected_calibration_error([1, 0, 1, 1], [0.2, 0.3 - 1e-9, 0.9, 0.9])
    assert ece == pytest.approx((2 * abs(0.25 - 0.5) + 2 * abs(0.9 - 1.0)) / 4, abs=1e-6)
    scores = next_answer_scores([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.3])
    assert scores.auc == 1.0 and scores.n == 4


def test_kappa_by_hand() -> None:
    # Observed agreement 0.75; chance (0.5*0.5 + 0.5*0.5) = 0.5 -> kappa 0.5.
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx((0.75 - 0.5) / 0.5)
    assert cohen_kappa([0, 1, 2], [0, 1, 2]) == 1.0


def test_binary_scores_by_hand() -> None:
    s = binary_scores("gaming", [1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0.9, 0.2, 0.8, 0.1, 0.3])
    assert (s.precision, s.recall, s.f1) == (0.5, 0.5, 0.5)
    assert s.support == 2
    assert s.auc == pytest.approx(4 / 6)


def test_state_report_macro_f1_and_false_alerts() -> None:
    y = np.array([0, 0, 0, 0, 4, 4, 2, 2])
    p = np.array([0, 0, 0, 4, 4, 0, 2, 2])
    report = state_report(y, p)
    f1 = {s.state: s.f1 for s in report.per_state}
    assert f1["none"] == pytest.approx(2 * 0.75 * 0.75 / 1.5)
    assert f1["gaming"] == pytest.approx(0.5)
    assert f1["anchoring"] == 1.0
    # States never present or predicted score F1 0 and count in the macro mean.
    assert report.macro_f1 == pytest.approx((0.75 + 0.5 + 1.0) / len(STATES))
    assert report.false_alert_rate == 0.25
    assert false_alert_rate(y, p) == 0.25


def test_detection_delay_counts_events_from_onset() -> None:
    learner = [0] * 8 + [1] * 4
    step = list(range(8)) + list(range(4))
    y = [0, 4, 4, 4, 0, 2, 2, 0, 4, 4, 4, 4]  # learner 0, then learner 1
    p = [0, 0, 0, 4, 0, 0, 0, 0, 4, 0, 0, 0]
    reports = {r.state: r for r in detection_delay(learner, step, y, p)}
    gaming = reports["gaming"]
    # Learner 0: gaming from step 1, first detected at step 3 -> delay 2; learner 1: delay 0.
    assert (gaming.episodes, gaming.detected) == (2, 2)
    assert gaming.mean_delay == 1.0
    anchoring = reports["anchoring"]
    assert (anchoring.episodes, anchoring.detected) == (1, 0)
    assert math.isnan(anchoring.mean_delay)

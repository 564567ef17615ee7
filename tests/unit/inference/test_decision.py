from __future__ import annotations

import numpy as np
import pytest

from inference.decision import _macro_f1, decide_states, fit_thresholds, threshold_vector
from inference.lab.metrics import false_alert_rate, state_report
from inference.states import N_STATES, STATES

pytestmark = pytest.mark.unit


def test_decide_picks_likeliest_state_over_its_threshold() -> None:
    thresholds = np.array([0.5, 0.3, 0.9, 0.9, 0.9])
    probs = np.array(
        [
            [0.6, 0.4, 0.0, 0.0, 0.0, 0.0],  # overconfidence below 0.5 -> none
            [0.2, 0.45, 0.35, 0.0, 0.0, 0.0],  # only anchoring reaches its threshold
            [0.0, 0.55, 0.45, 0.0, 0.0, 0.0],  # both raised: likeliest wins
            [0.05, 0.0, 0.0, 0.0, 0.0, 0.95],  # wheel-spinning
        ]
    )
    assert decide_states(probs, thresholds).tolist() == [0, 2, 1, 5]


def test_threshold_vector_refuses_missing_state() -> None:
    with pytest.raises(ValueError, match="gaming"):
        threshold_vector({s: 0.5 for s in STATES[1:] if s != "gaming"})
    assert threshold_vector({s: 0.1 * i for i, s in enumerate(STATES)}).tolist() == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.5]
    )


def test_fast_macro_f1_matches_metrics_module() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, N_STATES, 5000)
    pred = np.where(rng.random(5000) < 0.6, labels, rng.integers(0, N_STATES, 5000))
    assert _macro_f1(pred, labels, N_STATES) == pytest.approx(
        state_report(labels, pred).macro_f1, abs=1e-12
    )


def test_fitted_thresholds_keep_false_alerts_under_the_cap_and_beat_argmax_f1() -> None:
    rng = np.random.default_rng(1)
    n = 20000
    labels = np.where(rng.random(n) < 0.6, 0, rng.integers(1, N_STATES, n))
    logits = rng.normal(size=(n, N_STATES))
    logits[np.arange(n), labels] += 1.6
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    argmax = probs.argmax(axis=1)
    assert false_alert_rate(labels, argmax) > 0.05  # argmax alone would alert far too often
    for cap in (0.02, 0.005):
        thresholds = fit_thresholds(probs, labels, cap)
        pred = decide_states(probs, thresholds)
        assert false_alert_rate(labels, pred) <= cap
        assert state_report(labels, pred).macro_f1 > state_report(labels, np.zeros(n)).macro_f1

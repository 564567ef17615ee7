"""The rule that turns state probabilities into a detected state, and how its thresholds are fit.

Training fits one threshold per non-``none`` state on held-out learners and writes them into the
model's config; evaluation and the stream apply :func:`decide_states` with those same numbers,
so an alert means the same thing everywhere. Pure numpy: the serving path imports this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from inference.metrics import false_alert_rate
from inference.states import STATES

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def threshold_vector(
    thresholds: Mapping[str, float], states: Sequence[str] = STATES
) -> npt.NDArray[np.float64]:
    """Return the thresholds of ``states[1:]`` as a vector, refusing a missing state.

    Raises:
        ValueError: when a non-``none`` state has no threshold.
    """
    missing = [s for s in states[1:] if s not in thresholds]
    if missing:
        raise ValueError(f"decision_thresholds: no threshold for {missing}")
    return np.array([thresholds[s] for s in states[1:]], dtype=np.float64)


def decide_states(
    state_probs: npt.NDArray[np.floating], thresholds: npt.NDArray[np.float64]
) -> IntArray:
    """Pick a state per row: the likeliest state whose probability reaches its threshold.

    Args:
        state_probs: ``[N, S]`` probabilities, column 0 is ``none``.
        thresholds: ``[S-1]`` thresholds of the other states.

    Returns:
        ``[N]`` state indices; 0 where no state reaches its threshold.
    """
    alert = np.asarray(state_probs, dtype=np.float64)[:, 1:]
    raised = alert >= thresholds[None, :]
    score = np.where(raised, alert, -1.0)
    best = np.argmax(score, axis=1)
    return np.where(raised.any(axis=1), best + 1, 0).astype(np.int64)


def _macro_f1(pred: IntArray, labels: IntArray, n_states: int) -> float:
    # the same number as ``metrics.state_report(...).macro_f1``, from one confusion matrix,
    # because threshold fitting scores hundreds of candidates on the whole validation cohort
    confusion = np.bincount(labels * n_states + pred, minlength=n_states * n_states).reshape(
        n_states, n_states
    )
    tp = np.diag(confusion).astype(np.float64)
    denom = confusion.sum(axis=0) + confusion.sum(axis=1)
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_states), where=tp > 0)
    return float(f1.mean())


def fit_thresholds(
    state_probs: npt.NDArray[np.floating],
    labels: IntArray,
    max_false_alert_rate: float,
    rounds: int = 3,
    grid: int = 60,
) -> npt.NDArray[np.float64]:
    """Choose per-state thresholds that maximise macro-F1 with a cap on false alerts.

    Coordinate ascent from "raise nothing" (which meets any cap): each state's threshold in turn
    moves to the grid value, taken from that state's probability quantiles, with the best
    macro-F1 among those that keep the false-alert rate on ``none`` within the cap.

    Args:
        state_probs: ``[N, S]`` held-out probabilities.
        labels: ``[N]`` true state indices.
        max_false_alert_rate: cap on the share of ``none`` events that raise an alert.
        rounds: passes over the states.
        grid: candidate thresholds per state and pass.

    Returns:
        ``[S-1]`` thresholds for ``states[1:]``.
    """
    probs = np.asarray(state_probs, dtype=np.float64)
    n_states = probs.shape[1]
    thresholds = np.full(n_states - 1, 1.0 + 1e-9)
    labels = np.asarray(labels, dtype=np.int64)
    best = _macro_f1(decide_states(probs, thresholds), labels, n_states)
    quantiles = np.linspace(0.0, 1.0, grid)
    for _ in range(rounds):
        for k in range(n_states - 1):
            candidates = np.unique(np.quantile(probs[:, k + 1], quantiles))
            for value in candidates:
                trial = thresholds.copy()
                trial[k] = value
                pred = decide_states(probs, trial)
                if false_alert_rate(labels, pred) > max_false_alert_rate:
                    continue
                score = _macro_f1(pred, labels, n_states)
                if score > best:
                    best, thresholds = score, trial
    return thresholds

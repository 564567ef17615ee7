"""The rule that turns state probabilities into a detected state, and how its thresholds are fit.

Training fits one threshold per non-``none`` state on held-out learners and writes them into the
model's config; evaluation and the stream apply :func:`decide_states` with those same numbers,
so an alert means the same thing everywhere. Pure numpy: the serving path imports this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from inference.states import NONE, STATES

FloatArray = npt.NDArray[np.float32]
FloatVec = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_ALERT_CAP = 0.015
"""The share of ``none`` events allowed to raise an alert when thresholds are fitted, by default."""


def false_alert_rate(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Return the share of truly-``none`` events predicted as some other state."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    none = t == NONE
    if not none.any():
        return math.nan
    return float((p[none] != NONE).mean())


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


_NEVER = 1.0 + 1e-9
"""A threshold no probability reaches: the state is never raised."""


def _candidates(probs: npt.NDArray[np.float64], labels: IntArray, k: int, grid: int) -> FloatVec:
    # dense near 1 (where thresholds under a tight false-alert cap end up) plus the scores of
    # the state's own events, which is where its F1 changes
    levels = 1.0 - np.geomspace(1.0, 1e-5, grid)
    own = probs[labels == k, k]
    parts: list[FloatVec] = [np.quantile(probs[:, k], levels), np.array([_NEVER])]
    if len(own):
        parts.append(np.quantile(own, np.linspace(0.0, 1.0, grid)))
    return np.unique(np.concatenate(parts))


def _one_state_curves(
    probs: npt.NDArray[np.float64], labels: IntArray, k: int, candidates: FloatVec
) -> tuple[FloatVec, FloatVec]:
    """F1 of state ``k`` and its false alerts on ``none`` if only ``k`` were thresholded."""
    order = np.argsort(-probs[:, k], kind="stable")
    ranked = probs[order, k]
    positive = (labels == k)[order]
    calm = (labels == 0)[order]
    tp = np.r_[0, np.cumsum(positive)]
    flagged = np.arange(len(ranked) + 1)
    false_calm = np.r_[0, np.cumsum(calm)]
    count = np.searchsorted(-ranked, -candidates, side="right")  # rows with p >= t
    f1 = 2 * tp[count] / np.maximum(flagged[count] + positive.sum(), 1)
    return f1, false_calm[count] / max(int(calm.sum()), 1)


def fit_thresholds(
    state_probs: npt.NDArray[np.floating],
    labels: IntArray,
    max_false_alert_rate: float,
    grid: int = 200,
    polish_rounds: int = 1,
) -> FloatVec:
    """Choose per-state thresholds that maximise macro-F1 with a cap on false alerts.

    The false alerts on ``none`` are a budget shared by the states. A Lagrangian split of that
    budget comes first: for a price ``lam`` on false alerts, each state takes the threshold that
    maximises its own F1 minus ``lam`` times its own false-alert rate; the price whose joint
    decision has the best macro-F1 within the cap wins. Coordinate ascent then polishes each
    threshold with the others held, never leaving the cap. Taking thresholds one state at a
    time from "raise nothing" instead spends the budget on whichever state comes first.

    Args:
        state_probs: ``[N, S]`` held-out probabilities.
        labels: ``[N]`` true state indices.
        max_false_alert_rate: cap on the share of ``none`` events that raise an alert.
        grid: candidate thresholds per state.
        polish_rounds: coordinate-ascent passes over the states.

    Returns:
        ``[S-1]`` thresholds for ``states[1:]``; a value above 1 means never raised.
    """
    probs = np.asarray(state_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n_states = probs.shape[1]
    candidates = [_candidates(probs, labels, k, grid) for k in range(1, n_states)]
    curves = [_one_state_curves(probs, labels, k + 1, c) for k, c in enumerate(candidates)]
    thresholds = np.full(n_states - 1, _NEVER)
    best = _macro_f1(decide_states(probs, thresholds), labels, n_states)
    for lam in np.r_[0.0, np.geomspace(0.01, 1e4, 160)]:
        trial = np.array(
            [c[np.argmax(f1 - lam * far)] for c, (f1, far) in zip(candidates, curves, strict=True)]
        )
        pred = decide_states(probs, trial)
        if false_alert_rate(labels, pred) <= max_false_alert_rate:
            score = _macro_f1(pred, labels, n_states)
            if score > best:
                best, thresholds = score, trial
    for _ in range(polish_rounds):
        for k in range(n_states - 1):
            for value in candidates[k]:
                trial = thresholds.copy()
                trial[k] = value
                pred = decide_states(probs, trial)
                if false_alert_rate(labels, pred) > max_false_alert_rate:
                    continue
                score = _macro_f1(pred, labels, n_states)
                if score > best:
                    best, thresholds = score, trial
    return thresholds

"""Evaluation metrics in pure numpy: state detection, next-answer prediction, detection delay.

Every function takes plain arrays so the evaluation needs neither scikit-learn nor torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

# The false-alert rate lives with the decision rule (the serving side fits thresholds on it);
# it is named here too so every metric of the evaluation comes from one module.
from inference.decision import false_alert_rate as false_alert_rate
from inference.states import NONE, STATES

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.integer]


def _ranks(x: FloatArray) -> npt.NDArray[np.float64]:
    """Return 1-based ranks with ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Start index of each run of equal values, and each run's average rank.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def roc_auc(y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Return the area under the ROC curve (Mann-Whitney, ties count half).

    Returns NaN when ``y_true`` holds only one class.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    r = _ranks(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def log_loss(y_true: npt.ArrayLike, p: npt.ArrayLike, eps: float = 1e-7) -> float:
    """Return the mean binary cross-entropy of probabilities ``p``."""
    y = np.asarray(y_true, dtype=np.float64)
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)))


def expected_calibration_error(y_true: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10) -> float:
    """Return the expected calibration error over ``bins`` equal-width probability bins."""
    y = np.asarray(y_true, dtype=np.float64)
    q = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return math.nan
    idx = np.minimum((q * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        if n:
            total += n * abs(float(q[sel].mean()) - float(y[sel].mean()))
    return total / len(y)


def cohen_kappa(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Return Cohen's kappa between two label vectors (binary or multi-class)."""
    x = np.asarray(a).astype(np.int64)
    y = np.asarray(b).astype(np.int64)
    if len(x) == 0:
        return math.nan
    k = int(max(x.max(), y.max())) + 1
    cm = np.zeros((k, k), dtype=np.float64)
    np.add.at(cm, (x, y), 1.0)
    n = cm.sum()
    po = np.trace(cm) / n
    pe = float((cm.sum(0) * cm.sum(1)).sum()) / (n * n)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return float((po - pe) / (1.0 - pe))


@dataclass(frozen=True, slots=True)
class StateScores:
    """Detection quality for one state, one-vs-rest.

    Attributes:
        state: State name.
        support: Events truly in the state.
        precision: Of the events flagged, the share truly in the state.
        recall: Of the events in the state, the share flagged.
        f1: Harmonic mean of precision and recall.
        auc: ROC AUC of the state's probability (NaN for a rule without scores).
        kappa: Cohen's kappa of flagged vs true.
    """

    state: str
    support: int
    precision: float
    recall: float
    f1: float
    auc: float
    kappa: float


def binary_scores(
    state: str, truth: npt.ArrayLike, flagged: npt.ArrayLike, score: npt.ArrayLike | None = None
) -> StateScores:
    """Return precision, recall, F1, AUC and kappa of a binary detector."""
    t = np.asarray(truth).astype(bool)
    f = np.asarray(flagged).astype(bool)
    tp = int((t & f).sum())
    fp = int((~t & f).sum())
    fn = int((t & ~f).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auc = roc_auc(t, score) if score is not None else math.nan
    return StateScores(
        state, int(t.sum()), precision, recall, f1, auc, cohen_kappa(t.astype(int), f.astype(int))
    )


@dataclass(frozen=True, slots=True)
class StateReport:
    """Multi-class state detection report.

    Attributes:
        per_state: One :class:`StateScores` per state, in state order.
        macro_f1: Unweighted mean F1 over all states.
        kappa: Multi-class Cohen's kappa.
        false_alert_rate: Share of ``none`` events flagged as some other state.
    """

    per_state: tuple[StateScores, ...]
    macro_f1: float
    kappa: float
    false_alert_rate: float

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict."""
        return {
            "per_state": [asdict(s) for s in self.per_state],
            "macro_f1": self.macro_f1,
            "kappa": self.kappa,
            "false_alert_rate": self.false_alert_rate,
        }


def state_report(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, proba: npt.ArrayLike | None = None
) -> StateReport:
    """Return per-state and overall detection quality.

    Args:
        y_true: True state indices ``[N]``.
        y_pred: Predicted state indices ``[N]``.
        proba: Optional state probabilities ``[N, 6]`` for the per-state AUCs.
    """
    t = np.asarray(y_true).astype(np.int64)
    p = np.asarray(y_pred).astype(np.int64)
    pr = None if proba is None else np.asarray(proba, dtype=np.float64)
    per = tuple(
        binary_scores(name, t == k, p == k, None if pr is None else pr[:, k])
        for k, name in enumerate(STATES)
    )
    return StateReport(
        per_state=per,
        macro_f1=float(np.mean([s.f1 for s in per])),
        kappa=cohen_kappa(t, p),
        false_alert_rate=false_alert_rate(t, p),
    )


@dataclass(frozen=True, slots=True)
class DelayReport:
    """Detection delay of one state.

    Attributes:
        state: State name.
        episodes: Runs of consecutive events in the state (per learner).
        detected: Episodes with at least one detection inside the run.
        mean_delay: Mean events from onset to first detection, over detected episodes.
        median_delay: Median of the same.
    """

    state: str
    episodes: int
    detected: int
    mean_delay: float
    median_delay: float


def detection_delay(
    learner: npt.ArrayLike, step: npt.ArrayLike, y_true: npt.ArrayLike, y_pred: npt.ArrayLike
) -> tuple[DelayReport, ...]:
    """Return, per non-``none`` state, events from an episode's onset to its first detection.

    An episode is a maximal run of one learner's consecutive decision points (by ``step``) in
    the same true state; the delay counts decision points from the run's first one to the first
    where the state is predicted, within the run. Runs never detected count as undetected.
    """
    lr = np.asarray(learner).astype(np.int64)
    st = np.asarray(step).astype(np.int64)
    t = np.asarray(y_true).astype(np.int64)
    p = np.asarray(y_pred).astype(np.int64)
    order = np.lexsort((st, lr))
    lr, t, p = lr[order], t[order], p[order]
    new_run = np.r_[True, (lr[1:] != lr[:-1]) | (t[1:] != t[:-1])]
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    pos_in_run = np.arange(len(t)) - run_start[run_id]
    hit = p == t
    reports = []
    for k, name in enumerate(STATES):
        if k == NONE:
            continue
        runs = np.unique(run_id[t == k])
        first = np.full(run_id.max() + 1 if len(run_id) else 0, -1, dtype=np.int64)
        sel = (t == k) & hit
        # Reverse assignment leaves the smallest position per run.
        rid = run_id[sel][::-1]
        first[rid] = pos_in_run[sel][::-1]
        delays = first[runs]
        delays = delays[delays >= 0]
        reports.append(
            DelayReport(
                name,
                len(runs),
                len(delays),
                float(delays.mean()) if len(delays) else math.nan,
                float(np.median(delays)) if len(delays) else math.nan,
            )
        )
    return tuple(reports)


@dataclass(frozen=True, slots=True)
class NextAnswerScores:
    """Next-answer prediction quality.

    Attributes:
        auc: ROC AUC.
        log_loss: Mean binary cross-entropy.
        ece: Expected calibration error (10 bins).
        n: Decisions scored.
    """

    auc: float
    log_loss: float
    ece: float
    n: int


def next_answer_scores(y_next: npt.ArrayLike, p: npt.ArrayLike) -> NextAnswerScores:
    """Return AUC, log-loss and calibration error of next-answer probabilities."""
    y = np.asarray(y_next)
    return NextAnswerScores(roc_auc(y, p), log_loss(y, p), expected_calibration_error(y, p), len(y))

"""Baselines the learner model is judged against, on the same windows and features.

* :class:`RuleBaseline` — detectors from the educational-data-mining literature: rapid guess
  under 10% of the item's mean time (normative threshold NT10, Wise & Ma 2012), hint abuse
  (fast clicks through to the bottom-out hint, Aleven et al. 2006; Baker et al. 2008), repeated
  identical wrong response (anchoring on an answer), and wheel-spinning as no three correct in a
  row within ten attempts on a skill (Beck & Gong 2013). The literature has no standard rule for
  overconfidence or confirmation seeking; the two heuristic rules here are marked as such.
* :class:`LogisticBaseline` — multinomial logistic regression for the states and binary
  logistic regression for the next answer, on the decision event's features, the mean of the
  last eight events' features and the query features.
* :class:`BKTBaseline` — Bayesian knowledge tracing with per-skill parameters fitted by grid
  search (brute force, as in Baker et al. 2010), for the next answer.

Every baseline offers ``predict_state_proba`` (``[N, 6]`` or ``None``), ``predict_state``
(``[N]`` or ``None``) and ``predict_next`` (``[N]`` or ``None``).

:func:`cap_alerts` puts a state detector at the model's operating point: its state scores go
through the same decision rule (:func:`inference.decision.decide_states`) with thresholds fit the
same way, on the same held-out learners, under the same cap on false alerts on ``none``. Without
it the class-weighted regression flags about 40% of ``none`` events, which no tutor could use, and
its macro-F1 would be compared with a model held to 1.5%.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from inference.decision import decide_states, fit_thresholds
from inference.features import EVENT_FEATURE_INDEX
from inference.lab.dataset import WindowDataset
from inference.states import (
    ANCHORING,
    CONFIRMATION,
    GAMING,
    N_STATES,
    NONE,
    OVERCONFIDENCE,
    WHEEL_SPINNING,
)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

_F = EVENT_FEATURE_INDEX
_OVERCONFIDENT_RATIO = float(np.log(0.5) / 3.0)  # answer in under half the item's norm
_RULE_RECENT = 3  # events back a rule looks for its sign
_SCORE_RECENT = 8  # events back a rule's score averages over


class Baseline(Protocol):
    """What the evaluation asks of a baseline."""

    name: str

    def predict_state_proba(self, data: WindowDataset) -> FloatArray | None:
        """Return state probabilities ``[N, 6]``, or ``None`` when not a state detector."""
        ...

    def predict_state(self, data: WindowDataset) -> IntArray | None:
        """Return predicted state indices ``[N]``, or ``None`` when not a state detector."""
        ...

    def predict_next(self, data: WindowDataset) -> FloatArray | None:
        """Return p(next answer correct) ``[N]``, or ``None`` when it does not predict it."""
        ...


def rule_signs(data: WindowDataset, recent: int) -> dict[int, npt.NDArray[np.bool_]]:
    """Return, per state, whether its rule fires on each of the last ``recent`` events.

    Returns:
        ``{state: bool [N, recent]}`` for every state except ``none``.
    """
    ev = data.previous_events(recent)
    answer = ev[..., _F["type_answer"]] > 0
    hint = ev[..., _F["type_hint"]] > 0
    rapid = answer & (ev[..., _F["rapid_guess"]] > 0)
    hint_abuse = hint & (ev[..., _F["fast_hint"]] > 0) & (ev[..., _F["bottom_out"]] > 0)
    repeat_wrong = answer & (ev[..., _F["repeat_response"]] > 0) & (ev[..., _F["answer_wrong"]] > 0)
    spinning = ev[..., _F["skill_no_three_in_ten"]] > 0
    # Heuristic: confirming material opened after an error, corrective feedback skimmed.
    confirming = ev[..., _F["resource_supports_after_wrong"]] > 0
    # Heuristic: a fast wrong first answer without any help.
    overconfident = (
        answer
        & (ev[..., _F["answer_wrong"]] > 0)
        & (ev[..., _F["log_time_ratio"]] < _OVERCONFIDENT_RATIO)
        & (ev[..., _F["rapid_guess"]] == 0)
        & (ev[..., _F["hints_on_item"]] == 0)
    )
    return {
        GAMING: rapid | hint_abuse,
        ANCHORING: repeat_wrong,
        WHEEL_SPINNING: spinning,
        CONFIRMATION: confirming,
        OVERCONFIDENCE: overconfident,
    }


_RULE_PRIORITY = (GAMING, ANCHORING, WHEEL_SPINNING, CONFIRMATION, OVERCONFIDENCE)


@dataclass
class RuleBaseline:
    """Literature rules (and two marked heuristics); needs no fitting.

    A state is flagged when its rule fired on one of the last three events; when several fire,
    the first of gaming, anchoring, wheel-spinning, confirmation, overconfidence wins. The
    state scores (for AUCs) are the share of the last eight events on which each rule fired.
    """

    name: str = "rules"

    def fit(self, data: WindowDataset) -> RuleBaseline:
        """Return self (rules are not fitted)."""
        return self

    def predict_state(self, data: WindowDataset) -> IntArray:
        """Return the flagged state of each decision."""
        signs = rule_signs(data, _RULE_RECENT)
        real = data.M[:, -_RULE_RECENT:]
        pred = np.full(len(data), NONE, dtype=np.int64)
        for state in reversed(_RULE_PRIORITY):
            pred[(signs[state] & real).any(axis=1)] = state
        return pred

    def predict_state_proba(self, data: WindowDataset) -> FloatArray:
        """Return rule-firing rates as scores, normalised to sum to one."""
        signs = rule_signs(data, _SCORE_RECENT)
        real = data.M[:, -_SCORE_RECENT:]
        n_real = np.maximum(real.sum(axis=1), 1)
        scores = np.zeros((len(data), N_STATES), dtype=np.float64)
        for state, fired in signs.items():
            scores[:, state] = (fired & real).sum(axis=1) / n_real
        scores[:, NONE] = np.clip(1.0 - scores[:, 1:].sum(axis=1), 0.0, 1.0)
        # Ties at zero are broken by the decision itself so that flagged states score highest.
        pred = self.predict_state(data)
        scores[np.arange(len(data)), pred] += 1.0
        out: FloatArray = (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)
        return out

    def predict_next(self, data: WindowDataset) -> FloatArray | None:
        """Return ``None``: rules do not predict answers."""
        return None


def lr_inputs(data: WindowDataset) -> FloatArray:
    """Return the logistic-regression inputs: decision event, mean of last 8 events, query."""
    recent = data.previous_events(_SCORE_RECENT)
    real = data.M[:, -_SCORE_RECENT:]
    mean = recent.sum(axis=1) / np.maximum(real.sum(axis=1), 1)[:, None]
    return np.concatenate([data.last_event, mean, data.Q], axis=1).astype(np.float32)


@dataclass
class SoftmaxRegression:
    """Multinomial logistic regression trained by full-batch Adam with L2, in numpy.

    Attributes:
        l2: L2 penalty on the weights.
        steps: Optimiser steps.
        lr: Adam step size.
        class_weighted: Weight classes by inverse frequency (balanced), for rare states.
    """

    l2: float = 1e-4
    steps: int = 300
    lr: float = 0.05
    class_weighted: bool = False
    mean: FloatArray | None = field(default=None, repr=False)
    scale: FloatArray | None = field(default=None, repr=False)
    weights: FloatArray | None = field(default=None, repr=False)

    def fit(self, x: FloatArray, y: IntArray, n_classes: int) -> SoftmaxRegression:
        """Fit on inputs ``x [N, D]`` and labels ``y [N]``."""
        self.mean = x.mean(axis=0)
        self.scale = x.std(axis=0) + 1e-6
        z = self._design(x)
        zt = np.ascontiguousarray(z.T)
        n, d = z.shape
        # float32 throughout: skinny float64 products are several times slower here.
        onehot = np.zeros((n, n_classes), dtype=np.float32)
        onehot[np.arange(n), y] = 1.0
        if self.class_weighted:
            counts = np.bincount(y, minlength=n_classes).astype(np.float64) + 1.0
            sample_w = (n / (n_classes * counts))[y]
        else:
            sample_w = np.ones(n)
        sample_w = (sample_w / sample_w.sum()).astype(np.float32)
        w = np.zeros((d, n_classes), dtype=np.float32)
        m = np.zeros_like(w)
        v = np.zeros_like(w)
        b1, b2 = 0.9, 0.999
        for t in range(1, self.steps + 1):
            logits = z @ w
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            grad = zt @ ((p - onehot) * sample_w[:, None]) + self.l2 * w
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            w -= self.lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + 1e-8)
        self.weights = w
        return self

    def _design(self, x: FloatArray) -> FloatArray:
        assert self.mean is not None and self.scale is not None
        z = ((x - self.mean) / self.scale).astype(np.float32)
        return np.concatenate([z, np.ones((len(z), 1), dtype=np.float32)], axis=1)

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Return class probabilities ``[N, C]``."""
        if self.weights is None:
            raise RuntimeError("fit the regression before predicting")
        logits = self._design(x) @ self.weights
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        out: FloatArray = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
        return out


@dataclass
class LogisticBaseline:
    """Logistic regression on the same features the model sees (no sequence model)."""

    name: str = "logistic"
    states: SoftmaxRegression = field(
        default_factory=lambda: SoftmaxRegression(class_weighted=True)
    )
    nexts: SoftmaxRegression = field(default_factory=SoftmaxRegression)

    def fit(self, data: WindowDataset) -> LogisticBaseline:
        """Fit both regressions on a training dataset."""
        x = lr_inputs(data)
        self.states.fit(x, data.y_state, N_STATES)
        self.nexts.fit(x, data.y_next.astype(np.int64), 2)
        return self

    def predict_state_proba(self, data: WindowDataset) -> FloatArray:
        """Return state probabilities ``[N, 6]``."""
        return self.states.predict_proba(lr_inputs(data))

    def predict_state(self, data: WindowDataset) -> IntArray:
        """Return the most probable state."""
        out: IntArray = self.predict_state_proba(data).argmax(axis=1).astype(np.int64)
        return out

    def predict_next(self, data: WindowDataset) -> FloatArray:
        """Return p(next answer correct)."""
        return self.nexts.predict_proba(lr_inputs(data))[:, 1]


_GRID_L0 = (0.1, 0.3, 0.5, 0.7)
_GRID_T = (0.03, 0.08, 0.15, 0.25, 0.4)
_GRID_G = (0.1, 0.2, 0.3, 0.4)
_GRID_S = (0.05, 0.1, 0.2, 0.3)


@dataclass
class BKTBaseline:
    """Bayesian knowledge tracing, per-skill parameters by brute-force grid search.

    Uses first answers of each problem on the item's main skill, as skill builders do.
    """

    name: str = "bkt"
    params: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)

    def fit(self, data: WindowDataset) -> BKTBaseline:
        """Fit (L0, T, G, S) per skill by maximum likelihood over a parameter grid."""
        grid = np.array(list(itertools.product(_GRID_L0, _GRID_T, _GRID_G, _GRID_S)))
        l0, tr, g, s = (grid[:, k] for k in range(4))
        rows = np.flatnonzero((data.event_attempt == 1) & (data.event_skill >= 0))
        loglik: dict[int, npt.NDArray[np.float64]] = {}
        post: dict[tuple[int, int], npt.NDArray[np.float64]] = {}
        skill_l = data.event_skill[rows].tolist()
        learner_l = data.event_learner[rows].tolist()
        correct_l = data.event_correct[rows].tolist()
        for sk, lr, c in zip(skill_l, learner_l, correct_l, strict=True):
            key = (lr, sk)
            p = post.get(key)
            if p is None:
                p = l0.copy()
            p_correct = p * (1 - s) + (1 - p) * g
            ll = loglik.setdefault(sk, np.zeros(len(grid)))
            if c:
                ll += np.log(p_correct)
                p = p * (1 - s) / p_correct
            else:
                ll += np.log(1 - p_correct)
                p = p * s / (1 - p_correct)
            post[key] = p + (1 - p) * tr
        for sk, ll in loglik.items():
            best = int(np.argmax(ll))
            self.params[sk] = (float(l0[best]), float(tr[best]), float(g[best]), float(s[best]))
        return self

    def predict_next(self, data: WindowDataset) -> FloatArray:
        """Return p(next answer correct) from the next item's skill posterior at the decision."""
        default = (0.3, 0.12, 0.25, 0.1)
        n_events = len(data.event_skill)
        # Posterior of the next answer's skill after every event, replayed per learner.
        order = np.lexsort((np.arange(n_events), data.event_learner))
        want: dict[int, list[int]] = {}
        for d, row in enumerate(data.decision_row.tolist()):
            want.setdefault(row, []).append(d)
        out = np.full(len(data), np.nan, dtype=np.float32)
        post: dict[tuple[int, int], float] = {}
        skill_l = data.event_skill.tolist()
        learner_l = data.event_learner.tolist()
        correct_l = data.event_correct.tolist()
        attempt_l = data.event_attempt.tolist()
        next_skill = data.next_skill.tolist()
        for row in order.tolist():
            sk = skill_l[row]
            lr = learner_l[row]
            if attempt_l[row] == 1 and sk >= 0:
                l0, tr, g, s = self.params.get(sk, default)
                p = post.get((lr, sk), l0)
                if correct_l[row]:
                    p = p * (1 - s) / (p * (1 - s) + (1 - p) * g)
                else:
                    p = p * s / (p * s + (1 - p) * (1 - g))
                post[(lr, sk)] = p + (1 - p) * tr
            for d in want.get(row, ()):
                nsk = next_skill[d]
                l0, _, g, s = self.params.get(nsk, default)
                p = post.get((lr, nsk), l0)
                out[d] = p * (1 - s) + (1 - p) * g
        return out

    def predict_state_proba(self, data: WindowDataset) -> FloatArray | None:
        """Return ``None``: BKT traces knowledge, not behaviour."""
        return None

    def predict_state(self, data: WindowDataset) -> IntArray | None:
        """Return ``None``: BKT traces knowledge, not behaviour."""
        return None


@dataclass
class AlertCapped:
    """A state detector decided like the model: per-state thresholds under a false-alert cap.

    Attributes:
        inner: the baseline whose state scores are thresholded.
        thresholds: ``[5]`` thresholds of the non-``none`` states.
        name: the inner baseline's name.
    """

    inner: Baseline
    thresholds: npt.NDArray[np.float64]
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.inner.name

    def predict_state_proba(self, data: WindowDataset) -> FloatArray | None:
        """Return the inner baseline's state scores."""
        return self.inner.predict_state_proba(data)

    def predict_state(self, data: WindowDataset) -> IntArray | None:
        """Return the likeliest state over its threshold, else ``none``."""
        probs = self.inner.predict_state_proba(data)
        return None if probs is None else decide_states(probs, self.thresholds)

    def predict_next(self, data: WindowDataset) -> FloatArray | None:
        """Return the inner baseline's next-answer prediction."""
        return self.inner.predict_next(data)


def cap_alerts(
    baselines: list[Baseline], validation: WindowDataset, max_false_alert_rate: float
) -> list[Baseline]:
    """Return the baselines with every state detector put at the model's operating point.

    Thresholds are fit by :func:`inference.decision.fit_thresholds` on ``validation`` (the
    held-out learners the model's own thresholds came from); baselines that detect no state are
    returned as they are.
    """
    out: list[Baseline] = []
    for baseline in baselines:
        probs = baseline.predict_state_proba(validation)
        if probs is None:
            out.append(baseline)
            continue
        thresholds = fit_thresholds(probs, validation.y_state, max_false_alert_rate)
        out.append(AlertCapped(baseline, thresholds))
    return out


def fitted_baselines(train: WindowDataset) -> list[Baseline]:
    """Return the rule, logistic-regression and BKT baselines fitted on ``train``."""
    return [RuleBaseline().fit(train), LogisticBaseline().fit(train), BKTBaseline().fit(train)]


__all__ = [
    "AlertCapped",
    "BKTBaseline",
    "Baseline",
    "LogisticBaseline",
    "RuleBaseline",
    "SoftmaxRegression",
    "cap_alerts",
    "fitted_baselines",
    "lr_inputs",
    "rule_signs",
]

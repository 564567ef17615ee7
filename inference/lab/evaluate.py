"""``tutorstream model eval``: the model against baselines and the oracle on unseen learners.

Two cohorts from seeds never used in training (:data:`inference.lab.dataset.EVAL_SEED_BASE` on): one
from the simulator family the model was trained on, one from the other family. On each, the
model (its shipped ONNX graph, through the serving runtime, with its recorded decision
thresholds), the rule, logistic-regression and BKT baselines (fitted on the model's own training
cohort, and for the state detectors decided at the model's operating point: thresholds fit on the
model's validation learners under the model's cap on false alerts; their uncapped decisions are
reported beside) and the oracle (the simulator's true probability) are scored with
``inference.lab.metrics``.
The next-item policy is run in closed loop with the model as its scorer, against fixed order,
random and maximum-information choice. The floors of the issue are checked and reported.

Runs on the core install: no torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.decision import DEFAULT_ALERT_CAP
from inference.lab.baselines import AlertCapped, Baseline, cap_alerts, fitted_baselines
from inference.lab.ceiling import observable_ceiling
from inference.lab.closed_loop import evaluate_policies
from inference.lab.dataset import EVAL_SEED_BASE, ProgressPrinter, WindowDataset, build_dataset
from inference.lab.metrics import detection_delay, next_answer_scores, state_report
from inference.registry import ModelSpec
from inference.runtime import CPU, LearnerModel
from inference.states import STATES

FAMILIES = ("bkt", "irt")
MACRO_F1_MARGIN = 0.10
CROSS_FAMILY_MAX_DROP = 0.05
MAX_FALSE_ALERT_RATE = 0.02
ORACLE_AUC_GAP = 0.02
POLICY_MIN_SPEEDUP = 0.25
CEILING = "ceiling"
"""The next-answer row of :func:`inference.lab.ceiling.observable_ceiling`."""


@dataclass
class EvalOptions:
    """How large an evaluation to run.

    Attributes:
        n_learners: learners per evaluation cohort.
        seed: seed of the in-family cohort; the cross-family cohort uses ``seed + 1`` and the
            policy runs ``seed + 2``.
        policy_learners: simulated learners per policy in the closed loop (0 skips it).
        threads: CPU threads for the model.
        batch_size: windows per model call.
        show_progress: print progress lines.
        windows: score every decision over its window of ``window`` events, even for a model
            whose stream carries each learner's state from its first event (its step graphs,
            what the worker serves): for comparing the two.
    """

    n_learners: int = 200
    seed: int = EVAL_SEED_BASE
    policy_learners: int = 60
    threads: int = 2
    batch_size: int = 4096
    show_progress: bool = True
    windows: bool = False


def model_outputs(
    model: LearnerModel, data: WindowDataset, batch_size: int = 4096
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Run the serving runtime over a dataset: ``(state_probs, p_correct, decided_state)``."""
    probs, nexts, states = [], [], []
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        out = model.predict(*data.batch(idx))
        probs.append(out.state_probs)
        nexts.append(out.p_correct)
        states.append(out.state)
    return np.concatenate(probs), np.concatenate(nexts), np.concatenate(states)


def carried_outputs(
    model: LearnerModel, data: WindowDataset, batch_size: int = 4096
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Run the serving runtime as the stream does: each learner's state carried event by event.

    Every event of the cohort takes one recurrent step from the learner's first; the decisions
    are scored where they fall. ``batch_size`` is unused: the runtime splits the steps itself.
    """
    shape = model.state_shape
    if shape is None:
        raise ValueError(f"model {model.spec.ref}: no step graphs to carry a state with")
    learners = np.asarray(data.event_learner, dtype=np.int64)
    out, _ = model.step_events(
        data.event_features,
        learners,
        np.zeros((int(learners.max()) + 1, *shape), dtype=np.float32),
        data.Q,
        data.decision_row,
    )
    return out.state_probs, out.p_correct, out.state


def _delays(data: WindowDataset, pred: npt.NDArray[np.int64]) -> dict[str, Any]:
    return {
        r.state: {
            "episodes": r.episodes,
            "detected": r.detected,
            "mean_delay": r.mean_delay,
            "median_delay": r.median_delay,
        }
        for r in detection_delay(data.learner, data.step, data.y_state, pred)
    }


def _uncapped(data: WindowDataset, probs: npt.NDArray[np.float32]) -> dict[str, float]:
    report = state_report(data.y_state, np.argmax(probs, axis=1))
    return {"macro_f1": report.macro_f1, "false_alert_rate": report.false_alert_rate}


def score_cohort(
    label: str,
    data: WindowDataset,
    model: LearnerModel,
    baselines: list[Baseline],
    batch_size: int = 4096,
    ceiling: npt.NDArray[np.floating] | None = None,
    carried: bool = False,
) -> dict[str, Any]:
    """Score the model, every baseline, the observable ceiling and the oracle on one cohort.

    Next-answer prediction is scored twice: on every decision window (each answer predicted
    from every event between the previous answer and it), and once per answer from the window
    just before it (``next_answer_per_answer``, the knowledge-tracing protocol the floors use).
    With ``carried``, the model carries each learner's state (:func:`carried_outputs`).
    """
    outputs = carried_outputs if carried else model_outputs
    probs, p_correct, pred = outputs(model, data, batch_size)
    states: dict[str, Any] = {
        "model": {
            **state_report(data.y_state, pred, probs).to_dict(),
            "detection_delay": _delays(data, pred),
            # the same model without the alert cap, for comparing operating points only
            "argmax": _uncapped(data, probs),
        }
    }
    predictions: dict[str, npt.NDArray[np.floating]] = {"model": p_correct}
    for baseline in baselines:
        b_pred = baseline.predict_state(data)
        if b_pred is not None:
            states[baseline.name] = {
                **state_report(data.y_state, b_pred, baseline.predict_state_proba(data)).to_dict(),
                "detection_delay": _delays(data, b_pred),
            }
            if isinstance(baseline, AlertCapped):
                own = baseline.inner.predict_state(data)
                if own is not None:
                    report = state_report(data.y_state, own)
                    states[baseline.name]["argmax"] = {
                        "macro_f1": report.macro_f1,
                        "false_alert_rate": report.false_alert_rate,
                    }
        b_next = baseline.predict_next(data)
        if b_next is not None:
            predictions[baseline.name] = b_next
    if ceiling is not None:
        predictions[CEILING] = ceiling
    predictions["oracle"] = data.oracle
    per_answer = data.before_answer
    return {
        "label": label,
        "family": data.family,
        "seed": data.seed,
        "learners": len(np.unique(data.learner)),
        "windows": len(data),
        "state_share": {s: float(np.mean(data.y_state == k)) for k, s in enumerate(STATES)},
        "states": states,
        "next_answer": _next_answer_table(data.y_next, predictions),
        "next_answer_per_answer": _next_answer_table(
            data.y_next[per_answer], {k: v[per_answer] for k, v in predictions.items()}
        ),
    }


def _next_answer_table(
    y_next: npt.NDArray[np.float32], predictions: dict[str, npt.NDArray[np.floating]]
) -> dict[str, dict[str, float]]:
    out = {}
    for name, p in predictions.items():
        s = next_answer_scores(y_next, p)
        out[name] = {"auc": s.auc, "log_loss": s.log_loss, "ece": s.ece, "n": s.n}
    return out


def policy_section(
    model: LearnerModel,
    family: str,
    n_learners: int,
    seed: int,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Closed-loop time to mastery of the next-item policy, the model as its scorer.

    ``inference.lab.closed_loop.evaluate_policies`` runs the same simulated learners under fixed
    order, random choice, and the target and maximum-information policies scored by the model
    (with each learner's own recent window), by BKT and by the oracle.
    """
    result = evaluate_policies(model, family=family, n_learners=n_learners, seed=seed, progress=say)
    outcomes = result.get("outcomes", [])
    assert isinstance(outcomes, list)
    policies = {
        str(o["policy"]) + ("" if o["scorer"] == "-" else f" ({o['scorer']})"): {
            "mean_events": o["mean_events"],
            "median_events": o["median_events"],
            "mastered_share": o["mastered_share"],
            "reduction_vs_fixed": o["reduction_vs_fixed"],
        }
        for o in outcomes
    }
    return {**result, "policies": policies}


def _floor(measured: float | None, required: str, met: bool) -> dict[str, Any]:
    return {"measured": measured, "required": required, "met": bool(met)}


def check_floors(cohorts: list[dict[str, Any]], policy: dict[str, Any] | None) -> dict[str, Any]:
    """Check the issue's floors on the in-family (first) and cross-family (second) cohorts."""
    home, away = cohorts[0], cohorts[1]
    model_f1 = home["states"]["model"]["macro_f1"]
    baselines = {k: v for k, v in home["states"].items() if k != "model"}
    best_name = max(baselines, key=lambda k: baselines[k]["macro_f1"])
    best = baselines[best_name]
    floors: dict[str, Any] = {
        f"macro-F1 margin over best baseline ({best_name}), same alert cap": _floor(
            model_f1 - best["macro_f1"], f">= {MACRO_F1_MARGIN}",
            model_f1 - best["macro_f1"] >= MACRO_F1_MARGIN,
        ),
    }  # fmt: skip
    model_auc = {s["state"]: s["auc"] for s in home["states"]["model"]["per_state"]}
    worst_gap = math.inf
    for s in best["per_state"]:
        if s["auc"] is not None and not math.isnan(s["auc"]):
            worst_gap = min(worst_gap, model_auc[s["state"]] - s["auc"])
    floors[f"lowest per-state AUC gain over {best_name}"] = _floor(
        worst_gap if worst_gap != math.inf else None, ">= 0", worst_gap >= 0
    )
    drop = model_f1 - away["states"]["model"]["macro_f1"]
    floors["macro-F1 drop on the other family"] = _floor(
        drop, f"<= {CROSS_FAMILY_MAX_DROP}", drop <= CROSS_FAMILY_MAX_DROP
    )
    for cohort in (home, away):
        far = cohort["states"]["model"]["false_alert_rate"]
        floors[f"false-alert rate on none ({cohort['label']})"] = _floor(
            far, f"<= {MAX_FALSE_ALERT_RATE}", far <= MAX_FALSE_ALERT_RATE
        )
        scores = cohort.get("next_answer_per_answer") or cohort["next_answer"]
        gap = scores["oracle"]["auc"] - scores["model"]["auc"]
        floors[f"next-answer AUC gap to oracle ({cohort['label']})"] = _floor(
            gap, f"<= {ORACLE_AUC_GAP}", gap <= ORACLE_AUC_GAP
        )
    floors.update(policy_floor(policy))
    return floors


POLICY_FLOOR = "time-to-mastery reduction vs fixed order"


def policy_floor(policy: dict[str, Any] | None) -> dict[str, Any]:
    """Check the time-to-mastery floor of a policy section (empty when there is none)."""
    if not policy or "speedup_vs_fixed" not in policy:
        return {}
    speedup = float(policy["speedup_vs_fixed"])
    return {
        POLICY_FLOOR: _floor(speedup, f">= {POLICY_MIN_SPEEDUP}", speedup >= POLICY_MIN_SPEEDUP)
    }


def evaluate_model(spec: ModelSpec, options: EvalOptions | None = None) -> dict[str, Any]:
    """Evaluate a registered model; returns a JSON-ready report.

    Args:
        spec: the verified model.
        options: cohort sizes and seeds.
    """
    options = options or EvalOptions()
    started = time.perf_counter()
    training = spec.config.get("training", {})
    family = str(training.get("family", "bkt"))
    other = next(f for f in FAMILIES if f != family)
    window = spec.window

    def say(line: str) -> None:
        if options.show_progress:
            print(line, flush=True)

    seeds_used = [int(training.get("seed", 0)), int(training.get("seed", 0)) + 1]
    eval_seeds = [options.seed, options.seed + 1]
    if set(seeds_used) & set(eval_seeds):
        raise ValueError(f"seed: evaluation seeds {eval_seeds} overlap training seeds {seeds_used}")
    model = LearnerModel(spec, providers=[CPU], intra_op_threads=options.threads)
    # as the worker serves it: a carried state where the model has step graphs
    carried = not options.windows and model.state_shape is not None
    say(f"fitting baselines on the training cohort ({family}, seed {seeds_used[0]})")
    # the very cohort the model trained on, so the baselines see the same data
    train_data = build_dataset(
        family,
        int(training.get("n_learners", options.n_learners)),
        seeds_used[0],
        window=window,
        progress=ProgressPrinter("simulate baseline training cohort")
        if options.show_progress
        else None,
        **dict(training.get("dataset_options") or {}),
    )
    baselines = fitted_baselines(train_data)
    del train_data
    cap = float(training.get("max_false_alert_rate", DEFAULT_ALERT_CAP))
    say(f"putting the baselines at the model's alert cap ({cap:.3f}, seed {seeds_used[1]})")
    validation = build_dataset(
        family,
        int(training.get("val_learners", 150)),
        seeds_used[1],
        window=window,
        **dict(training.get("dataset_options") or {}),
    )
    baselines = cap_alerts(baselines, validation, cap)
    del validation
    cohorts = []
    for label, fam, seed in (
        ("in-family", family, options.seed),
        ("cross-family", other, options.seed + 1),
    ):
        say(f"scoring the {label} cohort ({fam}, seed {seed}, {options.n_learners} learners)")
        data = build_dataset(fam, options.n_learners, seed, window=window)
        say(f"observable ceiling of the {label} cohort (true parameters and states)")
        ceiling = observable_ceiling(fam, seed, options.n_learners)
        cohorts.append(
            score_cohort(
                label, data, model, baselines, options.batch_size, ceiling=ceiling, carried=carried
            )
        )
    policy = None
    if options.policy_learners > 0:
        say(f"closed-loop policy evaluation ({options.policy_learners} learners per policy)")
        policy = policy_section(
            model,
            family,
            options.policy_learners,
            options.seed + 2,
            say if options.show_progress else None,
        )
    return {
        "model": spec.ref,
        "trained_on": {"family": family, "seeds": seeds_used},
        "serving": "carried state" if carried else f"window of {window} events",
        "seeds": {
            "in-family": options.seed,
            "cross-family": options.seed + 1,
            "policy": options.seed + 2,
        },
        "decision_thresholds": spec.decision_thresholds,
        "cohorts": cohorts,
        "policy": policy,
        "floors": check_floors(cohorts, policy),
        "seconds": time.perf_counter() - started,
    }


def evaluate_policy_only(spec: ModelSpec, options: EvalOptions | None = None) -> dict[str, Any]:
    """Run only the closed-loop policy evaluation of a registered model (seed ``seed + 2``).

    The report has the same ``policy`` section and policy floor as :func:`evaluate_model`'s,
    and no cohorts; :func:`merge_policy` puts it into a full evaluation.
    """
    options = options or EvalOptions()
    if options.policy_learners <= 0:
        raise ValueError("policy_learners: must be positive to evaluate the policy")
    started = time.perf_counter()
    training = spec.config.get("training", {})
    family = str(training.get("family", "bkt"))
    say = print if options.show_progress else None
    if say is not None:
        say(f"closed-loop policy evaluation ({options.policy_learners} learners per policy)")
    model = LearnerModel(spec, providers=[CPU], intra_op_threads=options.threads)
    policy = policy_section(model, family, options.policy_learners, options.seed + 2, say)
    return {
        "model": spec.ref,
        "trained_on": {"family": family},
        "seeds": {"policy": options.seed + 2},
        "cohorts": [],
        "policy": policy,
        "floors": policy_floor(policy),
        "seconds": time.perf_counter() - started,
    }


def merge_policy(evaluation: dict[str, Any], policy_report: dict[str, Any]) -> dict[str, Any]:
    """Return ``evaluation`` with its policy section and floor replaced by ``policy_report``'s.

    Raises:
        ValueError: If the two were run on different policy seeds.
    """
    seed = (evaluation.get("seeds") or {}).get("policy")
    new_seed = policy_report["seeds"]["policy"]
    if seed is not None and seed != new_seed:
        raise ValueError(f"seed: the policy ran on seed {new_seed}, the evaluation on {seed}")
    merged = dict(evaluation)
    merged["policy"] = policy_report["policy"]
    merged["floors"] = {**(evaluation.get("floors") or {}), **policy_report["floors"]}
    return merged


def format_report(report: dict[str, Any]) -> str:
    """Render an evaluation report as tables."""

    def fmt(value: Any, digits: int = 3) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = [
        f"evaluation of {report['model']} (trained on {report['trained_on']}; "
        f"scored over a {report.get('serving', 'window')})"
    ]
    for cohort in report.get("cohorts", []):
        lines += [
            "",
            f"== {cohort['label']}: {cohort['family']} family, seed {cohort['seed']}, "
            f"{cohort['learners']} learners, {cohort['windows']:,} decisions",
            f"{'detector':<10} {'macroF1':>7} {'kappa':>6} {'FAR':>6}  "
            + " ".join(f"{s[:10]:>21}" for s in STATES),
            f"{'':<10} {'':>7} {'':>6} {'':>6}  " + " ".join(f"{'P/R/F1/AUC':>21}" for _ in STATES),
        ]
        for name, row in cohort["states"].items():
            cells = [
                f"{fmt(s['precision'], 2)}/{fmt(s['recall'], 2)}/{fmt(s['f1'], 2)}/"
                f"{fmt(s['auc'], 2)}"
                for s in row["per_state"]
            ]
            lines.append(
                f"{name:<10} {fmt(row['macro_f1']):>7} {fmt(row['kappa'], 2):>6} "
                f"{fmt(row['false_alert_rate']):>6}  " + " ".join(f"{c:>21}" for c in cells)
            )
        for name, row in cohort["states"].items():
            uncapped = row.get("argmax")
            if uncapped:
                lines.append(
                    f"{name} without the alert cap (its own decision): macro-F1 "
                    f"{fmt(uncapped['macro_f1'])}, false alerts on none "
                    f"{fmt(uncapped['false_alert_rate'])}"
                )
        delays = cohort["states"]["model"]["detection_delay"]
        lines.append(
            "model detection delay (mean events, detected/episodes): "
            + ", ".join(
                f"{s} {fmt(d['mean_delay'], 1)} ({d['detected']}/{d['episodes']})"
                for s, d in delays.items()
            )
        )
        per_answer = cohort.get("next_answer_per_answer") or {}
        lines.append(
            f"{'next answer':<12} {'AUC':>6} {'logloss':>8} {'ECE':>6}   "
            f"{'AUC':>6} {'logloss':>8} {'ECE':>6}  (every window | once per answer)"
        )
        for name, row in cohort["next_answer"].items():
            once = per_answer.get(name)
            tail = (
                f"   {fmt(once['auc']):>6} {fmt(once['log_loss']):>8} {fmt(once['ece']):>6}"
                if once
                else ""
            )
            lines.append(
                f"{name:<12} {fmt(row['auc']):>6} {fmt(row['log_loss']):>8} {fmt(row['ece']):>6}"
                + tail
            )
    policy = report.get("policy")
    if policy:
        lines += ["", "== next-item policy: events until all skills mastered"]
        for name, row in policy.get("policies", {}).items():
            lines.append(
                f"{name:<18} mean {fmt(row.get('mean_events'), 1):>8}  "
                f"mastered {fmt(row.get('mastered_share'))}"
            )
    lines += ["", "== floors"]
    for name, row in report["floors"].items():
        lines.append(
            f"{'met ' if row['met'] else 'MISS'} {name}: {fmt(row['measured'])} "
            f"(required {row['required']})"
        )
    return "\n".join(lines)

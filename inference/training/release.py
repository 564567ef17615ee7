"""Turn a trained model into a registry folder: weights, ONNX, parity, metrics, card, checksums.

Needs torch (it exports); the folder it writes is served without it.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from inference.decision import DEFAULT_ALERT_CAP
from inference.lab.dataset import EVAL_SEED_BASE, WindowDataset, build_dataset
from inference.registry import (
    CARD_FILE,
    CHECKSUMS_FILE,
    METRICS_FILE,
    STEP_FILE,
    ModelSpec,
    RegistryError,
    write_checksums,
)
from inference.states import STATES
from inference.training.export import FP16_FILE, ParityReport, export_onnx, parity, step_parity
from inference.training.modeling import TutorStreamModel
from inference.training.train import TrainResult, WindowArrays

PARITY_WINDOWS = 1000
PARITY_TOLERANCE = 1e-4

STATE_MEANING = {
    "none": "engaged work: times near the item's norm, hints when stuck, answers revised "
    "after feedback",
    "overconfidence": "submits far faster than the item's norm without hints or feedback; "
    "success falls toward guessing on hard items",
    "anchoring": "after a wrong answer, resubmits the same or nearly the same response, "
    "ignoring feedback",
    "confirmation": "after a wrong answer, skims or skips corrective feedback and opens "
    "resources that agree with the response already given",
    "gaming": "hint abuse (fast clicks to the bottom-out hint) or systematic rapid guessing",
    "wheel_spinning": "many attempts on one skill with no gain in mastery",
}


def _clean(value: Any) -> Any:
    """Make a metrics tree JSON-strict: NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def parity_windows(data: WindowArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the first 1,000 windows of ``data`` (evenly spread over it) as arrays."""
    n = min(PARITY_WINDOWS, len(data))
    idx = np.linspace(0, len(data) - 1, n).astype(np.int64)
    events, mask, query = data.batch(idx)
    return (
        np.ascontiguousarray(events, dtype=np.float32),
        np.ascontiguousarray(mask, dtype=np.bool_),
        np.ascontiguousarray(query, dtype=np.float32),
    )


def fp16_difference(folder: Path, events: np.ndarray, mask: np.ndarray, query: np.ndarray) -> float:
    """Largest absolute difference between the fp16 and fp32 graphs on the CPU (information)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    sessions = [
        ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
        for name in ("model.onnx", FP16_FILE)
    ]
    feeds = {"events": events, "mask": mask, "query": query}
    full, half = (s.run(None, feeds) for s in sessions)
    return float(max(np.abs(a - b).max() for a, b in zip(full, half, strict=True)))


def step_difference(
    model: TutorStreamModel, folder: Path, events: np.ndarray, mask: np.ndarray, query: np.ndarray
) -> float | None:
    """Largest difference between the window graph and the step graph over the same windows.

    ``None`` for a model without a step graph.

    Raises:
        RegistryError: when it exceeds the parity tolerance.
    """
    if not (folder / STEP_FILE).is_file():
        return None
    shape = (model.config.num_layers, model.config.hidden_size)
    report = step_parity(folder / "model.onnx", folder / STEP_FILE, events, mask, query, shape)
    if report.max_abs_diff > PARITY_TOLERANCE:
        raise RegistryError(
            f"step parity failed: max abs diff {report.max_abs_diff:.2e} > {PARITY_TOLERANCE:.0e}"
        )
    return report.max_abs_diff


def refuse_existing(folder: Path, overwrite: bool) -> None:
    """Raise :class:`RegistryError` when ``folder`` holds a version and ``overwrite`` is off."""
    if folder.exists() and not overwrite:
        raise RegistryError(f"{folder}: already exists; choose another version")


def write_model_folder(
    result: TrainResult,
    folder: Path,
    held_out: WindowArrays,
    name: str,
    version: str,
    evaluation: dict[str, Any] | None = None,
    encoder_comparison: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a complete, checksummed model folder.

    Args:
        result: the training result.
        folder: ``<registry>/<name>/<version>``; must not exist unless ``overwrite``.
        held_out: windows of learners not trained on; the first 1,000 check ONNX parity.
        name: model name (for the card).
        version: model version (for the card).
        evaluation: output of ``inference.lab.evaluate.evaluate``, if run.
        encoder_comparison: measured quality and throughput of the candidate encoders.
        overwrite: replace an existing folder.

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        RegistryError: when the folder exists and ``overwrite`` is false, or parity fails.
    """
    refuse_existing(folder, overwrite)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model = result.model.eval()
    model.save_pretrained(str(folder))
    export_onnx(model, folder)
    events, mask, query = parity_windows(held_out)
    report = parity(model, folder / "model.onnx", events, mask, query)
    if report.max_abs_diff > PARITY_TOLERANCE:
        raise RegistryError(
            f"ONNX parity failed: max abs diff {report.max_abs_diff:.2e} > {PARITY_TOLERANCE:.0e}"
        )
    metrics: dict[str, Any] = {
        "model": f"{name}@{version}",
        "training": {
            "options": model.config.training,
            "train_seconds": result.train_seconds,
            "data_seconds": result.data_seconds,
            "train_windows": result.train_windows,
            "history": result.history,
            "validation": result.validation,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "decision_thresholds": model.config.decision_thresholds,
        "parity": {
            "windows": report.windows,
            "max_abs_diff": report.max_abs_diff,
            "state_probs_max_abs_diff": report.state_probs_max_abs_diff,
            "p_correct_max_abs_diff": report.p_correct_max_abs_diff,
            "tolerance": PARITY_TOLERANCE,
            "fp16_vs_fp32_max_abs_diff_cpu": fp16_difference(folder, events, mask, query),
            "step_vs_window_max_abs_diff": step_difference(model, folder, events, mask, query),
        },
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "encoder_comparison": encoder_comparison,
        "evaluation": evaluation,
    }
    metrics = _clean(metrics)
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (folder / CARD_FILE).write_text(model_card(model, metrics, name, version), encoding="utf-8")
    write_checksums(folder)
    return metrics


def refresh_card(folder: Path, metrics: dict[str, Any]) -> None:
    """Rewrite ``metrics.json`` and the card of an existing folder, then its checksums."""
    model = TutorStreamModel.from_pretrained(str(folder))
    metrics = _clean(metrics)
    name, _, version = str(metrics.get("model", "@")).partition("@")
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (folder / CARD_FILE).write_text(model_card(model, metrics, name, version), encoding="utf-8")
    (folder / CHECKSUMS_FILE).unlink(missing_ok=True)
    write_checksums(folder)


def _threshold_cell(threshold: float | None) -> str:
    if threshold is None:
        return "-"
    return "never raised" if threshold > 1.0 else f"{threshold:.3f}"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _evaluation_section(evaluation: dict[str, Any] | None) -> list[str]:
    if not evaluation:
        return ["Not evaluated yet: run `tutorstream model eval --model <name@version> --write`."]
    seeds = evaluation.get("seeds") or {}
    lines = [
        "Learners from simulator seeds never used in training ("
        + ", ".join(f"{label} {seed}" for label, seed in seeds.items())
        + "); baselines fitted on the model's own training cohort.",
        "",
    ]
    for cohort in evaluation.get("cohorts", []):
        lines += [
            f"### {cohort['label']} ({cohort['family']} family, {cohort['learners']} learners, "
            f"{cohort['windows']:,} decisions)",
            "",
            "| detector | macro-F1 | false alerts on none | "
            + " | ".join(f"F1 {s}" for s in STATES[1:])
            + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in STATES[1:]) + " |",
        ]
        for detector, row in cohort["states"].items():
            f1s = {s["state"]: s["f1"] for s in row["per_state"]}
            lines.append(
                f"| {detector} | {_fmt(row['macro_f1'])} | {_fmt(row['false_alert_rate'])} | "
                + " | ".join(_fmt(f1s.get(s)) for s in STATES[1:])
                + " |"
            )
        lines += [
            "",
            "| detector | kappa | " + " | ".join(f"AUC {s}" for s in STATES[1:]) + " |",
            "| --- | --- | " + " | ".join("---" for _ in STATES[1:]) + " |",
        ]
        for detector, row in cohort["states"].items():
            aucs = {s["state"]: s["auc"] for s in row["per_state"]}
            lines.append(
                f"| {detector} | {_fmt(row['kappa'])} | "
                + " | ".join(_fmt(aucs.get(s)) for s in STATES[1:])
                + " |"
            )
        delays = cohort["states"]["model"].get("detection_delay") or {}
        if delays:
            lines += [
                "",
                "Model detection delay, mean events from onset to first detection (detected / "
                "episodes): "
                + ", ".join(
                    f"{state} {_fmt(d.get('mean_delay'), 1)} ({d.get('detected')}/"
                    f"{d.get('episodes')})"
                    for state, d in delays.items()
                )
                + ".",
            ]
        uncapped = {d: row["argmax"] for d, row in cohort["states"].items() if row.get("argmax")}
        if uncapped:
            lines += [
                "",
                "The rows above decide every detector at the model's operating point: thresholds "
                "fit on the validation learners under the same cap on false alerts on `none`. "
                "Without the cap (the model's argmax, the baselines' own decision rules): "
                + "; ".join(
                    f"{d} macro-F1 {_fmt(u['macro_f1'])} at {_fmt(u['false_alert_rate'])} false "
                    "alerts"
                    for d, u in uncapped.items()
                )
                + ".",
            ]
        per_answer = cohort.get("next_answer_per_answer") or {}
        lines += [
            "",
            "| next answer | AUC | log-loss | ECE | AUC, once per answer | log-loss | ECE |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for predictor, row in cohort["next_answer"].items():
            once = per_answer.get(predictor) or {}
            lines.append(
                f"| {predictor} | {_fmt(row['auc'])} | {_fmt(row['log_loss'])} | "
                f"{_fmt(row['ece'])} | {_fmt(once.get('auc'))} | {_fmt(once.get('log_loss'))} | "
                f"{_fmt(once.get('ece'))} |"
            )
        lines.append("")
    policy = evaluation.get("policy")
    if policy:
        lines += ["### Next-item policy: events until all skills mastered", ""]
        lines += ["| policy | mean events | mastered share |", "| --- | --- | --- |"]
        for label, row in policy.get("policies", {}).items():
            lines.append(
                f"| {label} | {_fmt(row.get('mean_events'), 1)} | "
                f"{_fmt(row.get('mastered_share'))} |"
            )
        lines.append("")
    floors = evaluation.get("floors", {})
    if floors:
        lines += [
            "### Floors",
            "",
            "| floor | measured | required | met |",
            "| --- | --- | --- | --- |",
        ]
        for label, row in floors.items():
            lines.append(
                f"| {label} | {_fmt(row.get('measured'))} | {row.get('required')} | "
                f"{'yes' if row.get('met') else 'NO'} |"
            )
        lines.append("")
    return lines


def _weak_spots(evaluation: dict[str, Any] | None) -> list[str]:
    if not evaluation or not evaluation.get("cohorts"):
        return []
    home = evaluation["cohorts"][0]
    per_state = [s for s in home["states"]["model"]["per_state"] if s["state"] != "none"]
    weakest = sorted(per_state, key=lambda s: s["f1"])[:2]
    lines = [
        "- Weakest states under the alert cap: "
        + " and ".join(f"`{s['state']}` (recall {_fmt(s['recall'], 2)})" for s in weakest)
        + "; many of their episodes are caught late or not at all (detection delay above).",
    ]
    scores = home.get("next_answer_per_answer") or home["next_answer"]
    oracle = scores.get("oracle", {}).get("auc")
    model_auc = scores.get("model", {}).get("auc")
    ceiling = scores.get("ceiling", {}).get("auc")
    if oracle is not None and model_auc is not None:
        lines.append(
            f"- Next-answer AUC {_fmt(model_auc)} against the oracle's {_fmt(oracle)} (once per "
            "answer): the oracle reads the simulated learner's latent knowledge, which events "
            "reveal only through noisy answers"
            + (
                f"; a Bayesian filter told the learner's true parameters and states, and "
                f"inferring only the knowledge, reaches {_fmt(ceiling)}"
                if ceiling is not None
                else ""
            )
            + "."
        )
    missed = [label for label, row in (evaluation.get("floors") or {}).items() if not row["met"]]
    if missed:
        lines.append("- Floors not met: " + "; ".join(missed) + ".")
    return lines


def model_card(model: TutorStreamModel, metrics: dict[str, Any], name: str, version: str) -> str:
    """Render ``MODEL_CARD.md`` from the config and the measured metrics."""
    cfg = model.config
    options = cfg.training
    training = metrics.get("training", {})
    parity_row = metrics.get("parity", {})
    comparison = metrics.get("encoder_comparison")
    lines = [
        f"# Model card: {name}@{version}",
        "",
        "Multi-task learner model: detects a learner's behavioural state at each event and "
        "predicts success on the learner's next item. Trained on simulated learners whose "
        "true states are known; no real learner data was used.",
        "",
        "## Data",
        "",
        f"- Simulator family `{options.get('family')}`: {options.get('n_learners')} training "
        f"learners (seed {options.get('seed')}), {options.get('val_learners')} validation "
        f"learners (seed {int(options.get('seed', 0)) + 1}).",
        f"- {training.get('train_windows', 0):,} training windows of {cfg.window} events; "
        f"{cfg.n_event_features} event features, {cfg.n_query_features} query features "
        "(computed by `inference.features`, the same code the stream runs).",
        "",
        "## States",
        "",
        "| index | state | what it looks like | alert threshold |",
        "| --- | --- | --- | --- |",
    ]
    for index, state in enumerate(cfg.states):
        threshold = cfg.decision_thresholds.get(state)
        lines.append(
            f"| {index} | `{state}` | {STATE_MEANING.get(state, '')} | "
            f"{_threshold_cell(threshold)} |"
        )
    lines += [
        "",
        "Decision rule (`inference.decision.decide_states`, applied identically by evaluation "
        "and the stream): raise the likeliest non-`none` state whose probability reaches its "
        "threshold, else `none`. Thresholds maximise validation macro-F1 with false alerts on "
        f"`none` capped at {options.get('max_false_alert_rate')}.",
        "",
        "## Architecture",
        "",
        f"- Encoder: `{cfg.encoder}`, hidden size {cfg.hidden_size}, {cfg.num_layers} layer(s); "
        f"{metrics.get('parameters', 0):,} parameters.",
        "- Heads: six-way state classifier at the decision event; next-answer probability from "
        "the encoding and the next item's query features.",
        "- ONNX inputs `events` [B, T, F] float32, `mask` [B, T] bool, `query` [B, Q] float32; "
        "outputs `state_probs` [B, 6], `p_correct` [B]; dynamic batch. `model.onnx` is fp32 "
        "(CPU), `model.fp16.onnx` computes in fp16 with fp32 inputs and outputs (CUDA). "
        "`candidates.onnx` scores K candidate items per learner with one encoder pass: "
        "`events` [L, T, F], `mask` [L, T], `queries` [L, K, Q] in, `p_correct` [L, K] out.",
        "",
        "## Encoder choice",
        "",
    ]
    if comparison:
        lines += [
            "| encoder | validation macro-F1 | validation next-answer AUC | ONNX windows/s "
            "(batch 512, CPU) | train seconds |",
            "| --- | --- | --- | --- | --- |",
        ]
        for encoder, row in comparison.get("candidates", {}).items():
            lines.append(
                f"| {encoder} | {_fmt(row.get('macro_f1'))} | {_fmt(row.get('next_auc'))} | "
                f"{_fmt(row.get('onnx_windows_per_s'), 0)} | {_fmt(row.get('train_seconds'), 0)} |"
            )
        probe = comparison.get("probe", {})
        lines += [
            "",
            f"Both trained on the same probe ({probe.get('learners')} training learners, "
            f"{probe.get('windows', 0):,} windows, {probe.get('epochs')} epochs) and scored on "
            f"the same {probe.get('validation_windows', 0):,} validation windows; throughput is "
            "ONNX Runtime on this machine's CPU with the training thread count.",
            "",
            f"Chosen: `{comparison.get('chosen')}`. {comparison.get('reason', '')}",
            "",
        ]
    else:
        lines += [f"`{cfg.encoder}` (no comparison recorded for this version).", ""]
    lines += [
        "## Training",
        "",
        f"- {training.get('train_seconds', 0):.0f} s of optimisation "
        f"({training.get('data_seconds', 0):.0f} s simulating data) on "
        f"{training.get('threads')} CPU threads, torch {training.get('torch')}.",
        f"- Validation: macro-F1 {_fmt(training.get('validation', {}).get('macro_f1'))}, "
        f"false alerts on none {_fmt(training.get('validation', {}).get('false_alert_rate_none'))}"
        f", next-answer AUC {_fmt(training.get('validation', {}).get('next_answer_auc'))}.",
        f"- ONNX parity on {parity_row.get('windows')} held-out windows: max abs diff "
        f"{parity_row.get('max_abs_diff', 0):.2e} (tolerance {PARITY_TOLERANCE:.0e}); fp16 "
        f"graph vs fp32 on the CPU: {parity_row.get('fp16_vs_fp32_max_abs_diff_cpu', 0):.2e}"
        + (
            f"; the step graph over the same windows, event by event: {step_diff:.2e}."
            if (step_diff := parity_row.get("step_vs_window_max_abs_diff")) is not None
            else "."
        ),
        "",
        "## Metrics against baselines",
        "",
        *_evaluation_section(metrics.get("evaluation")),
        "",
        "## Limits",
        "",
        "- Trained and judged on simulated learners only. The simulator's states, their "
        "mixture and their timing signatures are assumptions; real classrooms will differ, "
        "so thresholds should be re-fit on labelled real data before alerts reach learners, "
        "and every alert goes to a tutor's review queue first.",
        *(
            [
                f"- Its window graph sees the last {cfg.window} events of a learner. The stream "
                "runs its step graph (`step.onnx`) instead: the GRU's state carried from each "
                "learner's first event, one recurrent step per event. While a history fits the "
                "window the two give the same outputs (parity above); past it the state keeps "
                "what the window forgets, and the per-skill features carry the rest."
            ]
            if parity_row.get("step_vs_window_max_abs_diff") is not None
            else [
                f"- It sees the last {cfg.window} events of a learner; longer histories reach it "
                "only through the per-skill features."
            ]
        ),
        *_weak_spots(metrics.get("evaluation")),
        "- Features must come from `inference.features` with the same names and order as in "
        "`config.json`; the runtime refuses other shapes.",
        "",
        "## Reproduce",
        "",
        "```",
        f"tutorstream model train --name {name} --version {version} --family "
        f"{options.get('family')} --learners {options.get('n_learners')} --val-learners "
        f"{options.get('val_learners')} --seed {options.get('seed')} --encoder {cfg.encoder} "
        f"--hidden-size {cfg.hidden_size} --layers {cfg.num_layers} --epochs "
        f"{options.get('epochs')} --batch-size {options.get('batch_size')} --learning-rate "
        f"{options.get('learning_rate')} --threads {options.get('threads')}"
        + (
            f" --next-loss-weight {options.get('next_loss_weight')}"
            if float(options.get("next_loss_weight", 1.0)) != 1.0
            else ""
        )
        + (
            f" --max-false-alert-rate {cap}"
            if (cap := float(options.get("max_false_alert_rate", DEFAULT_ALERT_CAP)))
            != DEFAULT_ALERT_CAP
            else ""
        )
        + (
            f" --producer-habits {habits}"
            if (habits := (options.get("dataset_options") or {}).get("producer_habits"))
            else ""
        ),
        "```",
        "",
        "Add `--registry DIR` to write the copy elsewhere. With the same seed, options, "
        "thread count, torch version and CPU this gives the same `model.safetensors`, "
        "`model.onnx`, `model.fp16.onnx`, `candidates.onnx`, `config.json` and, for a GRU, "
        "`step.onnx` and `step_candidates.onnx`, bit for bit: "
        "torch runs in "
        "deterministic mode, every random draw is seeded, and the encoder comparison "
        "(`--compare-encoders`) trains its probes before the final model is seeded afresh, so "
        "it leaves the weights unchanged. On another CPU, thread count or torch version the "
        "results agree within floating-point tolerance rather than bitwise; compare "
        "`metrics.json`. `checksums.sha256` lists the SHA-256 of every file; the runtime "
        "refuses a file whose hash does not match.",
        "",
    ]
    return "\n".join(lines)


def held_out_windows(family: str, window: int, n: int = PARITY_WINDOWS) -> WindowDataset:
    """Return ``n`` windows of simulated learners from the evaluation seed range."""
    learners = 8
    while True:
        data = build_dataset(family, learners, EVAL_SEED_BASE + 999, window=window)
        if len(data) >= n or learners >= 512:
            return data
        learners *= 2


def reexport(spec: ModelSpec, out_root: Path | None = None) -> tuple[Path, ParityReport]:
    """Export a registered model's weights to ONNX again, check parity and re-sign the folder.

    Args:
        spec: the verified model.
        out_root: registry root to write a copy into; ``None`` rewrites the model's own folder.

    Raises:
        RegistryError: when the target exists already or parity fails.
    """
    target = spec.folder if out_root is None else out_root / spec.name / spec.version
    if target.resolve() != spec.folder.resolve():
        if target.exists():
            raise RegistryError(f"{target}: already exists")
        shutil.copytree(spec.folder, target)
    model = TutorStreamModel.from_pretrained(str(target)).eval()
    export_onnx(model, target)
    data = held_out_windows(str(model.config.training.get("family", "bkt")), spec.window)
    events, mask, query = parity_windows(data)
    report = parity(model, target / "model.onnx", events, mask, query)
    if report.max_abs_diff > PARITY_TOLERANCE:
        raise RegistryError(
            f"ONNX parity failed: max abs diff {report.max_abs_diff:.2e} > {PARITY_TOLERANCE:.0e}"
        )
    metrics = json.loads((target / METRICS_FILE).read_text(encoding="utf-8"))
    metrics["parity"] = {
        **metrics.get("parity", {}),
        "windows": report.windows,
        "max_abs_diff": report.max_abs_diff,
        "state_probs_max_abs_diff": report.state_probs_max_abs_diff,
        "p_correct_max_abs_diff": report.p_correct_max_abs_diff,
        "fp16_vs_fp32_max_abs_diff_cpu": fp16_difference(target, events, mask, query),
        "step_vs_window_max_abs_diff": step_difference(model, target, events, mask, query),
    }
    refresh_card(target, metrics)
    return target, report

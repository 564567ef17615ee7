"""Training of the learner model on simulated learners (CPU, seeded, reproducible).

The train, validation and evaluation cohorts come from disjoint simulator seeds: training learners
from ``seed``, validation learners (early stopping and the decision thresholds) from
``seed + 1``; evaluation uses seeds from :data:`inference.lab.dataset.EVAL_SEED_BASE` on, which
training never touches.

With the same seed, options, thread count, torch version and machine, training repeats bit for
bit: every random draw comes from seeded generators and torch runs in deterministic mode.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from inference.decision import DEFAULT_ALERT_CAP, decide_states, fit_thresholds
from inference.features import EVENT_FEATURES, QUERY_FEATURES
from inference.lab.dataset import ProgressPrinter, WindowDataset, build_dataset
from inference.lab.metrics import next_answer_scores, state_report
from inference.states import STATES
from inference.training.modeling import TutorStreamConfig, TutorStreamModel


class WindowArrays(Protocol):
    """What training reads from a window dataset (``inference.lab.dataset.WindowDataset``)."""

    Q: npt.NDArray[np.float32]
    y_state: npt.NDArray[np.int64]
    y_next: npt.NDArray[np.float32]

    def __len__(self) -> int: ...

    def batch(
        self, idx: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Return ``(X [B, T, F], M [B, T], Q [B, Q])`` of the decisions ``idx``."""
        ...


@dataclass
class TrainOptions:
    """Everything that determines a trained model; recorded in its config for reproduction.

    Attributes:
        family: simulator family the training learners come from (``bkt`` or ``irt``).
        n_learners: training learners.
        val_learners: validation learners (thresholds, best epoch).
        seed: simulator seed of the training cohort and the seed of every torch draw.
        window: events per window.
        encoder: ``gru`` or ``transformer``.
        hidden_size: encoder and head width.
        num_layers: encoder layers.
        num_heads: attention heads (transformer).
        intermediate_size: feed-forward width (transformer).
        dropout: dropout rate.
        epochs: passes over the training windows.
        batch_size: windows per optimiser step.
        learning_rate: peak learning rate of the one-cycle schedule.
        weight_decay: AdamW weight decay.
        next_loss_weight: weight of the next-answer loss.
        max_false_alert_rate: cap on alerts raised on ``none`` events when fitting thresholds
            (below the 2% floor, to leave room for cohort-to-cohort variation).
        threads: torch threads (2 on the reference machine).
        dataset_options: extra keyword arguments for ``build_dataset``.
    """

    family: str = "bkt"
    n_learners: int = 600
    val_learners: int = 150
    seed: int = 20240601
    window: int = 32
    encoder: str = "gru"
    hidden_size: int = 48
    num_layers: int = 1
    num_heads: int = 4
    intermediate_size: int = 96
    dropout: float = 0.1
    epochs: int = 4
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    next_loss_weight: float = 1.0
    max_false_alert_rate: float = DEFAULT_ALERT_CAP
    threads: int = 2
    dataset_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """A trained model and what training measured.

    Attributes:
        model: the trained model, thresholds set in its config.
        history: per-epoch training and validation losses.
        validation: metrics on the validation cohort at the chosen thresholds.
        train_seconds: wall time of the optimisation (data building excluded).
        data_seconds: wall time spent building datasets.
        train_windows: windows trained on per epoch.
    """

    model: TutorStreamModel
    history: list[dict[str, float]]
    validation: dict[str, float]
    train_seconds: float
    data_seconds: float = 0.0
    train_windows: int = 0


def set_determinism(seed: int, threads: int) -> None:
    """Seed torch and numpy, cap threads and make torch kernels deterministic."""
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        # fixed for the whole process once any parallel work ran; then it stays as it is
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def class_weights(labels: npt.NDArray[np.int64], n_states: int) -> torch.Tensor:
    """Inverse square-root frequency weights, mean 1, so rare states are not drowned out."""
    counts = np.bincount(labels, minlength=n_states).astype(np.float64) + 1.0
    weights = counts**-0.5
    weights *= n_states / weights.sum()
    return torch.tensor(weights, dtype=torch.float32)


def _tensors(
    data: WindowArrays, idx: npt.NDArray[np.int64]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    events, mask, query = data.batch(idx)
    return (
        torch.from_numpy(np.ascontiguousarray(events, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(mask, dtype=np.bool_)),
        torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32)),
    )


def predict_arrays(
    model: TutorStreamModel, data: WindowArrays, batch_size: int = 2048
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Run the PyTorch model over a dataset; returns ``(state_probs, p_correct)``."""
    model.eval()
    states: list[npt.NDArray[np.float32]] = []
    nexts: list[npt.NDArray[np.float32]] = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            idx = np.arange(start, min(start + batch_size, len(data)))
            sp, pc = model.predict_proba(*_tensors(data, idx))
            states.append(sp.numpy())
            nexts.append(pc.numpy())
    return np.concatenate(states), np.concatenate(nexts)


def _loss_on(model: TutorStreamModel, data: WindowArrays, batch_size: int = 2048) -> float:
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            idx = np.arange(start, min(start + batch_size, len(data)))
            out = model(
                *_tensors(data, idx),
                state_labels=torch.from_numpy(data.y_state[idx].astype(np.int64)),
                next_labels=torch.from_numpy(data.y_next[idx].astype(np.float32)),
            )
            total += float(out.loss) * len(idx)
    return total / max(len(data), 1)


def train_on_arrays(
    train: WindowArrays,
    val: WindowArrays,
    options: TrainOptions,
    event_features: tuple[str, ...],
    query_features: tuple[str, ...],
    show_progress: bool = True,
) -> TrainResult:
    """Train a model on prepared windows and fit its decision thresholds on ``val``.

    Args:
        train: training windows.
        val: validation windows from other learners.
        options: sizes, schedule and seed.
        event_features: names of the event features (columns of ``X``).
        query_features: names of the query features (columns of ``Q``).
        show_progress: print progress lines with rate and ETA on stderr.
    """
    set_determinism(options.seed, options.threads)
    config = TutorStreamConfig(
        encoder=options.encoder,
        event_features=list(event_features),
        query_features=list(query_features),
        states=list(STATES),
        window=options.window,
        hidden_size=options.hidden_size,
        num_layers=options.num_layers,
        num_heads=options.num_heads,
        intermediate_size=options.intermediate_size,
        dropout=options.dropout,
        next_loss_weight=options.next_loss_weight,
        training=asdict(options),
    )
    model = TutorStreamModel(config)
    ys = torch.from_numpy(np.ascontiguousarray(train.y_state, dtype=np.int64))
    yn = torch.from_numpy(np.ascontiguousarray(train.y_next, dtype=np.float32))
    weights = class_weights(train.y_state, len(STATES))
    n = len(train)
    steps_per_epoch = math.ceil(n / options.batch_size)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=options.learning_rate,
        total_steps=steps_per_epoch * options.epochs,
        pct_start=0.15,
    )
    generator = torch.Generator().manual_seed(options.seed)
    history: list[dict[str, float]] = []
    best_loss = math.inf
    best_state: dict[str, torch.Tensor] = {}
    started = time.perf_counter()
    total = n * options.epochs
    progress = ProgressPrinter("train", every_s=5.0, unit="windows") if show_progress else None
    if progress is not None:
        progress(0, total)
    for epoch in range(options.epochs):
        model.train()
        order = torch.randperm(n, generator=generator).numpy()
        running = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * options.batch_size : (step + 1) * options.batch_size]
            events, mask, query = _tensors(train, idx)
            out = model(events, mask, query, ys[idx], yn[idx], state_weights=weights)
            optimiser.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            running += float(out.loss.detach()) * len(idx)
            if progress is not None:
                progress(epoch * n + step * options.batch_size + len(idx), total)
        val_loss = _loss_on(model, val)
        history.append({"epoch": epoch + 1, "train_loss": running / n, "val_loss": val_loss})
        if val_loss < best_loss:
            best_loss = val_loss
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if show_progress:
            print(
                f"epoch {epoch + 1}/{options.epochs}: train loss {running / n:.4f}, "
                f"validation loss {val_loss:.4f}",
                flush=True,
            )
    train_seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    model.eval()
    state_probs, p_correct = predict_arrays(model, val)
    thresholds = fit_thresholds(state_probs, val.y_state, options.max_false_alert_rate)
    model.config.decision_thresholds = {
        s: float(t) for s, t in zip(STATES[1:], thresholds, strict=True)
    }
    pred = decide_states(state_probs, thresholds)
    report = state_report(val.y_state, pred)
    validation = {
        "loss": best_loss,
        "macro_f1": report.macro_f1,
        "false_alert_rate_none": report.false_alert_rate,
        "macro_f1_argmax": state_report(val.y_state, np.argmax(state_probs, axis=1)).macro_f1,
        "next_answer_auc": next_answer_scores(val.y_next, p_correct).auc,
    }
    return TrainResult(model, history, validation, train_seconds, train_windows=n)


def simulate_cohorts(
    options: TrainOptions, show_progress: bool = True
) -> tuple[WindowDataset, WindowDataset, float]:
    """Simulate the training (``seed``) and validation (``seed + 1``) cohorts.

    Returns:
        ``(train_data, val_data, seconds)``.
    """
    started = time.perf_counter()
    common = {"window": options.window, **options.dataset_options}
    train_data = build_dataset(
        options.family, options.n_learners, options.seed, **common,
        progress=ProgressPrinter("simulate training cohort") if show_progress else None,
    )  # fmt: skip
    val_data = build_dataset(options.family, options.val_learners, options.seed + 1, **common)
    return train_data, val_data, time.perf_counter() - started


def train(
    options: TrainOptions, show_progress: bool = True
) -> tuple[TrainResult, WindowDataset, WindowDataset]:
    """Simulate the cohorts and train (see :func:`train_on_arrays`).

    Returns:
        ``(result, train_data, val_data)``.
    """
    train_data, val_data, data_seconds = simulate_cohorts(options, show_progress)
    result = train_on_arrays(
        train_data,
        val_data,
        options,
        tuple(EVENT_FEATURES),
        tuple(QUERY_FEATURES),
        show_progress=show_progress,
    )
    result.data_seconds = data_seconds
    return result, train_data, val_data


def onnx_throughput(model: TutorStreamModel, threads: int, batch: int = 512) -> float:
    """Windows/s of the model's fp32 ONNX graph on the CPU at one batch size."""
    import onnxruntime as ort

    from inference.lab.throughput import time_calls
    from inference.training.export import onnx_bytes

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(onnx_bytes(model), options, providers=["CPUExecutionProvider"])
    cfg = model.config
    rng = np.random.default_rng(0)
    feeds = {
        "events": rng.normal(size=(batch, cfg.window, cfg.n_event_features)).astype(np.float32),
        "mask": np.ones((batch, cfg.window), dtype=np.bool_),
        "query": rng.normal(size=(batch, cfg.n_query_features)).astype(np.float32),
    }
    measured = time_calls("onnx", batch, lambda: session.run(None, feeds), 20, 2.0)
    return measured.windows_per_s


ENCODER_ALTERNATIVE: dict[str, dict[str, Any]] = {
    "gru": {"encoder": "transformer", "num_layers": 2},
    "transformer": {"encoder": "gru", "num_layers": 1},
}
"""The other candidate and the depth it is compared at."""

QUALITY_MARGIN = 0.01
"""Quality differences below this count as a tie, settled by throughput."""


def compare_encoders(
    options: TrainOptions,
    train_data: WindowDataset,
    val_data: WindowDataset,
    probe_fraction: float = 1 / 3,
    probe_epochs: int = 3,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train both encoders on the same probe data and pick one by quality, then speed.

    Each candidate trains on the windows of ``probe_fraction`` of the training learners for
    ``probe_epochs`` epochs (the full run of the slower candidate would not fit the training
    budget) and is scored on the whole validation cohort. Quality is macro-F1 at the fitted
    thresholds and next-answer AUC; when both differ by less than :data:`QUALITY_MARGIN`, the
    faster ONNX graph wins.

    Returns:
        The measured comparison for the model card; ``"chosen"`` names the encoder.
    """
    probe, _ = train_data.split_by_learner(probe_fraction, seed=options.seed)
    rows: dict[str, dict[str, Any]] = {}
    for extra in ({}, ENCODER_ALTERNATIVE[options.encoder]):
        candidate_options = TrainOptions(**{**asdict(options), "epochs": probe_epochs, **extra})
        encoder = candidate_options.encoder
        candidate = train_on_arrays(
            probe,
            val_data,
            candidate_options,
            EVENT_FEATURES,
            QUERY_FEATURES,
            show_progress=show_progress,
        )
        rows[encoder] = {
            "macro_f1": candidate.validation["macro_f1"],
            "next_auc": candidate.validation["next_answer_auc"],
            "onnx_windows_per_s": onnx_throughput(candidate.model, options.threads),
            "train_seconds": candidate.train_seconds,
            "train_windows_per_s": candidate.train_windows * probe_epochs / candidate.train_seconds,
            "parameters": int(sum(p.numel() for p in candidate.model.parameters())),
            "hidden_size": candidate_options.hidden_size,
            "num_layers": candidate_options.num_layers,
        }
    a, b = list(rows)
    d_f1 = rows[a]["macro_f1"] - rows[b]["macro_f1"]
    d_auc = rows[a]["next_auc"] - rows[b]["next_auc"]
    if abs(d_f1) < QUALITY_MARGIN and abs(d_auc) < QUALITY_MARGIN:
        chosen = max(rows, key=lambda e: rows[e]["onnx_windows_per_s"])
        reason = (
            f"Quality within {QUALITY_MARGIN} on both tasks (macro-F1 {d_f1:+.3f}, "
            f"next-answer AUC {d_auc:+.3f} for {a} over {b}); the faster ONNX graph wins."
        )
    else:
        chosen = a if d_f1 + d_auc > 0 else b
        reason = (
            f"Better quality (macro-F1 {d_f1:+.3f}, next-answer AUC {d_auc:+.3f} for {a} over {b})."
        )
    if chosen == "gru":
        reason += (
            " A GRU also lets a stream carry one hidden state per learner and advance it by "
            "one step per event instead of re-reading the window."
        )
    return {
        "candidates": rows,
        "chosen": chosen,
        "reason": reason,
        "probe": {
            "learners": len(np.unique(probe.learner)),
            "windows": len(probe),
            "epochs": probe_epochs,
            "validation_windows": len(val_data),
        },
    }

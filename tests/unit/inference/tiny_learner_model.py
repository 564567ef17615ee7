"""A tiny learner model trained once per test session on a tiny simulated cohort."""

from __future__ import annotations

import functools

from inference.features import EVENT_FEATURES, QUERY_FEATURES
from inference.lab.dataset import EVAL_SEED_BASE, WindowDataset, build_dataset
from inference.training.train import TrainOptions, TrainResult, train_on_arrays

TINY_WINDOW = 8


def tiny_options(**overrides: object) -> TrainOptions:
    base: dict[str, object] = {
        "n_learners": 6,
        "val_learners": 4,
        "seed": 11,
        "window": TINY_WINDOW,
        "hidden_size": 8,
        "epochs": 1,
        "batch_size": 128,
        "threads": 1,
        "dataset_options": {"problems_per_learner": 40},
    }
    base.update(overrides)
    return TrainOptions(**base)  # type: ignore[arg-type]


@functools.cache
def cohort(seed: int, learners: int) -> WindowDataset:
    return build_dataset("bkt", learners, seed, window=TINY_WINDOW, problems_per_learner=40)


def train_tiny(**overrides: object) -> TrainResult:
    options = tiny_options(**overrides)
    train = cohort(options.seed, options.n_learners)
    val = cohort(options.seed + 1, options.val_learners)
    return train_on_arrays(train, val, options, EVENT_FEATURES, QUERY_FEATURES, show_progress=False)


@functools.cache
def tiny_gru() -> TrainResult:
    return train_tiny()


def held_out() -> WindowDataset:
    return cohort(EVAL_SEED_BASE + 5, 10)

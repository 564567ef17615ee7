"""Timing a learner model's calls: windows/s and latency percentiles at one batch size.

Shared by the inference benchmark (``tutorstream bench inference``) and training's throughput
check of an exported graph, so both report the same figures the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.registry import ModelSpec


@dataclass
class Measurement:
    """Timing of one engine at one batch size.

    Attributes:
        engine: ``onnxruntime-cpu``, ``pytorch-eager-cpu``, ``onnxruntime-cuda`` or
            ``micro-batcher-cpu``.
        batch: windows per call.
        calls: calls timed.
        windows_per_s: windows answered per second.
        p50_ms: median latency of one call.
        p99_ms: 99th-percentile latency of one call.
    """

    engine: str
    batch: int
    calls: int
    windows_per_s: float
    p50_ms: float
    p99_ms: float


def sample_windows(
    spec: ModelSpec, n: int, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """Return ``n`` reproducible windows of the model's shape, with varied history lengths."""
    rng = np.random.default_rng(seed)
    events = rng.normal(size=(n, spec.window, len(spec.event_features))).astype(np.float32)
    lengths = rng.integers(1, spec.window + 1, size=n)
    mask = np.arange(spec.window)[None, :] >= (spec.window - lengths[:, None])
    events *= mask[:, :, None]
    query = rng.normal(size=(n, len(spec.query_features))).astype(np.float32)
    return events, mask, query


def time_calls(
    engine: str, batch: int, call: Callable[[], object], min_calls: int, min_seconds: float
) -> Measurement:
    """Time ``call`` after one untimed warm-up until both minimums are reached."""
    call()
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < min_calls or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    total = sum(latencies)
    ms = np.array(latencies) * 1000.0
    return Measurement(
        engine=engine,
        batch=batch,
        calls=len(latencies),
        windows_per_s=batch * len(latencies) / total,
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
    )

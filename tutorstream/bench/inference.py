"""``tutorstream bench inference``: windows/s and latency of the learner model.

ONNX Runtime (the serving path) and PyTorch eager (the training framework, the baseline) run the
same registered model on the same windows at batch 1, 64 and 512, on the CPU with the same thread
count, in one run; the ratio is ONNX Runtime's speed over PyTorch's. For a model with step graphs,
the same decisions as the stream scores them (one recurrent step from each learner's carried
state, the window's last event) are measured too, against the window graph. Where a CUDA provider is
present, ONNX Runtime on CUDA is measured too. The micro-batcher is measured with many callers
sending one window each, the way stream workers call it.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from inference.lab.dataset import ProgressPrinter
from inference.lab.throughput import Measurement, sample_windows, time_calls
from inference.registry import DEFAULT_MODEL, ModelRegistry, ModelSpec
from inference.runtime import CPU, CUDA, LearnerModel, MicroBatcher
from tutorstream.bench.report import ratio

BATCHES = (1, 64, 512)
CARRIED = "onnxruntime-cpu carried state"
"""The step graph: a decision as one recurrent step from the learner's state (the stream's
path), against the window graph's 32 steps per decision."""
FLOOR_WINDOWS_PER_S_AT_512 = 20_000.0


@dataclass
class BenchReport:
    """The whole benchmark run, written as JSON."""

    model: str
    threads: int
    smoke: bool
    machine: dict[str, Any]
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def find(self, engine: str, batch: int) -> Measurement | None:
        """Return the measurement of ``engine`` at ``batch``, if taken."""
        for m in self.measurements:
            if m.engine == engine and m.batch == batch:
                return m
        return None

    def ratios(self, engine: str, baseline: str) -> dict[str, float]:
        """``engine``'s rate over ``baseline``'s, per batch size both were measured at."""
        found = {}
        for batch in BATCHES:
            measured, against = self.find(engine, batch), self.find(baseline, batch)
            if measured and against:
                found[str(batch)] = ratio(measured.windows_per_s, against.windows_per_s)
        return found

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with the ONNX/PyTorch ratios and the floor check."""
        at_512 = self.find("onnxruntime-cpu", 512)
        return {
            "model": self.model,
            "threads": self.threads,
            "smoke": self.smoke,
            "machine": self.machine,
            "measurements": [asdict(m) for m in self.measurements],
            "onnx_over_pytorch": self.ratios("onnxruntime-cpu", "pytorch-eager-cpu"),
            "carried_over_window": self.ratios(CARRIED, "onnxruntime-cpu"),
            "floor": {
                "windows_per_s_at_512": FLOOR_WINDOWS_PER_S_AT_512,
                "measured": at_512.windows_per_s if at_512 else None,
                "met": bool(at_512 and at_512.windows_per_s >= FLOOR_WINDOWS_PER_S_AT_512),
            },
            "notes": self.notes,
        }


def _pytorch_call(
    spec: ModelSpec,
    threads: int,
    events: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_],
    query: npt.NDArray[np.float32],
) -> Callable[[int], Callable[[], object]] | str:
    """Return a factory of PyTorch eager calls per batch size, or why there is none."""
    try:
        import torch

        from inference.training.modeling import TutorStreamModel
    except ImportError as err:
        return f"PyTorch eager not measured: {err} (install the 'train' extra)"
    torch.set_num_threads(threads)
    model = TutorStreamModel.from_pretrained(str(spec.folder)).eval()
    tensors = (torch.from_numpy(events), torch.from_numpy(mask), torch.from_numpy(query))

    def factory(batch: int) -> Callable[[], object]:
        ev, mk, qu = (t[:batch] for t in tensors)

        def call() -> object:
            with torch.inference_mode():
                return model.predict_proba(ev, mk, qu)

        return call

    return factory


def measure_batcher(
    model: LearnerModel,
    events: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_],
    query: npt.NDArray[np.float32],
    callers: int,
    requests_per_caller: int,
) -> Measurement:
    """Measure the micro-batcher with ``callers`` threads sending one window per request."""
    latencies: list[float] = []
    lock = threading.Lock()
    with MicroBatcher(model, max_batch=512, max_delay_ms=2.0) as batcher:

        def caller(offset: int) -> None:
            mine = []
            for i in range(requests_per_caller):
                row = (offset * requests_per_caller + i) % len(events)
                t0 = time.perf_counter()
                batcher.predict(events[row : row + 1], mask[row : row + 1], query[row : row + 1])
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=caller, args=(c,)) for c in range(callers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000.0
    return Measurement(
        engine=f"micro-batcher-cpu ({callers} callers)",
        batch=1,
        calls=len(latencies),
        windows_per_s=len(latencies) / elapsed,
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
    )


def run_inference_bench(
    ref: str = DEFAULT_MODEL,
    registry_roots: Sequence[Path] = (),
    threads: int = 2,
    smoke: bool = False,
    batches: Sequence[int] = BATCHES,
    show_progress: bool = True,
) -> BenchReport:
    """Measure ONNX Runtime against PyTorch eager (and CUDA, if present) on one model.

    Args:
        ref: model reference, ``name@version`` or ``name@latest``.
        registry_roots: extra registry roots searched before the packaged models.
        threads: CPU threads for both engines.
        smoke: a few calls per point instead of a few seconds, for CI.
        batches: batch sizes.
        show_progress: print a progress line per point.
    """
    spec = ModelRegistry.with_packaged(registry_roots).load(ref)
    min_calls, min_seconds = (3, 0.0) if smoke else (30, 3.0)
    events, mask, query = sample_windows(spec, max(batches))
    report = BenchReport(
        model=spec.ref,
        threads=threads,
        smoke=smoke,
        machine={
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "providers_available": ort.get_available_providers(),
        },
    )
    engines: list[tuple[str, Callable[[int], Callable[[], object]]]] = []
    cpu_model = LearnerModel(spec, providers=[CPU], intra_op_threads=threads)

    def onnx_factory(model: LearnerModel) -> Callable[[int], Callable[[], object]]:
        def factory(batch: int) -> Callable[[], object]:
            ev, mk, qu = events[:batch], mask[:batch], query[:batch]
            return lambda: model.predict(ev, mk, qu)

        return factory

    engines.append(("onnxruntime-cpu", onnx_factory(cpu_model)))
    shape = cpu_model.state_shape
    if shape is not None:
        hidden = np.zeros((len(events), *shape), dtype=np.float32)

        def carried_factory(batch: int) -> Callable[[], object]:
            # a decision as the stream scores it: one step on from the learner's carried state
            ev, hd, qu = events[:batch, -1], hidden[:batch], query[:batch]
            return lambda: cpu_model.step(ev, hd, qu)

        engines.append((CARRIED, carried_factory))
    pytorch = _pytorch_call(spec, threads, events, mask, query)
    if isinstance(pytorch, str):
        report.notes.append(pytorch)
    else:
        engines.append(("pytorch-eager-cpu", pytorch))
    if CUDA in ort.get_available_providers():
        cuda_model = LearnerModel(spec, providers=[CUDA, CPU])
        if cuda_model.provider == CUDA:
            engines.append(("onnxruntime-cuda", onnx_factory(cuda_model)))
            report.machine["cuda_precision"] = cuda_model.precision
        else:
            report.notes.append("CUDA provider listed but the session fell back to the CPU")
    else:
        report.notes.append("no CUDA provider in this onnxruntime build: GPU figures unmeasured")
    total = len(engines) * len(batches) + 1
    progress = ProgressPrinter("bench inference", every_s=0.0, unit="points")
    if show_progress:
        progress(0, total)
    for engine, factory in engines:
        for batch in batches:
            report.measurements.append(
                time_calls(engine, batch, factory(batch), min_calls, min_seconds)
            )
            if show_progress:
                progress(len(report.measurements), total)
    callers, per_caller = (4, 5) if smoke else (64, 60)
    report.measurements.append(measure_batcher(cpu_model, events, mask, query, callers, per_caller))
    if show_progress:
        progress(total, total)
    return report


def format_table(report: BenchReport) -> str:
    """Render the report as a fixed-width table."""
    data = report.to_dict()
    lines = [
        f"model {report.model}, {report.threads} threads"
        + (", smoke run (figures not meaningful)" if report.smoke else ""),
        f"{'engine':<34} {'batch':>5} {'windows/s':>12} {'p50 ms':>9} {'p99 ms':>9} "
        f"{'onnx/torch':>10}  (carried state: against the window graph)",
    ]
    for m in report.measurements:
        ratio = (
            data["onnx_over_pytorch"].get(str(m.batch))
            if m.engine == "onnxruntime-cpu"
            else data["carried_over_window"].get(str(m.batch))
            if m.engine == CARRIED
            else None
        )
        lines.append(
            f"{m.engine:<34} {m.batch:>5} {m.windows_per_s:>12,.0f} {m.p50_ms:>9.3f} "
            f"{m.p99_ms:>9.3f} {f'{ratio:.1f}x' if ratio else '':>10}"
        )
    floor = data["floor"]
    measured = floor["measured"]
    lines.append(
        f"floor: {FLOOR_WINDOWS_PER_S_AT_512:,.0f} windows/s at batch 512 on the CPU -> "
        + (f"{measured:,.0f} ({'met' if floor['met'] else 'NOT met'})" if measured else "n/a")
    )
    lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)

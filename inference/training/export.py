"""ONNX export of the learner model (fp32 for any provider, fp16 for GPUs) and the parity check.

The exported graph takes ``events`` ``[B, T, F]`` float32, ``mask`` ``[B, T]`` bool and
``query`` ``[B, Q]`` float32 and returns ``state_probs`` ``[B, S]`` and ``p_correct`` ``[B]``,
float32 in both variants, with a dynamic batch axis.

A second graph, ``candidates.onnx``, scores ``K`` candidate items for each of ``L`` learners:
``events [L, T, F]``, ``mask [L, T]``, ``queries [L, K, Q]`` in, ``p_correct [L, K]`` out, the
encoder run once per learner (the next-item policy's hot path).
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch

from inference.registry import CANDIDATES_FILE, STEP_CANDIDATES_FILE, STEP_FILE
from inference.runtime import step_through
from inference.training.modeling import (
    CandidateGraph,
    ServingGraph,
    StateCandidateGraph,
    StepGraph,
    TutorStreamModel,
)

INPUT_NAMES = ("events", "mask", "query")
OUTPUT_NAMES = ("state_probs", "p_correct")
OPSET = 17
FP32_FILE = "model.onnx"
FP16_FILE = "model.fp16.onnx"
CANDIDATE_INPUTS = ("events", "mask", "queries")
STEP_INPUTS = ("events", "hidden", "lengths", "query", "rows")
STEP_OUTPUTS = ("state_probs", "p_correct", "hidden_out")


def _to_onnx(
    graph: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> bytes:
    """Return the serialised ONNX form of ``graph``.

    The TorchScript exporter is used because it needs nothing beyond torch and ``onnx`` and
    handles the fused GRU op.
    """
    buffer = io.BytesIO()  # the exporter writes to file objects too, despite its annotation
    with warnings.catch_warnings():
        # the exporter announces its own deprecation and warns about GRU batch sizes,
        # which the explicit initial states in the graphs already take care of
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph.eval(),
            args,
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
        )
    return buffer.getvalue()


def _serving_copy(model: TutorStreamModel) -> TutorStreamModel:
    # a copy, so a half-precision export leaves the caller's weights alone
    return copy.deepcopy(model).float().eval()


def onnx_bytes(model: TutorStreamModel, half: bool = False) -> bytes:
    """Return the serialised ONNX graph of ``model``.

    Args:
        model: the trained model.
        half: compute in float16 inside the graph (inputs and outputs stay float32).
    """
    cfg = model.config
    return _to_onnx(
        ServingGraph(_serving_copy(model), half=half),
        (
            torch.zeros(2, cfg.window, cfg.n_event_features),
            torch.ones(2, cfg.window, dtype=torch.bool),
            torch.zeros(2, cfg.n_query_features),
        ),
        INPUT_NAMES,
        OUTPUT_NAMES,
        {name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES},
    )


def candidates_onnx_bytes(model: TutorStreamModel) -> bytes:
    """Return the serialised ONNX graph that scores candidate items (see the module doc)."""
    cfg = model.config
    return _to_onnx(
        CandidateGraph(_serving_copy(model)),
        (
            torch.zeros(2, cfg.window, cfg.n_event_features),
            torch.ones(2, cfg.window, dtype=torch.bool),
            torch.zeros(2, 3, cfg.n_query_features),
        ),
        CANDIDATE_INPUTS,
        ("p_correct",),
        {
            "events": {0: "learners"},
            "mask": {0: "learners"},
            "queries": {0: "learners", 1: "candidates"},
            "p_correct": {0: "learners", 1: "candidates"},
        },
    )


def step_onnx_bytes(model: TutorStreamModel) -> bytes:
    """Return the serialised graph that carries states through new events (module doc)."""
    cfg = model.config
    return _to_onnx(
        StepGraph(_serving_copy(model)),
        (
            torch.zeros(2, 3, cfg.n_event_features),
            torch.zeros(2, cfg.num_layers, cfg.hidden_size),
            torch.tensor([3, 1]),
            torch.zeros(4, cfg.n_query_features),
            torch.tensor([0, 2, 3, 1]),
        ),
        STEP_INPUTS,
        STEP_OUTPUTS,
        {
            "events": {0: "learners", 1: "steps"},
            "hidden": {0: "learners"},
            "lengths": {0: "learners"},
            "query": {0: "rows"},
            "rows": {0: "rows"},
            "state_probs": {0: "rows"},
            "p_correct": {0: "rows"},
            "hidden_out": {0: "learners"},
        },
    )


def step_candidates_onnx_bytes(model: TutorStreamModel) -> bytes:
    """Return the serialised graph that scores candidate items from carried states."""
    cfg = model.config
    return _to_onnx(
        StateCandidateGraph(_serving_copy(model)),
        (
            torch.zeros(2, cfg.num_layers, cfg.hidden_size),
            torch.zeros(2, 3, cfg.n_query_features),
        ),
        ("hidden", "queries"),
        ("p_correct",),
        {
            "hidden": {0: "learners"},
            "queries": {0: "learners", 1: "candidates"},
            "p_correct": {0: "learners", 1: "candidates"},
        },
    )


def export_onnx(model: TutorStreamModel, folder: Path) -> dict[str, Path]:
    """Write the ONNX files of ``model`` into ``folder``.

    Returns:
        ``{"fp32": path, "fp16": path, "candidates": path}``, and for a GRU model also
        ``"step"`` and ``"step_candidates"``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    graphs: dict[str, tuple[str, Callable[[], bytes]]] = {
        "fp32": (FP32_FILE, lambda: onnx_bytes(model, half=False)),
        "fp16": (FP16_FILE, lambda: onnx_bytes(model, half=True)),
        "candidates": (CANDIDATES_FILE, lambda: candidates_onnx_bytes(model)),
    }
    if model.config.encoder == "gru":
        graphs["step"] = (STEP_FILE, lambda: step_onnx_bytes(model))
        graphs["step_candidates"] = (
            STEP_CANDIDATES_FILE,
            lambda: step_candidates_onnx_bytes(model),
        )
    paths = {}
    for key, (name, build) in graphs.items():
        paths[key] = folder / name
        paths[key].write_bytes(build())
    return paths


@dataclass(frozen=True)
class ParityReport:
    """Largest absolute difference between PyTorch and ONNX Runtime outputs.

    Attributes:
        windows: number of windows compared.
        state_probs_max_abs_diff: over all state probabilities.
        p_correct_max_abs_diff: over all next-answer probabilities.
    """

    windows: int
    state_probs_max_abs_diff: float
    p_correct_max_abs_diff: float

    @property
    def max_abs_diff(self) -> float:
        """The larger of the two differences."""
        return max(self.state_probs_max_abs_diff, self.p_correct_max_abs_diff)


def _cpu_session(graph: Path | bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    source = str(graph) if isinstance(graph, Path) else graph
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


Outputs = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
"""``(state_probs, p_correct)`` of a batch of windows."""


def _largest_differences(
    n: int, batch_size: int, both: Callable[[slice], tuple[Outputs, Outputs]]
) -> ParityReport:
    """Compare two ways of scoring the same ``n`` windows, ``batch_size`` at a time."""
    state_diff = 0.0
    next_diff = 0.0
    for start in range(0, n, batch_size):
        (a_state, a_next), (b_state, b_next) = both(slice(start, start + batch_size))
        state_diff = max(state_diff, float(np.abs(a_state - b_state).max()))
        next_diff = max(next_diff, float(np.abs(a_next - b_next).max()))
    return ParityReport(n, state_diff, next_diff)


def parity(
    model: TutorStreamModel,
    onnx_model: Path | bytes,
    events: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_],
    query: npt.NDArray[np.float32],
    batch_size: int = 256,
) -> ParityReport:
    """Compare the PyTorch model and an exported graph on the same windows (CPU, fp32).

    Args:
        model: the PyTorch model.
        onnx_model: the exported graph, as a path or bytes.
        events: ``[N, T, F]`` windows.
        mask: ``[N, T]`` masks.
        query: ``[N, Q]`` query features.
        batch_size: windows per call, so batches of several sizes cross the dynamic axis.
    """
    session = _cpu_session(onnx_model)
    model = model.eval()

    def both(part: slice) -> tuple[Outputs, Outputs]:
        feeds = {"events": events[part], "mask": mask[part], "query": query[part]}
        ort_state, ort_next = session.run(list(OUTPUT_NAMES), feeds)
        with torch.no_grad():
            pt_state, pt_next = model.predict_proba(
                torch.from_numpy(events[part]),
                torch.from_numpy(mask[part]),
                torch.from_numpy(query[part]),
            )
        return (ort_state, ort_next), (pt_state.numpy(), pt_next.numpy())

    return _largest_differences(len(events), batch_size, both)


def step_parity(
    window_graph: Path | bytes,
    step_graph: Path | bytes,
    events: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_],
    query: npt.NDArray[np.float32],
    state_shape: tuple[int, int],
    batch_size: int = 256,
) -> ParityReport:
    """Compare the window graph with the step graph run over the same windows event by event.

    Both in ONNX Runtime on the CPU (fp32): a learner's state carried from its first event is
    the window's encoding while the history fits the window.
    """
    window, step = _cpu_session(window_graph), _cpu_session(step_graph)

    def both(part: slice) -> tuple[Outputs, Outputs]:
        reference = window.run(
            list(OUTPUT_NAMES), {"events": events[part], "mask": mask[part], "query": query[part]}
        )
        state, p_correct, _ = step_through(step, events[part], mask[part], query[part], state_shape)
        return (state, p_correct), (reference[0], reference[1])

    return _largest_differences(len(events), batch_size, both)

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch

from inference.registry import CANDIDATES_FILE
from inference.training.modeling import CandidateGraph, ServingGraph, TutorStreamModel

INPUT_NAMES = ("events", "mask", "query")
OUTPUT_NAMES = ("state_probs", "p_correct")
OPSET = 17
FP32_FILE = "model.onnx"
FP16_FILE = "model.fp16.onnx"
CANDIDATE_INPUTS = ("events", "mask", "queries")


def onnx_bytes(model: TutorStreamModel, half: bool = False) -> bytes:
    """Return the serialised ONNX graph of ``model``.

    The TorchScript exporter is used because it needs nothing beyond torch and ``onnx`` and
    handles the fused GRU op; the model is copied first so a half-precision export leaves the
    caller's weights alone.

    Args:
        model: the trained model.
        half: compute in float16 inside the graph (inputs and outputs stay float32).
    """
    graph = ServingGraph(copy.deepcopy(model).float().eval(), half=half).eval()
    cfg = model.config
    events = torch.zeros(2, cfg.window, cfg.n_event_features)
    mask = torch.ones(2, cfg.window, dtype=torch.bool)
    query = torch.zeros(2, cfg.n_query_features)
    buffer = io.BytesIO()  # the exporter writes to file objects too, despite its annotation
    with warnings.catch_warnings():
        # the exporter announces its own deprecation and warns about GRU batch sizes,
        # which the explicit zero initial state in the encoder already takes care of
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (events, mask, query),
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES},
            opset_version=OPSET,
        )
    return buffer.getvalue()


def candidates_onnx_bytes(model: TutorStreamModel) -> bytes:
    """Return the serialised ONNX graph that scores candidate items (see the module doc)."""
    graph = CandidateGraph(copy.deepcopy(model).float().eval()).eval()
    cfg = model.config
    events = torch.zeros(2, cfg.window, cfg.n_event_features)
    mask = torch.ones(2, cfg.window, dtype=torch.bool)
    queries = torch.zeros(2, 3, cfg.n_query_features)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in onnx_bytes
        torch.onnx.export(
            graph,
            (events, mask, queries),
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            input_names=list(CANDIDATE_INPUTS),
            output_names=["p_correct"],
            dynamic_axes={
                "events": {0: "learners"},
                "mask": {0: "learners"},
                "queries": {0: "learners", 1: "candidates"},
                "p_correct": {0: "learners", 1: "candidates"},
            },
            opset_version=OPSET,
        )
    return buffer.getvalue()


def export_onnx(model: TutorStreamModel, folder: Path) -> dict[str, Path]:
    """Write the fp32, fp16 and candidate-scoring ONNX files of ``model`` into ``folder``.

    Returns:
        ``{"fp32": path, "fp16": path, "candidates": path}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "fp32": folder / FP32_FILE,
        "fp16": folder / FP16_FILE,
        "candidates": folder / CANDIDATES_FILE,
    }
    paths["fp32"].write_bytes(onnx_bytes(model, half=False))
    paths["fp16"].write_bytes(onnx_bytes(model, half=True))
    paths["candidates"].write_bytes(candidates_onnx_bytes(model))
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
    source = str(onnx_model) if isinstance(onnx_model, Path) else onnx_model
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    model = model.eval()
    state_diff = 0.0
    next_diff = 0.0
    for start in range(0, len(events), batch_size):
        part = slice(start, start + batch_size)
        feeds = {"events": events[part], "mask": mask[part], "query": query[part]}
        ort_state, ort_next = session.run(list(OUTPUT_NAMES), feeds)
        with torch.no_grad():
            pt_state, pt_next = model.predict_proba(
                torch.from_numpy(events[part]),
                torch.from_numpy(mask[part]),
                torch.from_numpy(query[part]),
            )
        state_diff = max(state_diff, float(np.abs(ort_state - pt_state.numpy()).max()))
        next_diff = max(next_diff, float(np.abs(ort_next - pt_next.numpy()).max()))
    return ParityReport(len(events), state_diff, next_diff)

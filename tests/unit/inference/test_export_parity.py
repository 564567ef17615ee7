from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tiny_learner_model import held_out, tiny_gru, train_tiny

from inference.lab.dataset import EVAL_SEED_BASE
from inference.registry import DEFAULT_MODEL, STEP_FILE, ModelRegistry
from inference.training.export import (
    FP16_FILE,
    FP32_FILE,
    candidates_onnx_bytes,
    export_onnx,
    parity,
    step_candidates_onnx_bytes,
    step_onnx_bytes,
    step_parity,
)
from inference.training.modeling import TutorStreamModel
from inference.training.release import PARITY_TOLERANCE, held_out_windows, parity_windows

pytestmark = pytest.mark.unit


def test_exported_graph_has_dynamic_batch_and_the_contract_names(tmp_path: Path) -> None:
    paths = export_onnx(tiny_gru().model, tmp_path)
    assert paths["fp32"].name == FP32_FILE and paths["fp16"].name == FP16_FILE
    graph = onnx.load(str(paths["fp32"])).graph
    assert [i.name for i in graph.input] == ["events", "mask", "query"]
    assert [o.name for o in graph.output] == ["state_probs", "p_correct"]
    for value in list(graph.input) + list(graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    half = onnx.load(str(paths["fp16"])).graph
    assert {i.data_type for i in half.initializer} == {onnx.TensorProto.FLOAT16}
    # callers never change: the fp16 graph still takes and returns float32
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in half.output)


@pytest.mark.parametrize("encoder", ["gru", "transformer"])
def test_parity_on_1000_held_out_windows(encoder: str, tmp_path: Path) -> None:
    result = tiny_gru() if encoder == "gru" else train_tiny(encoder="transformer", num_heads=2)
    data = held_out()
    assert len(data) >= 1000
    events, mask, query = parity_windows(data)
    assert len(events) == 1000
    paths = export_onnx(result.model, tmp_path)
    report = parity(result.model, paths["fp32"], events, mask, query, batch_size=333)
    assert report.windows == 1000
    assert report.max_abs_diff <= PARITY_TOLERANCE
    # the check can fail: a model with other weights is far off
    other = TutorStreamModel(result.model.config).eval()
    assert parity(other, paths["fp32"], events, mask, query).max_abs_diff > PARITY_TOLERANCE


def test_shipped_onnx_matches_shipped_weights_on_held_out_learners() -> None:
    spec = ModelRegistry().load(DEFAULT_MODEL)
    model = TutorStreamModel.from_pretrained(str(spec.folder)).eval()
    family = str(spec.config["training"]["family"])
    data = held_out_windows(family, spec.window)
    assert data.seed >= EVAL_SEED_BASE
    events, mask, query = parity_windows(data)
    report = parity(model, spec.onnx_bytes("fp32"), events, mask, query)
    assert report.windows == 1000
    assert report.max_abs_diff <= PARITY_TOLERANCE
    recorded = spec.metrics()["parity"]
    assert recorded["windows"] == 1000 and recorded["max_abs_diff"] <= PARITY_TOLERANCE
    # the fp16 graph answers in float32 and stays close to fp32
    session = ort.InferenceSession(spec.onnx_bytes("fp16"), providers=["CPUExecutionProvider"])
    probs, p_correct = session.run(None, {"events": events, "mask": mask, "query": query})
    assert probs.dtype == np.float32
    full = ort.InferenceSession(spec.onnx_bytes("fp32"), providers=["CPUExecutionProvider"])
    ref_probs, ref_p = full.run(None, {"events": events, "mask": mask, "query": query})
    assert np.abs(probs - ref_probs).max() < 0.02 and np.abs(p_correct - ref_p).max() < 0.02


def test_shipped_candidate_graph_scores_like_the_serving_graph_with_one_encoder_pass() -> None:
    spec = ModelRegistry().load(DEFAULT_MODEL)
    candidates = spec.candidates_bytes()
    assert candidates is not None
    graph = onnx.load_from_string(candidates).graph
    assert [i.name for i in graph.input] == ["events", "mask", "queries"]
    assert [d.dim_param for d in graph.input[2].type.tensor_type.shape.dim[:2]] == [
        "learners",
        "candidates",
    ]
    family = str(spec.config["training"]["family"])
    events, mask, query = parity_windows(held_out_windows(family, spec.window))
    learners, k = 40, 7
    ev, mk = events[:learners], mask[:learners]
    queries = query[: learners * k].reshape(learners, k, -1)
    scored = ort.InferenceSession(candidates, providers=["CPUExecutionProvider"]).run(
        None, {"events": ev, "mask": mk, "queries": queries}
    )[0]
    serving = ort.InferenceSession(spec.onnx_bytes("fp32"), providers=["CPUExecutionProvider"])
    _, reference = serving.run(
        None,
        {
            "events": np.repeat(ev, k, axis=0),
            "mask": np.repeat(mk, k, axis=0),
            "query": queries.reshape(learners * k, -1),
        },
    )
    assert scored.shape == (learners, k)
    assert np.abs(scored - reference.reshape(learners, k)).max() <= 1e-6
    # and it is the exported form of the shipped weights
    model = TutorStreamModel.from_pretrained(str(spec.folder)).eval()
    assert candidates_onnx_bytes(model) == candidates


def test_step_graph_of_a_gru_carries_the_window_state(tmp_path: Path) -> None:
    result = tiny_gru()
    paths = export_onnx(result.model, tmp_path)
    step = onnx.load(str(paths["step"])).graph
    assert [i.name for i in step.input] == ["events", "hidden", "lengths", "query", "rows"]
    assert [o.name for o in step.output] == ["state_probs", "p_correct", "hidden_out"]
    cfg = result.model.config
    shape = (cfg.num_layers, cfg.hidden_size)
    events, mask, query = parity_windows(held_out())
    # histories of every length up to the window, full ones included
    assert len(set(mask.sum(axis=1).tolist())) == cfg.window
    report = step_parity(paths["fp32"], paths["step"], events, mask, query, shape, batch_size=333)
    assert report.windows == 1000 and report.max_abs_diff <= PARITY_TOLERANCE
    # the check can fail: the step graph of other weights is far off
    other = tmp_path / "other"
    export_onnx(TutorStreamModel(cfg).eval(), other)
    assert step_parity(
        paths["fp32"], other / STEP_FILE, events, mask, query, shape
    ).max_abs_diff > (PARITY_TOLERANCE)


def test_a_transformer_has_no_step_graph(tmp_path: Path) -> None:
    model = train_tiny(encoder="transformer", num_heads=2).model
    assert set(export_onnx(model, tmp_path)) == {"fp32", "fp16", "candidates"}
    with pytest.raises(ValueError, match="only a GRU carries its state"):
        step_onnx_bytes(model)


def test_shipped_step_graphs_are_the_exported_weights_and_match_the_window() -> None:
    spec = ModelRegistry().load(DEFAULT_MODEL)
    steps = spec.step_bytes()
    assert steps is not None
    model = TutorStreamModel.from_pretrained(str(spec.folder)).eval()
    assert (step_onnx_bytes(model), step_candidates_onnx_bytes(model)) == steps
    recorded = spec.metrics()["parity"]["step_vs_window_max_abs_diff"]
    assert recorded is not None and recorded <= PARITY_TOLERANCE

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from inference.decision import decide_states
from inference.lab.throughput import sample_windows
from inference.registry import (
    CANDIDATES_FILE,
    DEFAULT_MODEL,
    STEP_CANDIDATES_FILE,
    STEP_FILE,
    ModelRegistry,
    write_checksums,
)
from inference.runtime import CPU, CUDA, LearnerModel, MicroBatcher, Prediction

Windows = tuple[np.ndarray, np.ndarray, np.ndarray]

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model() -> LearnerModel:
    return LearnerModel.load(DEFAULT_MODEL, intra_op_threads=1)


@pytest.fixture(scope="module")
def windows(model: LearnerModel) -> Windows:
    return sample_windows(model.spec, 300, seed=5)


def test_asks_for_cuda_falls_back_to_cpu_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    spec = ModelRegistry().load(DEFAULT_MODEL)
    with caplog.at_level(logging.INFO, logger="inference.runtime"):
        model = LearnerModel(spec, providers=[CUDA, CPU], intra_op_threads=1)
    assert model.provider == CPU
    assert model.precision == "fp32"
    assert any(CPU in r.getMessage() and spec.ref in r.getMessage() for r in caplog.records)


def test_predictions_are_probabilities_with_the_model_decision(
    model: LearnerModel, windows: Windows
) -> None:
    out = model.predict(*windows)
    assert out.state_probs.shape == (300, 6) and out.p_correct.shape == (300,)
    assert np.allclose(out.state_probs.sum(axis=1), 1.0, atol=1e-5)
    assert ((out.p_correct > 0) & (out.p_correct < 1)).all()
    assert np.array_equal(out.state, decide_states(out.state_probs, model.spec.thresholds()))
    # one window at a time gives the same numbers as the batch (dynamic batch axis)
    events, mask, query = windows
    single = model.predict(events[7:8], mask[7:8], query[7:8])
    assert np.allclose(single.state_probs[0], out.state_probs[7], atol=1e-6)


def test_io_binding_path_gives_the_same_answers(windows: Windows) -> None:
    spec = ModelRegistry().load(DEFAULT_MODEL)
    bound = LearnerModel(spec, providers=[CPU], io_binding=True, intra_op_threads=1)
    plain = LearnerModel(spec, providers=[CPU], io_binding=False, intra_op_threads=1)
    a, b = bound.predict(*windows), plain.predict(*windows)
    assert np.array_equal(a.state_probs, b.state_probs)
    assert np.array_equal(a.p_correct, b.p_correct)


def test_fp16_graph_runs_and_stays_close(windows: Windows) -> None:
    spec = ModelRegistry().load(DEFAULT_MODEL)
    try:
        half = LearnerModel(spec, providers=[CPU], precision="fp16", intra_op_threads=1)
    except Exception as err:  # some CPU builds lack fp16 kernels for an op
        pytest.skip(f"fp16 graph not runnable on this CPU build: {err}")
    full = LearnerModel(spec, providers=[CPU], intra_op_threads=1)
    a, b = half.predict(*windows), full.predict(*windows)
    assert np.abs(a.state_probs - b.state_probs).max() < 0.02
    assert np.abs(a.p_correct - b.p_correct).max() < 0.02


def test_bad_shapes_are_refused_with_the_input_named(model: LearnerModel, windows: Windows) -> None:
    events, mask, query = windows
    with pytest.raises(ValueError, match=r"events: expected shape \[n>=1, 32, 47\]"):
        model.predict(events[:, :5], mask, query)
    with pytest.raises(ValueError, match="query"):
        model.predict(events, mask, query[:, :3])
    with pytest.raises(ValueError, match="mask"):
        model.predict(events, mask[:10], query)
    bad = events.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        model.predict(bad, mask, query)


def test_batcher_answers_each_thread_with_its_own_rows(
    model: LearnerModel, windows: Windows
) -> None:
    events, mask, query = windows
    expected = model.predict(*windows)
    results: dict[int, tuple[slice, Prediction]] = {}
    with MicroBatcher(model, max_batch=64, max_delay_ms=20) as batcher:

        def caller(i: int) -> None:
            sl = slice(i * 3, i * 3 + 1 + i % 3)
            results[i] = (sl, batcher.predict(events[sl], mask[sl], query[sl], timeout=30))

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(60)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = batcher.stats
    assert len(results) == 60
    for sl, out in results.values():
        assert np.allclose(out.state_probs, expected.state_probs[sl], atol=1e-6)
        assert np.allclose(out.p_correct, expected.p_correct[sl], atol=1e-6)
        assert np.array_equal(out.state, expected.state[sl])
    assert stats.requests == 60
    assert stats.windows == sum(1 + i % 3 for i in range(60))
    assert stats.batches < 60  # requests were gathered
    assert stats.largest_batch <= 64


def test_batcher_serves_asyncio_callers_off_the_event_loop(
    model: LearnerModel, windows: Windows
) -> None:
    events, mask, query = windows
    expected = model.predict(*windows)

    async def main() -> list[np.ndarray]:
        loop_thread = threading.get_ident()
        with MicroBatcher(model, max_batch=32, max_delay_ms=5) as batcher:
            assert batcher.worker_thread_id != loop_thread
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                for _ in range(5):
                    await asyncio.sleep(0)
                    ticks += 1

            outs = await asyncio.gather(
                *(batcher.predict_async(events[i : i + 1], mask[i : i + 1], query[i : i + 1])
                  for i in range(100)),
                ticker(),
            )  # fmt: skip
            assert ticks == 5
            return [o.p_correct for o in outs[:100] if o is not None]

    got = asyncio.run(main())
    assert np.allclose(np.concatenate(got), expected.p_correct[:100], atol=1e-6)


def test_batch_closes_after_max_delay_when_not_full(model: LearnerModel, windows: Windows) -> None:
    events, mask, query = windows
    with MicroBatcher(model, max_batch=512, max_delay_ms=1) as batcher:
        out = batcher.predict(events[:2], mask[:2], query[:2], timeout=10)
        assert len(out) == 2
        assert batcher.stats.batches == 1


def test_oversized_request_runs_alone_and_errors_reach_callers(
    model: LearnerModel, windows: Windows
) -> None:
    events, mask, query = windows
    with MicroBatcher(model, max_batch=16, max_delay_ms=1) as batcher:
        out = batcher.predict(events[:40], mask[:40], query[:40], timeout=10)
        assert len(out) == 40
        with pytest.raises(ValueError, match="events"):
            batcher.submit(events[:, :3], mask, query)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(events[:1], mask[:1], query[:1])


def test_close_answers_what_is_queued(model: LearnerModel, windows: Windows) -> None:
    events, mask, query = windows
    batcher = MicroBatcher(model, max_batch=4, max_delay_ms=50)
    futures = [
        batcher.submit(events[i : i + 1], mask[i : i + 1], query[i : i + 1]) for i in range(20)
    ]
    batcher.close()
    assert all(f.done() and len(f.result()) == 1 for f in futures)


def test_candidates_score_the_same_with_or_without_the_candidate_graph(
    model: LearnerModel, windows: Windows, tmp_path: Path
) -> None:
    # a model folder released before candidates.onnx existed falls back to the serving graph
    folder = tmp_path / DEFAULT_MODEL / "1"
    shutil.copytree(model.spec.folder, folder)
    (folder / CANDIDATES_FILE).unlink()
    write_checksums(folder)
    older = LearnerModel(ModelRegistry([tmp_path]).load(f"{DEFAULT_MODEL}@1"))
    assert model.candidates_session is not None and older.candidates_session is None
    events, mask, query = windows
    learners, k = 6, 5
    ev, mk = events[:learners], mask[:learners]
    queries = query[: learners * k].reshape(learners, k, -1)
    fast = model.score_candidates(ev, mk, queries)
    slow = older.score_candidates(ev, mk, queries)
    assert fast.shape == slow.shape == (learners, k)
    assert np.abs(fast - slow).max() <= 1e-6
    # one learner's candidates, as the closed-loop evaluation asks for them
    assert np.abs(model.score_items(queries[2], ev[2], mk[2]) - fast[2]).max() <= 1e-6
    assert model.score_candidates(ev[:0], mk[:0], queries[:0]).shape == (0, k)
    with pytest.raises(ValueError, match=r"queries: expected shape \[L, K, Q\]"):
        model.score_candidates(ev, mk, queries[0])


def test_a_state_carried_event_by_event_scores_as_the_window_does(
    model: LearnerModel, windows: Windows
) -> None:
    assert model.state_shape == (1, int(model.spec.config["hidden_size"]))
    events, mask, query = windows
    stepped, hidden = model.step_windows(events, mask, query)
    reference = model.predict(events, mask, query)
    assert np.abs(stepped.state_probs - reference.state_probs).max() <= 1e-5
    assert np.abs(stepped.p_correct - reference.p_correct).max() <= 1e-5
    assert np.array_equal(stepped.state, reference.state)
    # candidates scored from the carried states match those scored over the windows
    learners, k = 6, 5
    queries = query[: learners * k].reshape(learners, k, -1)
    from_state = model.score_candidates_from_state(hidden[:learners], queries)
    from_window = model.score_candidates(events[:learners], mask[:learners], queries)
    assert np.abs(from_state - from_window).max() <= 1e-5
    # one more event: the step from the carried state is the window one event longer
    longer_events = np.concatenate([events[:, 1:], events[:, :1] + 0.5], axis=1)
    longer_mask = np.concatenate([mask[:, 1:], np.ones((len(mask), 1), bool)], axis=1)
    fits = ~mask[:, 0]  # the history still fits the window after one more event
    step, after = model.step(longer_events[:, -1], hidden, query)
    window = model.predict(longer_events, longer_mask, query)
    assert fits.sum() > 100
    assert np.abs(step.state_probs[fits] - window.state_probs[fits]).max() <= 1e-5
    assert after.shape == hidden.shape and not np.allclose(after, hidden)
    # the check can fail: a state that skipped the history scores otherwise
    cold, _ = model.step(longer_events[:, -1], np.zeros_like(hidden), query)
    assert np.abs(cold.state_probs[fits] - window.state_probs[fits]).max() > 1e-3


def test_steps_refuse_bad_shapes_and_models_without_step_graphs(
    model: LearnerModel, windows: Windows, tmp_path: Path
) -> None:
    events, mask, query = windows
    hidden = np.zeros((len(events), *(model.state_shape or ())), dtype=np.float32)
    with pytest.raises(ValueError, match=r"hidden: expected shape \[n>=1, 1, "):
        model.step(events[:, -1], hidden[:, 0], query)
    with pytest.raises(ValueError, match=r"events: expected shape"):
        model.step(events, hidden, query)
    with pytest.raises(ValueError, match="must end in a real event"):
        model.step_windows(events, np.zeros_like(mask), query)
    folder = tmp_path / DEFAULT_MODEL / "1"
    shutil.copytree(model.spec.folder, folder)
    for name in (STEP_FILE, STEP_CANDIDATES_FILE):
        (folder / name).unlink()
    (folder / "checksums.sha256").unlink()
    write_checksums(folder)
    older = LearnerModel(ModelRegistry([tmp_path]).load(f"{DEFAULT_MODEL}@1"))
    assert older.state_shape is None and older.step_session is None
    with pytest.raises(ValueError, match="no step graph"):
        older.step(events[:, -1], hidden, query)


def test_a_batch_of_learners_events_steps_as_each_learner_alone(
    model: LearnerModel, windows: Windows
) -> None:
    events, _, query = windows
    shape = model.state_shape
    assert shape is not None
    rng = np.random.default_rng(3)
    n, learners = 120, 7
    rows, queries = events[:n, -1], query[:n]
    slots = rng.integers(0, learners, size=n)
    start = rng.normal(size=(learners, *shape)).astype(np.float32)
    batch, after = model.step_events(rows, slots, start, queries)
    assert len(batch) == n
    for learner in range(learners):
        mine = np.flatnonzero(slots == learner)
        hidden = start[learner : learner + 1]
        for row in mine:
            alone, hidden = model.step(rows[row : row + 1], hidden, queries[row : row + 1])
            assert np.abs(alone.state_probs[0] - batch.state_probs[row]).max() <= 1e-6
            assert alone.state[0] == batch.state[row]
        assert np.abs(hidden[0] - after[learner]).max() <= 1e-6
    # the caller's states stay as given; a learner without events keeps its state
    assert not np.shares_memory(after, start)
    idle = np.zeros((learners + 1, *shape), dtype=np.float32)
    assert np.array_equal(model.step_events(rows, slots, idle, queries)[1][learners], idle[0])
    empty, same = model.step_events(rows[:0], slots[:0], start, queries[:0])
    assert len(empty) == 0 and np.array_equal(same, start)
    with pytest.raises(ValueError, match=r"slots: must lie in \[0, 7\)"):
        model.step_events(rows, slots + 1, start, queries)
    with pytest.raises(ValueError, match="hidden: expected shape"):
        model.step_events(rows, slots, start[:, 0], queries)


def test_the_evaluation_scores_carried_states_as_the_stream_does(model: LearnerModel) -> None:
    from inference.lab.dataset import EVAL_SEED_BASE, build_dataset
    from inference.lab.evaluate import carried_outputs, model_outputs

    data = build_dataset("bkt", 4, EVAL_SEED_BASE + 7, window=model.window, warmup_learners=0)
    carried = carried_outputs(model, data)
    windows = model_outputs(model, data)
    whole = data.window_index[:, 0] < 0  # the window reaches back to the learner's first event
    assert whole.sum() > 50 and (~whole).sum() > 50
    assert np.abs(carried[0][whole] - windows[0][whole]).max() <= 1e-5
    assert np.abs(carried[1][whole] - windows[1][whole]).max() <= 1e-5
    # past the window the state keeps what the window forgot
    assert np.abs(carried[0][~whole] - windows[0][~whole]).max() > 1e-4

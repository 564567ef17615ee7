"""Each learner's recurrent state carried across batches, against the window it replaces.

The real normaliser, features and ONNX model (window and step graphs) without Faust.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from test_processor import _cohort, _processor, _records

from inference.runtime import LearnerModel
from streams.carried import CarriedModel
from streams.learner_state import _HEADER, FORMAT_VERSION, LearnerRecord
from streams.processor import EventProcessor, InboundRecord, StateView

pytestmark = pytest.mark.unit

Scores = dict[str, tuple[np.ndarray, float, int]]
"""event id -> (state probabilities, p_correct, real events in its window)."""


@pytest.fixture(scope="module")
def model() -> LearnerModel:
    return LearnerModel.load(intra_op_threads=1)


def _carrying(model: LearnerModel, carried: CarriedModel | None = None) -> EventProcessor:
    processor = _processor()
    processor.carried = carried or CarriedModel.of(model)
    return processor


def _run(
    processor: EventProcessor,
    model: LearnerModel,
    records: list[InboundRecord],
    learners: dict[str, object],
    batch: int = 40,
) -> Scores:
    """Process ``records`` in batches as the worker does; return each scored event's output."""
    view = StateView(learners, {}, {}, model.window)
    scores: Scores = {}
    for start in range(0, len(records), batch):
        result = processor.ingest(records[start : start + batch], view)
        if result.for_model:
            # the real events each decision's window holds, as the window graph would see it
            filled = [
                min(model.window, view.learner(result.events[i].learner_id).events)
                for i in result.scored
            ]
            if result.steps is None:
                _, mask, _ = processor.model_inputs(result)
                filled = mask.sum(axis=1).tolist()
            prediction = processor.score(result, model)
            if result.scored:
                processor.decide_with(result, view, prediction, model)
            for row, index in enumerate(result.scored):
                scores[result.events[index].event_id] = (
                    prediction.state_probs[row],
                    float(prediction.p_correct[row]),
                    int(filled[row]),
                )
        view.write_back(result)
    return scores


def _compare(carried: Scores, windows: Scores, window: int) -> tuple[float, int, int]:
    """Largest difference where the history fits the window; how many fit; how many do not."""
    assert carried.keys() == windows.keys()
    fits = [k for k, (_, _, n) in windows.items() if n < window]
    diff = max(
        max(np.abs(carried[k][0] - windows[k][0]).max(), abs(carried[k][1] - windows[k][1]))
        for k in fits
    )
    return float(diff), len(fits), len(windows) - len(fits)


def test_carried_states_score_as_the_window_does_while_the_history_fits(
    model: LearnerModel,
) -> None:
    records = _records(_cohort())
    windows = _run(_processor(), model, records, {})
    carried_table: dict[str, object] = {}
    carried = _run(_carrying(model), model, records, carried_table)
    diff, fits, beyond = _compare(carried, windows, model.window)
    assert fits > 100 and beyond > 20  # learners of 36 to 92 events
    assert diff <= 1e-5
    # past the window the state remembers more than the window holds, and still scores
    assert all(np.isclose(p.sum(), 1.0, atol=1e-4) for p, _, _ in carried.values())
    assert any(
        np.abs(carried[k][0] - windows[k][0]).max() > 1e-4
        for k, (_, _, n) in windows.items()
        if n == model.window
    )
    # every learner's record carries the model's state, and it survives the changelog
    shape = model.state_shape
    assert shape is not None
    for raw in carried_table.values():
        record = LearnerRecord.from_bytes(raw)  # type: ignore[arg-type]
        state = record.carried(model.spec.ref, shape)
        assert state is not None and state.shape == shape and np.abs(state).sum() > 0
        assert record.hidden_model == model.spec.ref


def test_a_record_without_this_models_state_starts_from_its_window(model: LearnerModel) -> None:
    records = _records(_cohort())
    half = len(records) // 2
    # the first half written by a worker that kept windows only (an older changelog)
    older: dict[str, object] = {}
    _run(_processor(), model, records[:half], older)
    assert all(LearnerRecord.from_bytes(v).hidden is None for v in older.values())  # type: ignore[arg-type]
    windows = _run(_processor(), model, records[half:], dict(older))
    carried = _run(_carrying(model), model, records[half:], dict(older))
    diff, fits, _ = _compare(carried, windows, model.window)
    assert fits > 10 and diff <= 1e-5
    # a state carried for another model is not this one's: it starts from the window too
    shape = model.state_shape
    assert shape is not None
    other: dict[str, object] = {}
    _run(
        _carrying(model, CarriedModel("tutorstream-learner@0", shape)), model, records[:half], other
    )
    again = _run(_carrying(model), model, records[half:], dict(other))
    diff, _, _ = _compare(again, windows, model.window)
    assert diff <= 1e-5
    # while its own state is taken as it is: no window rows stepped again
    view = StateView(other, {}, {}, model.window)
    foreign = _carrying(model, CarriedModel("tutorstream-learner@0", shape))
    taken = foreign.ingest(records[half:], view)
    assert taken.steps is not None and len(taken.steps.events) == len(taken.events)


def test_a_batch_with_nothing_scored_still_carries_the_state(model: LearnerModel) -> None:
    events = _cohort()
    media = [e for e in events if str(e["event_type"]).startswith("media_")]
    assert media
    processor = _carrying(model)
    view = StateView({}, {}, {}, model.window)
    result = processor.ingest(_records(media[:1]), view)
    assert not result.scored and result.for_model
    assert len(processor.score(result, model)) == 0
    record = view.learner(result.events[0].learner_id)
    assert record.hidden is not None and record.hidden_model == model.spec.ref
    # the state is the one event's step from zeros, as the window of that event gives
    _, expected = model.step_windows(
        record.window[None], record.mask()[None], np.zeros((1, len(model.spec.query_features)))
    )
    assert np.abs(record.hidden - expected[0]).max() <= 1e-6


def test_the_state_rides_in_the_records_json_part(model: LearnerModel) -> None:
    """A worker that knows nothing of carried states reads past them, and its records load."""
    processor = _carrying(model)
    learners: dict[str, object] = {}
    _run(processor, model, _records(_cohort(2, 4)), learners)
    raw = next(iter(learners.values()))
    assert isinstance(raw, bytes) and raw[0] == FORMAT_VERSION
    record = LearnerRecord.from_bytes(raw)
    assert record.hidden is not None and record.to_bytes() == raw
    _, t, filled, n_seen, length, n = _HEADER.unpack_from(raw)
    meta = orjson.loads(raw[_HEADER.size : _HEADER.size + length])
    assert {"m", "h", "hs"} <= meta.keys()
    for key in ("m", "h", "hs"):
        del meta[key]
    packed = orjson.dumps(meta)
    # the record as such a worker writes it back: the same, without the state
    older = _HEADER.pack(FORMAT_VERSION, t, filled, n_seen, len(packed), n) + packed
    older += raw[_HEADER.size + length :]
    plain = LearnerRecord.from_bytes(older)
    assert plain.hidden is None and plain.hidden_model is None
    assert np.array_equal(plain.window, record.window) and plain.seen == record.seen

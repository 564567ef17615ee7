"""The batch pipeline without Faust: real normaliser, real features, the real ONNX model."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from common.partitioning import partition_for
from inference.runtime import LearnerModel
from streams import outbound
from streams.learner_state import _HEADER, FORMAT_VERSION, LearnerRecord, event_digest
from streams.policy import InterventionPolicy, PolicySettings
from streams.processor import (
    BatchResult,
    EventProcessor,
    InboundRecord,
    RecommendationOut,
    StateView,
)
from tutorstream.cohort import labelled_cohort

pytestmark = pytest.mark.unit

KEY = b"test-pseudonym-key"
PARTITIONS = 12


@pytest.fixture(scope="module")
def model() -> LearnerModel:
    return LearnerModel.load()


def _records(events: list[dict[str, object]], offset: int = 0) -> list[InboundRecord]:
    return [
        InboundRecord(
            orjson.dumps(e), str(e["learner_id"]).encode(), "lms.events.v1", 0, offset + i, 0.0
        )
        for i, e in enumerate(events)
    ]


def _from_offset_40(values: list[object]) -> list[InboundRecord]:
    """Unkeyed records of one partition from offset 40, one per value (an event or a list)."""
    return [
        InboundRecord(orjson.dumps(v), None, "lms.events.v1", 0, 40 + k, 0.0)
        for k, v in enumerate(values)
    ]


def _forgetful() -> tuple[dict[str, object], EventProcessor]:
    """A state table and a processor whose dedupe window is far shorter than a cohort's days."""
    return {}, _processor(dedupe_window_s=60.0)


def _first_half_taken(
    records: list[InboundRecord], model: LearnerModel
) -> tuple[dict[str, object], EventProcessor, StateView, int, BatchResult]:
    """A forgetful processor's state after the first half of ``records``, written back."""
    learners, processor = _forgetful()
    view = StateView(learners, {}, {}, model.window)
    half = len(records) // 2
    first = processor.ingest(records[:half], view)
    view.write_back(first)
    return learners, processor, view, half, first


def _processor(owns_all: bool = True, dedupe_window_s: float = 1e9) -> EventProcessor:
    return EventProcessor(
        pseudonym_key=KEY,
        owns=(lambda learner, record: True)
        if owns_all
        else (lambda learner, record: partition_for(learner, PARTITIONS) == record.partition),
        policy=InterventionPolicy(
            PolicySettings(cooldown_s=0, same_state_cooldown_s=0, hourly_cap=1000)
        ),
        # the simulated history spans days; by default remember every id of it
        dedupe_window_s=dedupe_window_s,
    )


def _cohort(n: int = 6, problems: int = 12) -> list[dict[str, object]]:
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    return [e for e, _ in labelled_cohort(n, problems, 3, start=start)]


def test_batch_scores_decides_and_dedupes(model: LearnerModel) -> None:
    events = _cohort()
    learners: dict[str, object] = {}
    items: dict[str, object] = {}
    catalogues: dict[str, object] = {}
    view = StateView(learners, items, catalogues, model.window)
    processor = _processor()
    result = processor.ingest(_records(events), view)
    assert len(result.events) == len(events)
    assert not result.dead_letters and not result.forwards
    x, m, q = processor.model_inputs(result)
    assert x.shape[0] == m.shape[0] == q.shape[0] == len(result.scored) > 0
    # the window of a learner's k-th scored event holds at most k+1 events
    assert int(m.sum(axis=1).max()) <= model.window
    processor.decide(result, view, model.predict(x, m, q), model.score_candidates)
    assert result.prediction is not None
    assert np.allclose(result.prediction.state_probs.sum(axis=1), 1.0, atol=1e-4)
    view.write_back(result)
    assert set(learners) == {e.learner_id for e in result.events}

    # the same records again: every event is a duplicate, nothing new to store
    again = processor.ingest(_records(events, offset=len(events)), view)
    assert again.duplicates == len(events)
    assert not again.events


def test_raw_learner_ids_never_reach_the_state(model: LearnerModel) -> None:
    events = _cohort(3, 5)
    learners: dict[str, object] = {}
    view = StateView(learners, {}, {}, model.window)
    processor = _processor()
    result = processor.ingest(_records(events), view)
    view.write_back(result)
    raw_ids = {str(e["learner_id"]) for e in events}
    assert raw_ids.isdisjoint(learners)
    blob = b"".join(v for v in learners.values())  # type: ignore[misc]
    assert not any(raw.encode() in blob for raw in raw_ids)


def test_bad_records_become_dead_letters_with_reasons(model: LearnerModel) -> None:
    good = _cohort(2, 3)
    bad = [
        b"{truncated",
        orjson.dumps(
            {
                "event_id": "x",
                "learner_id": "s",
                "event_type": "answer_submit",
                "timestamp": "2026-01-01T10:00:00",
            }
        ),
    ]
    records = _records(good) + [
        InboundRecord(v, None, "lms.events.v1", 0, 1000 + i, 0.0) for i, v in enumerate(bad)
    ]
    result = _processor().ingest(records, StateView({}, {}, {}, model.window))
    assert len(result.events) == len(good)
    assert [d.record.value for d in result.dead_letters] == bad
    assert result.dead_letters[1].error.path == "timestamp"


def test_events_of_other_partitions_are_forwarded(model: LearnerModel) -> None:
    events = _cohort(6, 4)
    result = _processor(owns_all=False).ingest(
        _records(events), StateView({}, {}, {}, model.window)
    )
    assert result.forwards, "some learners hash to other partitions than 0"
    for learner_id, value, _ in result.forwards:
        assert partition_for(learner_id, PARTITIONS) != 0
        assert orjson.loads(value)["learner_id"] == learner_id
    assert len(result.forwards) + len(result.events) == len(events)


def test_learner_record_round_trips() -> None:
    record = LearnerRecord.new(8)
    for k in range(5):
        record.push(np.full(record.window.shape[1], k, dtype=np.float32))
    assert record.remember("e1", 100.0, 3600.0, 16)
    assert not record.remember("e1", 101.0, 3600.0, 16)
    record.class_id, record.alerts.last_by_state = "c1", {"gaming": 99.5}
    raw = record.to_bytes()
    assert raw[0] == FORMAT_VERSION
    restored = LearnerRecord.from_bytes(raw)
    assert np.array_equal(restored.window, record.window)
    assert restored.filled == 5 and restored.mask().sum() == 5
    assert restored.seen == record.seen == {event_digest("e1"): 100.0}
    assert restored.to_bytes() == raw
    assert not restored.remember("e1", 102.0, 3600.0, 16)


def test_learner_record_window_slides_over_many_events() -> None:
    """The window is always the last T vectors, oldest first, zeros before the first event."""
    record = LearnerRecord.new(4)
    width = record.window.shape[1]
    expected = np.zeros((4, width), dtype=np.float32)
    for k in range(1, 15):
        vector = np.full(width, k, dtype=np.float32)
        record.push(vector)
        expected = np.vstack([expected[1:], vector])
        assert np.array_equal(record.window, expected), k
        assert record.filled == min(4, k) and record.mask().sum() == min(4, k)
        restored = LearnerRecord.from_bytes(record.to_bytes())
        assert np.array_equal(restored.window, expected)


def test_learner_record_is_compact() -> None:
    """A full window and a full dedupe memory: raw rows, 16 bytes per id, small JSON."""
    record = LearnerRecord.new(32)
    for k in range(40):
        record.push(np.full(record.window.shape[1], k, dtype=np.float32))
        record.remember(f"{k:08d}-5b7d-4e8f-9a0b-1c2d3e4f5a6b", 1000.0 + k, 3600.0, 2048)
    # the JSON of the features and of the rules' memory, and a little for the rest
    meta = (
        len(orjson.dumps(record.features.to_dict()))
        + len(orjson.dumps(record.rules.to_dict()))
        + 200
    )
    assert len(record.to_bytes()) <= record.window.nbytes + 40 * 16 + meta


def test_learner_record_loads_the_json_format_of_older_workers() -> None:
    """Version 0, as an older worker wrote it to the changelog: JSON, window in base64."""
    record = LearnerRecord.new(4)
    record.push(np.arange(record.window.shape[1], dtype=np.float32))
    record.remember("e1", 100.0, 3600.0, 16)
    old = {
        "f": record.features.to_dict(),
        "w": base64.b64encode(record.window[-1:].tobytes()).decode(),
        "t": 4,
        "s": {"e1": 100.0},
        "a": record.alerts.to_dict(),
        "c": "c1",
        "n": 1,
    }
    for raw in (orjson.dumps(old), old):
        loaded = LearnerRecord.from_bytes(raw)
        assert np.array_equal(loaded.window, record.window)
        assert loaded.filled == 1 and loaded.events == 1 and loaded.class_id == "c1"
        assert not loaded.remember("e1", 101.0, 3600.0, 16), "ids seen before stay seen"


def test_dedupe_window_forgets_old_ids() -> None:
    record = LearnerRecord.new(4)
    assert record.remember("old", 0.0, 60.0, 100)
    assert record.remember("new", 120.0, 60.0, 100)
    assert event_digest("old") not in record.seen
    assert record.remember("old", 121.0, 60.0, 100)


def test_a_redelivered_record_counts_once_however_old_its_events(model: LearnerModel) -> None:
    """A worker that died before its commit leaves state ahead of the committed offsets.

    Its replacement is handed those records again. Their events may be older than the
    dedupe window (a backlog spans hours of event time in seconds), so the ids are forgotten;
    the offset each learner's state took from the partition marks them as doubtful, and the
    store, which holds them, tells them apart.
    """
    events = _cohort(3, 6)
    # three events per record, as a list of native events: all of a record's events count
    grouped = [events[k : k + 3] for k in range(0, len(events), 3)]
    records = _from_offset_40(list(grouped))
    learners, processor, view, half, first = _first_half_taken(records, model)
    assert len(first.events) == sum(len(g) for g in grouped[:half])
    counted = {k: LearnerRecord.from_bytes(v).events for k, v in learners.items()}  # type: ignore[arg-type]

    # the commit was lost: the whole partition comes again, from its first record
    parsed = processor.parse(records, BatchResult())
    stored = {e.event_id for e in first.events}
    doubtful = set(processor.doubtful(parsed, view))
    assert doubtful and doubtful < stored, "the ids its state forgot, not the ones it keeps"
    again = processor.ingest(records, view, stored=stored)
    view.write_back(again)
    assert again.redelivered == len(first.events) and again.duplicates == 0
    assert [e.event_id for e in again.events] == [
        e.event_id for e in processor.ingest(records[half:], StateView({}, {}, {}, 8)).events
    ]
    for learner, raw in learners.items():
        record = LearnerRecord.from_bytes(raw)  # type: ignore[arg-type]
        new = sum(1 for e in again.events if e.learner_id == learner)
        assert record.events == counted.get(learner, 0) + new

    # a forwarded copy carries where it first arrived: known too, on another topic
    forwarded = InboundRecord(
        b"",
        None,
        "rekeyed",
        5,
        3,
        0.0,
        normalised=True,
        origin="lms.events.v1/0",
        origin_offset=40,
    )
    copy = processor.ingest_events([(first.events[0], forwarded)], view, stored=stored)
    assert copy.redelivered == 1 and not copy.events


def test_copies_in_one_batch_count_once_though_the_window_forgot_the_first(
    model: LearnerModel,
) -> None:
    """A batch may hold a record twice: a seek back, or a record forwarded again.

    A replacement re-forwards what the dead worker forwarded, so the owner can read every
    copy in one batch, the second after later events of the learner. When those are hours of
    event time later, the dedupe window has dropped the first copy's id and the store does
    not hold it yet: the batch itself must know it took the event.
    """
    events = _cohort(1, 8)
    records = _from_offset_40(list(events))
    learners, processor = _forgetful()
    view = StateView(learners, {}, {}, model.window)
    twice = processor.ingest(records + records, view, stored=set())
    view.write_back(twice)
    assert len(twice.events) == len(records)
    # the last copy meets its own offset, as another event of the record taken would
    assert twice.redelivered + twice.duplicates == len(records) and twice.late == 0
    (raw,) = learners.values()
    assert LearnerRecord.from_bytes(raw).events == len(records)  # type: ignore[arg-type]


def test_an_id_remembered_when_a_batch_starts_is_not_forgotten_within_it(
    model: LearnerModel,
) -> None:
    """Copies behind a learner's newer events in one batch count once.

    A replacement re-forwards what the dead worker forwarded, so the owner's batch can hold a
    learner's newer events (hours later in event time) before copies of events its state took
    in an earlier batch. The dedupe window, pruned as each newer event came, dropped those
    ids mid-batch; the copies, asked of nobody (the store is asked only about ids doubtful
    when the batch starts), were taken late and counted twice.
    """
    events = _cohort(1, 8)
    records = _from_offset_40(list(events))
    learners, processor, view, half, first = _first_half_taken(records, model)
    (raw,) = learners.values()
    kept = LearnerRecord.from_bytes(raw)  # type: ignore[arg-type]
    assert any(kept.remembers(e.event_id) for e in first.events), "the window keeps the last ids"

    batch = records[half:] + records[:half]
    parsed = processor.parse(batch, BatchResult())
    stored = {e.event_id for e in first.events}
    again = processor.ingest(batch, view, stored=stored & set(processor.doubtful(parsed, view)))
    view.write_back(again)
    assert again.late == 0 and again.redelivered == half
    (raw,) = learners.values()
    assert LearnerRecord.from_bytes(raw).events == len(records)  # type: ignore[arg-type]


def test_a_record_the_state_passed_without_taking_is_processed_late(
    model: LearnerModel,
) -> None:
    """Records that reach the worker out of order are not lost.

    A learner's state that took offset 50 before offset 45 (a batch dropped between fetch
    and processing, then fetched again after a later one) must still take 45: the store does
    not hold it, so nothing says its results are durable.
    """
    events = _cohort(1, 4)
    records = _from_offset_40(list(events))
    later, earlier = records[len(records) // 2 :], records[: len(records) // 2]
    learners, processor = _forgetful()
    view = StateView(learners, {}, {}, model.window)
    ahead = processor.ingest(later, view)
    view.write_back(ahead)
    assert ahead.events

    parsed = processor.parse(earlier, BatchResult())
    assert len(processor.doubtful(parsed, view)) == len(earlier)
    behind = processor.ingest(earlier, view, stored=set())
    view.write_back(behind)
    assert behind.late == len(earlier) and behind.redelivered == 0
    assert len(behind.events) == len(earlier)
    (raw,) = learners.values()
    assert LearnerRecord.from_bytes(raw).events == len(records)  # type: ignore[arg-type]

    # once taken, the late records are remembered: a further delivery is skipped
    again = processor.ingest(earlier, view)
    assert again.redelivered == len(earlier) and not again.events


def test_a_record_passed_and_taken_late_by_a_worker_that_died_is_taken_again(
    model: LearnerModel,
) -> None:
    """The store holding a record's rows does not make a state that never took it skip it.

    A worker takes offset 45 after 46 (out of order), so its snapshot can hold 46 without 45;
    it then takes 45 late, stores its rows, and dies before its state with 45 reaches the
    changelog. The replacement recovers the snapshot: 45 is behind its offset and in the
    store, but its event is later than any id the state forgot, so it was never taken.
    """
    events = _cohort(1, 6)
    records = _from_offset_40(list(events))
    learners: dict[str, bytes] = {}
    processor = _processor()  # a dedupe window longer than the class: nothing is forgotten
    view = StateView(learners, {}, {}, model.window)
    skipped, after = records[4], records[:4] + records[5:]
    view.write_back(processor.ingest(after, view))
    snapshot = dict(learners)
    late = processor.ingest([skipped], view, stored=set())
    view.write_back(late)
    assert late.late == 1

    learners.clear()
    learners.update(snapshot)  # the replacement's state: the snapshot, without the late one
    view.forget()
    parsed = processor.parse([skipped], BatchResult())
    assert processor.doubtful(parsed, view) == [], "not remembered, never forgotten: never taken"
    again = processor.ingest([skipped], view, stored={e.event_id for e in late.events})
    view.write_back(again)
    assert again.late == 1 and again.redelivered == 0
    (raw,) = learners.values()
    assert LearnerRecord.from_bytes(raw).events == len(records)


def test_a_state_knows_which_ids_it_may_have_forgotten_across_its_formats() -> None:
    record = LearnerRecord.new(8)
    assert not record.may_have_forgotten(0.0)
    for k in range(5):
        record.remember(f"e{k}", 100.0 * k, horizon_s=150.0, max_ids=100)
    assert record.forgotten_upto == 200.0  # e0..e2 left the window as e4 came
    assert record.may_have_forgotten(200.0) and not record.may_have_forgotten(250.0)
    assert LearnerRecord.from_bytes(record.to_bytes()).forgotten_upto == 200.0
    fresh = LearnerRecord.from_bytes(LearnerRecord.new(8).to_bytes())
    assert fresh.forgotten_upto == float("-inf")
    # a record written before the horizon was kept: up to its newest id, anything may be gone
    raw = record.to_bytes()
    version, t, filled, n_seen, length, n = _HEADER.unpack_from(raw)
    meta = orjson.loads(raw[_HEADER.size : _HEADER.size + length])
    del meta["p"]
    packed = orjson.dumps(meta)
    older = _HEADER.pack(version, t, filled, n_seen, len(packed), n) + packed
    older += raw[_HEADER.size + length :]
    assert LearnerRecord.from_bytes(older).forgotten_upto == 400.0


def test_normalised_events_featurise_as_raw_records_do(model: LearnerModel) -> None:
    events = _cohort(5, 8)
    records = _records(events)
    processor = _processor()
    from_raw = processor.ingest(records, StateView({}, {}, {}, model.window))

    # the same events normalised beforehand, as a replay hands them over, scored in chunks
    normalised = _processor().ingest(records, StateView({}, {}, {}, model.window)).events
    pairs = list(zip(normalised, records, strict=True))
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    from_events = _processor().ingest_events(
        pairs,
        StateView({}, {}, {}, model.window),
        ready=lambda x, m, q: chunks.append((x.copy(), m.copy(), q.copy())),
        chunk=7,
    )
    assert [e.event_id for e in from_events.events] == [e.event_id for e in from_raw.events]
    assert from_events.scored == from_raw.scored
    assert np.array_equal(from_events.feature_vectors, from_raw.feature_vectors)
    x, m, q = processor.model_inputs(from_raw)
    # every decision point handed over once, in order, in chunks of at most 7
    assert all(len(c[0]) <= 7 for c in chunks) and len(chunks) > 1
    for got, want in zip(zip(*chunks, strict=True), (x, m, q), strict=True):
        assert np.array_equal(np.concatenate(got), want)
    assert from_events.mastery == from_raw.mastery


def test_model_inputs_snapshot_each_decision_point(model: LearnerModel) -> None:
    events = _cohort(1, 6)
    processor = _processor()
    result = processor.ingest(_records(events), StateView({}, {}, {}, model.window))
    x, m, _ = processor.model_inputs(result)
    # each decision point's window ends with its own event, and holds what came before it
    for row, index in enumerate(result.scored):
        assert np.array_equal(x[row, -1], result.feature_vectors[index])
        assert int(m[row].sum()) == min(model.window, index + 1)


def _run(
    processor: EventProcessor,
    model: LearnerModel,
    view: StateView,
    batches: list[list[InboundRecord]],
) -> list[RecommendationOut]:
    out: list[RecommendationOut] = []
    for records in batches:
        result = processor.ingest(records, view)
        x, m, q = processor.model_inputs(result)
        processor.decide(result, view, model.predict(x, m, q), model.score_candidates)
        view.write_back(result)
        out.extend(result.recommendations)
    return out


def test_recommendations_come_from_the_next_item_policy(model: LearnerModel) -> None:
    events = _cohort(n=4, problems=14)
    view = StateView({}, {}, {}, model.window)
    processor = _processor()
    recs = _run(processor, model, view, [_records(events)])
    finished = [e for e in events if e["event_type"] == "problem_complete"]
    assert recs and len(recs) == len(finished)
    for rec in recs:
        # the policy's one-line reason, naming the item and the success predicted for it
        assert rec.reason.startswith(f"{rec.item_id}: "), rec.reason
        assert f"predicted success {rec.p_success:.0%}" in rec.reason
        assert 0.0 < rec.p_success < 1.0
        # alternatives are other items of the same skill, nearer the target first
        gaps = [abs(p - processor.target_success) for _, p in rec.alternatives]
        assert gaps == sorted(gaps) and rec.item_id not in {i for i, _ in rec.alternatives}
        if gaps:
            assert abs(rec.p_success - processor.target_success) <= gaps[0] + 1e-9
        # and it makes a valid record for the recommendations topic
        assert outbound.recommendation(rec, model.spec).items[0].reason == rec.reason


def test_the_same_finished_items_get_recommendations_whatever_the_batches(
    model: LearnerModel,
) -> None:
    events = _cohort(n=4, problems=14)
    records = _records(events)
    whole = _run(_processor(), model, StateView({}, {}, {}, model.window), [records])
    cut = len(records) // 3
    pieces = [records[:cut], records[cut : 2 * cut], records[2 * cut :]]
    split = _run(_processor(), model, StateView({}, {}, {}, model.window), pieces)
    assert sorted(r.event.event_id for r in whole) == sorted(r.event.event_id for r in split)


def test_a_learner_is_decoded_again_only_when_the_stored_bytes_change(
    model: LearnerModel,
) -> None:
    events = _cohort(n=2, problems=6)
    learners: dict[str, object] = {}
    view = StateView(learners, {}, {}, model.window)
    processor = _processor()
    _run(processor, model, view, [_records(events[: len(events) // 2])])
    learner_id = next(iter(learners))
    # written by the last batch and unchanged since: the record is reused, not decoded again
    kept = view.learner(learner_id)
    assert kept.to_bytes() == learners[learner_id]
    view.write_back(processor.ingest([], view))
    assert view.learner(learner_id) is kept
    # a failed batch changed it in place: it is forgotten and read from the stored bytes
    kept.events += 1000
    view.forget()
    reread = view.learner(learner_id)
    assert reread is not kept and reread.events == kept.events - 1000
    # new bytes under the key (a changelog recovery, another worker) are decoded afresh
    _run(processor, model, view, [_records(events[len(events) // 2 :], offset=10_000)])
    written = view.learner(learner_id)
    view.write_back(processor.ingest([], view))
    learners[learner_id] = bytes(learners[learner_id])  # type: ignore[arg-type]
    assert view.learner(learner_id) is not written


def _statement(verb: str, n: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"00000000-0000-4000-8000-{n:012d}",
            "actor": {"objectType": "Agent", "mbox": "mailto:ada@example.edu"},
            "verb": {"id": verb},
            "object": {"objectType": "Activity", "id": "https://lms.example.edu/q/1"},
            "timestamp": f"2026-03-02T09:00:{n:02d}Z",
        }
    )


def test_valid_statements_the_model_does_not_use_are_stored_not_dead_lettered(
    model: LearnerModel,
) -> None:
    from streams import metrics

    before = metrics.UNMODELLED.labels("http://adlnet.gov/expapi/verbs/launched", "builtin@3")
    counted = before._value.get()
    records = [
        InboundRecord(_statement(verb, n), None, "lms.events.v1", 0, n, 0.0)
        for n, verb in enumerate(
            [
                "http://adlnet.gov/expapi/verbs/attempted",
                "http://adlnet.gov/expapi/verbs/launched",
                "https://lms.example.edu/verbs/bookmarked",
            ]
        )
    ]
    view = StateView({}, {}, {}, model.window)
    result = _processor().ingest(records, view)
    assert not result.dead_letters
    assert [e.event_type.value for e in result.events] == ["problem_start"]
    assert [u.verb for u in result.unmodelled] == [
        "http://adlnet.gov/expapi/verbs/launched",
        "https://lms.example.edu/verbs/bookmarked",
    ]
    assert before._value.get() == counted + 1
    rows = outbound.store_batch(result, model.spec).rows
    stored = [
        row for table, table_rows in rows.items() if table.name == "events" for row in table_rows
    ]
    assert sorted(row[7] for row in stored) == ["problem_start", "unmodelled", "unmodelled"]
    assert {row[-1] for row in stored if row[7] == "unmodelled"} == {
        "http://adlnet.gov/expapi/verbs/launched",
        "https://lms.example.edu/verbs/bookmarked",
    }
    assert {row[-2] for row in stored} == {"builtin@3"}


def test_a_record_naming_a_profile_the_worker_lacks_is_a_dead_letter(model: LearnerModel) -> None:
    record = InboundRecord(
        _statement("http://adlnet.gov/expapi/verbs/attempted", 1),
        None,
        "lms.events.v1",
        0,
        1,
        0.0,
        profile="elsewhere",
    )
    result = _processor().ingest([record], StateView({}, {}, {}, model.window))
    (letter,) = result.dead_letters
    assert letter.error.path == "header.tutorstream-profile"
    assert "elsewhere" in letter.error.reason


def test_a_statement_without_any_time_takes_the_time_kafka_received_it(
    model: LearnerModel,
) -> None:
    statement = orjson.loads(_statement("http://adlnet.gov/expapi/verbs/attempted", 1))
    del statement["timestamp"]
    received = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    record = InboundRecord(
        orjson.dumps(statement), None, "lms.events.v1", 0, 1, received.timestamp()
    )
    result = _processor().ingest([record], StateView({}, {}, {}, model.window))
    assert not result.dead_letters
    (event,) = result.events
    assert event.timestamp == received


def test_a_literature_definition_raises_its_state_with_its_evidence(model: LearnerModel) -> None:
    """Wheel-spinning scripted on one skill: the rule raises it at the tenth opportunity."""
    from inference.lab.scenarios.learners import SCENARIOS, cohort
    from inference.lab.scenarios.styles import STYLES

    spinning = next(s for s in SCENARIOS if s.name == "wheel_spinning")
    learner = cohort(spinning, spinning.variants[1], 1, seed=6, prefix="t-")[0]
    statements, onset = STYLES[0].statements(learner)
    assert onset is not None
    processor, view = _processor(), StateView({}, {}, {}, model.window)
    raised = []
    for n in range(0, len(statements), 7):  # small batches: the memory crosses them
        batch = [
            InboundRecord(s.payload, b"k", "lms.events.v1", 0, n + i, 0.0)
            for i, s in enumerate(statements[n : n + 7])
        ]
        result = processor.ingest(batch, view)
        processor.decide(result, view, model.predict(*processor.model_inputs(result)))
        raised.extend(result.interventions)
        view.write_back(result)
    by_rule = [out for out in raised if out.rule is not None]
    assert by_rule and by_rule[0].decision.state == "wheel_spinning"
    assert by_rule[0].event.event_id == statements[onset].event_id.lower()
    record = outbound.intervention(by_rule[0], model.spec)
    assert record.evidence["rule"]["name"] == "no_mastery_in_ten"  # type: ignore[index,call-overload]
    assert "by definition" in str(record.evidence["reason"])

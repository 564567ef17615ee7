"""State held between snapshots: batches read what earlier batches held, tables wait for it."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from streams.learner_state import LearnerRecord
from streams.policy import InterventionPolicy, PolicySettings
from streams.processor import EventProcessor, InboundRecord, StateView
from streams.snapshots import HeldWrites, SnapshotClock, last_alone
from tutorstream.cohort import labelled_cohort

pytestmark = pytest.mark.unit


def _records(events: list[dict[str, object]], partition: int, offset: int) -> list[InboundRecord]:
    return [
        InboundRecord(orjson.dumps(e), None, "lms.events.v1", partition, offset + i, 0.0)
        for i, e in enumerate(events)
    ]


def _processor() -> EventProcessor:
    return EventProcessor(
        pseudonym_key=b"test-pseudonym-key",
        owns=lambda learner, record: True,
        policy=InterventionPolicy(PolicySettings()),
        dedupe_window_s=1e9,
    )


def _events(learners: int, problems: int) -> list[dict[str, object]]:
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    return [e for e, _ in labelled_cohort(learners, problems, 3, start=start)]


def test_held_values_are_read_first_and_taken_once_per_key() -> None:
    held = HeldWrites(2)
    held.put(0, "a", b"1", 3)
    held.put(0, "a", b"2", 3)  # a later batch: one changelog record per key, the newest
    held.put(1, "i", b"x", 5)
    assert held.get(0, "a") == b"2" and held.get(1, "a") is None and len(held) == 2
    taken = held.take(lambda partition: partition == 3)
    assert taken == [[("a", b"2", 3)], []]  # partition 5 is no longer this worker's
    assert len(held) == 0 and held.get(0, "a") is None


def test_batches_see_held_state_and_the_tables_only_what_a_snapshot_wrote() -> None:
    events = _events(3, 8)
    half = len(events) // 2
    learners_table: dict[str, bytes] = {}
    tables: tuple[dict[str, bytes], ...] = (learners_table, {}, {})
    held = HeldWrites(3)
    view = StateView(learners_table, tables[1], tables[2], window=16, held=held)
    processor = _processor()
    first = processor.ingest(_records(events[:half], 0, 0), view)
    view.write_back(first)
    assert not any(tables) and len(held) > 0  # nothing reaches a table before a snapshot

    second = processor.ingest(_records(events[half:], 0, half), view)
    view.write_back(second)
    learners = {e.learner_id for e in first.events} | {e.learner_id for e in second.events}
    for table, values in zip(tables, held.take(lambda p: True), strict=True):
        table.update({key: value for key, value, _ in values})
    assert set(learners_table) == learners
    # each learner's state holds both batches' events: the second read what the first held
    counted = sum(LearnerRecord.from_bytes(raw).events for raw in learners_table.values())
    assert counted == len(first.events) + len(second.events) == len(events)


def test_a_failed_batch_forgets_its_changes_not_what_earlier_batches_held() -> None:
    events = _events(2, 6)
    half = len(events) // 2
    held = HeldWrites(3)
    view = StateView({}, {}, {}, window=16, held=held)
    processor = _processor()
    first = processor.ingest(_records(events[:half], 0, 0), view)
    view.write_back(first)
    before = {key: held.get(0, key) for key in first.touched_learners}

    processor.ingest(_records(events[half:], 0, half), view)  # changed in place, then it fails
    view.forget()
    assert {key: held.get(0, key) for key in first.touched_learners} == before
    again = processor.ingest(_records(events[half:], 0, half), view)
    assert len(again.events) == len(events) - half and not again.duplicates


def test_a_snapshot_is_due_after_its_interval_or_its_count_and_only_with_records() -> None:
    clock = SnapshotClock(interval_s=3600.0, most=100)
    assert not clock.due() and clock.wait_s() is None  # nothing processed: nothing to wait for
    clock.add(60)
    assert not clock.due() and 0 < (clock.wait_s() or 0) <= 3600.0
    clock.add(40)
    assert clock.due()
    clock.taken()
    assert not clock.due() and clock.records == 0
    every_batch = SnapshotClock(interval_s=0.0, most=100)
    every_batch.add(1)
    assert every_batch.due() and every_batch.wait_s() == 0.0


def test_each_partitions_last_value_goes_alone_after_the_rest() -> None:
    values = [("a", b"1", 0), ("b", b"2", 1), ("c", b"3", 0), ("d", b"4", 0), ("e", b"5", 2)]
    first, last = last_alone(values)
    assert first == [("a", b"1", 0), ("c", b"3", 0)]
    assert sorted(last, key=lambda v: v[2]) == [("d", b"4", 0), ("b", b"2", 1), ("e", b"5", 2)]
    assert sorted(first + last) == sorted(values), "every value is sent, once"
    assert last_alone([]) == ([], [])

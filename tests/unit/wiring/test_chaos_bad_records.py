"""The bad records ``tutorstream chaos`` mixes in: every kind, each one refused by the worker."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from tutorstream.chaos import (
    OVERSIZED_BYTES,
    ChaosReport,
    FaultReport,
    bad_records,
    format_runs,
    format_table,
)

pytestmark = pytest.mark.unit


def test_bad_records_of_every_kind_in_the_asked_numbers() -> None:
    records = bad_records(1000, 4, random.Random(1))
    kinds = Counter(kind for _, kind in records)
    assert len(records) == 1000
    assert kinds["oversized"] == 4
    assert set(kinds) == {
        "oversized",
        "truncated json",
        "wrong types",
        "missing actor",
        "random bytes",
        "wrong shape",
        "deeply nested",
        "empty",
        "not utf-8",
    }
    for (_, value), kind in records:
        if kind == "oversized":
            assert len(value) >= OVERSIZED_BYTES


def test_every_bad_record_is_refused_by_the_normaliser() -> None:
    """Each would be a dead letter: none of them is a valid event by accident."""
    pseudonym = pseudonymiser_for(b"k" * 32)
    for (_, value), kind in bad_records(90, 0, random.Random(2)):
        with pytest.raises((InvalidEvent, ValueError)):
            normalise(value, pseudonym)
        assert kind != "oversized"


def test_a_fault_fails_on_a_missing_event_a_duplicate_or_a_bad_record_without_dead_letter() -> None:
    clean = FaultReport("kill", produced=10, stored=10, duplicated={"events": 0})
    assert clean.ok
    assert not FaultReport("kill", produced=10, stored=9, missing=1).ok
    assert not FaultReport("kill", produced=10, stored=10, duplicated={"interventions topic": 1}).ok
    assert not FaultReport("bad", produced=10, stored=10, bad_records=5, dlq_on_topic=4).ok
    table = format_table(ChaosReport(events=10, learners=2, seed=1, faults=[clean]))
    assert "missing" in table and "ok" in table


def test_a_fault_is_clean_only_when_every_figure_is_and_runs_are_counted_per_fault() -> None:
    def kill(**figures: int) -> FaultReport:
        return FaultReport("kill", produced=100, stored=100, seconds=10.0, **figures)

    clean, twice, drifted = kill(), kill(), kill(state_disagrees=2)
    twice.duplicated = {"events": 1}
    assert clean.ok and not twice.ok and not drifted.ok
    bad = FaultReport("bad", produced=100, stored=100, bad_records=10, dlq_on_topic=11)
    assert not bad.ok, "a second dead letter is not one per bad record"

    reports = [ChaosReport(100, 5, seed, faults=[f]) for seed, f in enumerate([clean, twice])]
    reports.append(ChaosReport(100, 5, 2, faults=[drifted]))
    text = format_runs(reports)
    assert "kill: 1 of 3 runs clean" in text
    assert "1 duplicated" in text and "2 learners' state disagreeing" in text


def test_a_disagreeing_state_is_printed_with_where_its_count_went_off_and_the_kept_logs() -> None:
    off = {"rank": 7, "counted": 8, "after_event": "e-6", "after_time": "2026-12-05T10:00:00"}
    drifted = FaultReport(
        "kill",
        produced=10,
        stored=10,
        state_disagrees=1,
        disagreeing=[
            {
                "learner": "p-1",
                "answers_stored": 9,
                "answers_in_state": 10,
                "answers_in_features": 10,
                "first_off": off,
            }
        ],
        logs="/tmp/kept/kill-seed3",
    )
    table = format_table(ChaosReport(events=10, learners=2, seed=3, faults=[drifted]))
    assert "learner p-1: 9 answers stored, 10 in its state, 10 in its feature rows" in table
    assert "went off at answer 7 (counted 8), after event e-6" in table
    assert "/tmp/kept/kill-seed3" in table and "FAILED" in table

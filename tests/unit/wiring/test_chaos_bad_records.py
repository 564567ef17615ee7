"""The bad records ``tutorstream chaos`` mixes in: every kind, each one refused by the worker."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from tutorstream.chaos import (
    OVERSIZED_BYTES,
    RECOVERIES,
    ChaosReport,
    FaultReport,
    bad_records,
    format_runs,
    format_table,
    recoveries,
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


# Lines as workers of a kill and a rebalance fault wrote them (pseudonyms shortened).
_WORKER_LOG = """\
[2026-12-06 11:12:26,895] [16888] [WARNING] TopicPartition(topic='chaos-kill-0911d8-events-\
rekeyed', partition=2) delivered offset 551 after 549: offsets 550..550 were skipped; reading \
again from the committed offset
[2026-12-06 11:12:26,896] [16888] [WARNING] reading every partition again from its committed \
offset (hole)
[2026-12-06 11:12:27,175] [16888] [WARNING] 1 records taken late: the state had passed them \
without taking them (first: chaos-kill-25b231.lms.events.v1/1@3061, event sim-bkt-16-45-15 of \
learner e1a6, whose state had taken chaos-kill-25b231.lms.events.v1/1 up to 3064)
[2026-12-06 11:12:40,760] [17077] [WARNING] 23 records taken late: the state had passed them \
without taking them (first: chaos-rebalance-b978ae.lms.events.v1/2@6167, event s-1 of learner \
4b3a, whose state had taken chaos-rebalance-b978ae.lms.events.v1/2 up to 6170)
[2026-12-06 11:13:02,001] [17077] [WARNING] batch of 512 records failed (ValueError: x); taking \
its records one by one
[2026-12-06 11:13:02,101] [17077] [ERROR] 1 records failed (ValueError: x); sending them to \
the DLQ
[2026-12-06 11:13:05,500] [17077] [WARNING] broker did not take 40 records (KafkaTimeoutError); \
sending them again in 0.5s
[2026-12-06 11:13:06,000] [17077] [ERROR] store not writable, holding the batch: connection \
refused
[2026-12-06 11:13:07,000] [17077] [INFO] batch of 12 records stored
"""


def test_recovery_paths_are_counted_from_the_workers_logs(tmp_path: Path) -> None:
    first, second = tmp_path / "worker-0.log", tmp_path / "worker-1.log"
    first.write_text(_WORKER_LOG, encoding="utf-8")
    second.write_bytes(b"\xff not utf-8\n" + first.read_bytes())
    counts = recoveries([first, second])
    assert counts == {
        "delivery holes": 2,
        "reads from the commit": 2,
        "records taken late": 48,
        "batches taken one by one": 2,
        "records sent again": 80,
        "store waits": 2,
    }
    assert recoveries([]) == dict.fromkeys(counts, 0)


def test_recovery_paths_are_printed_per_fault_and_summed_over_runs() -> None:
    def kill(late: int) -> FaultReport:
        return FaultReport("kill", produced=10, stored=10, recoveries={"records taken late": late})

    table = format_table(ChaosReport(events=10, learners=2, seed=1, faults=[kill(23)]))
    assert any(
        line.startswith("recovered: records taken late") and line.endswith(" 23")
        for line in table.splitlines()
    )
    reports = [ChaosReport(10, 2, seed, faults=[kill(n)]) for seed, n in ((1, 23), (2, 4))]
    assert "kill: recovered over the runs: 27 records taken late" in format_runs(reports)


def _worker_log_messages() -> list[str]:
    """Every message the stream worker logs at WARNING or ERROR, its arguments filled in."""
    import ast

    import streams

    messages = []
    for source in Path(streams.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"warning", "error"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                messages.append(re.sub(r"%[.\d]*[dfs]", "1", node.args[0].value))
    return messages


def test_every_recovery_path_is_a_message_the_worker_logs() -> None:
    messages = _worker_log_messages()
    assert len(messages) > 10
    for name, pattern in RECOVERIES:
        assert any(pattern.search(m) for m in messages), f"{name}: no worker message matches"

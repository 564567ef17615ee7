"""The whole stream pipeline on real services: Tansu, PostgreSQL 18 and the shipped ONNX model."""

from __future__ import annotations

import base64
import math
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from inference.features import EVENT_FEATURE_INDEX
from tutorstream.cohort import labelled_cohort

pytestmark = pytest.mark.e2e

EVENTS = "SELECT count(*) FROM events"


def _cohort(learners: int, problems: int, seed: int) -> tuple[list[dict[str, Any]], list[str]]:
    start = datetime.now(UTC) - timedelta(days=1)
    pairs = list(labelled_cohort(learners, problems, seed, start=start))
    return [e for e, _ in pairs], [s for _, s in pairs]


def _poison() -> list[tuple[bytes | None, bytes, str]]:
    """Bad records and the field path each must be rejected with."""
    statement_without_actor = {
        "id": str(uuid.uuid4()),
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "https://lms.example/items/1"},
        "timestamp": "2026-01-01T10:00:00Z",
    }
    wrong_types = {
        "event_id": "bad-1",
        "learner_id": "s-1",
        "event_type": "answer_submit",
        "timestamp": "2026-01-01T10:00:00Z",
        "attempt": "three",
    }
    naive_time = {
        "event_id": "bad-2",
        "learner_id": "s-1",
        "event_type": "hint_request",
        "timestamp": "2026-01-01T10:00:00",
    }
    return [
        (b"x", b"{not json", ""),
        (b"x", orjson.dumps(statement_without_actor), "actor"),
        (b"x", orjson.dumps(wrong_types), "attempt"),
        (b"x", orjson.dumps(naive_time), "timestamp"),
        (b"x", b'{"event_id": "big", "padding": "' + b"a" * 600_000 + b'"}', ""),
    ]


def _interleave(
    good: list[tuple[bytes | None, bytes]], bad: list[tuple[bytes | None, bytes]]
) -> list[tuple[bytes | None, bytes]]:
    out = list(good)
    step = max(1, len(good) // (len(bad) + 1))
    for i, record in enumerate(bad):
        out.insert((i + 1) * step + i, record)
    return out


def test_cohort_flows_through_with_poison_and_duplicates(pipeline: Any, read_topic: Any) -> None:
    events, states = _cohort(learners=24, problems=20, seed=11)
    poison = _poison()
    records = pipeline.native_records(events)
    # a producer retrying a slice of its events must not create duplicates
    retried = records[100:400]
    pipeline.start_worker()
    pipeline.produce(_interleave(records, [(k, v) for k, v, _ in poison]) + retried)

    assert pipeline.wait_for(EVENTS, len(events)) == len(events)
    time.sleep(2.0)  # anything extra would show up now
    assert pipeline.scalar(EVENTS) == len(events)
    assert pipeline.scalar("SELECT count(DISTINCT event_id) FROM events") == len(events)

    letters = [
        orjson.loads(m.value())
        for m in read_topic(pipeline.topic("lms.events.dlq.v1"), len(poison))
    ]
    by_original = {base64.b64decode(d["original_b64"]): d for d in letters}
    for _, value, path in poison:
        letter = by_original[value]
        assert letter["error_reason"]
        assert letter["error_path"].split(".")[0].split("[")[0] == path.split(".")[0]
        assert letter["topic"] == pipeline.topic("lms.events.v1")

    # interventions: stored once, published once, mostly on events in a non-none state
    truth = {e["event_id"]: s for e, s in zip(events, states, strict=True)}
    stored = pipeline.rows("SELECT intervention_id, event_id, state, status FROM interventions")
    assert stored, pipeline.log_tail()
    assert len({r[0] for r in stored}) == len(stored)
    on_none = sum(1 for r in stored if truth[r[1]] == "none")
    assert on_none / len(stored) <= 0.35, Counter(truth[r[1]] for r in stored)
    published = read_topic(pipeline.topic("tutor.interventions.v1"), len(stored))
    assert sorted(orjson.loads(m.value())["intervention_id"] for m in published) == sorted(
        r[0] for r in stored
    )
    assert {r[3] for r in stored} <= {"pending_review", "sent"}

    # predictions and features for every scored event, each once
    assert pipeline.scalar("SELECT count(*) - count(DISTINCT event_id) FROM predictions") == 0
    assert pipeline.scalar("SELECT count(*) FROM predictions") > len(events) // 2

    text = pipeline.metrics()
    assert "tutorstream_events_in_total" in text
    assert "tutorstream_dlq_total" in text
    assert pipeline.workers[0].poll() is None, "the worker must survive poison messages"
    assert "Crashed" not in pipeline.log_tail(10**7)


def _duplicates(pipeline: Any) -> dict[str, int]:
    out = {}
    for table in ("events", "features", "predictions", "interventions", "recommendations"):
        key = "intervention_id" if table == "interventions" else "event_id"
        out[table] = pipeline.scalar(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}")
    return out


def _assert_state_carried_over(pipeline: Any) -> None:
    """Each learner's last answer counts every answer once: state moved over, nothing twice.

    The replacement reads learner state back from the changelog and is handed again the
    records its predecessor processed but never committed. A lost record would restart a
    learner's answer count (the ``experience`` feature); a redelivery counted again would
    push it past the number of answers stored.
    """
    column = EVENT_FEATURE_INDEX["experience"] + 1  # SQL arrays count from 1
    answers = dict(
        pipeline.rows(
            "SELECT learner_id, count(*) FROM events WHERE event_type = 'answer_submit' "
            "GROUP BY learner_id"
        )
    )
    reached = dict(
        pipeline.rows(f"SELECT learner_id, max(vector[{column}]) FROM features GROUP BY 1")
    )
    assert answers and answers.keys() <= reached.keys()
    wrong = {
        learner: (count, round(math.expm1(reached[learner] * math.log(1001.0))))
        for learner, count in answers.items()
        if reached[learner] != pytest.approx(math.log1p(count) / math.log(1001.0), rel=1e-6)
    }
    assert not wrong, f"learner: (answers stored, answers its state counted): {wrong}"


def test_killed_worker_loses_and_duplicates_nothing(pipeline: Any, read_topic: Any) -> None:
    events, _ = _cohort(learners=30, problems=30, seed=12)
    first = pipeline.start_worker()
    pipeline.produce(pipeline.native_records(events))
    pipeline.wait_for(EVENTS, len(events) // 4)
    pipeline.kill(first)  # SIGKILL mid-stream: no shutdown, no final commit
    pipeline.start_worker()
    # the event ids, not a count: a count can be right while some events are missing
    produced = {str(e["event_id"]) for e in events}
    stored: set[str] = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not produced <= stored:
        stored = {r[0] for r in pipeline.rows("SELECT event_id FROM events")}
        time.sleep(1.0)
    assert stored == produced, (
        f"{len(produced - stored)} produced events not stored\n{pipeline.log_tail()}"
    )
    time.sleep(3.0)
    assert _duplicates(pipeline) == dict.fromkeys(_duplicates(pipeline), 0)
    assert pipeline.scalar(EVENTS) == len(events)
    _assert_state_carried_over(pipeline)
    stored = pipeline.scalar("SELECT count(*) FROM interventions")
    published = read_topic(pipeline.topic("tutor.interventions.v1"), stored, settle=2.0)
    ids = [orjson.loads(m.value())["intervention_id"] for m in published]
    assert len(ids) == len(set(ids)) == stored


def test_database_outage_pauses_then_catches_up(
    pipeline: Any, tmp_path: Any, read_topic: Any
) -> None:
    """Stop PostgreSQL under load: the worker waits, then catches up; nothing is lost."""
    from streams.store import migrate
    from tutorstream import services

    port = services.free_port()
    data, logs = tmp_path / "pg", tmp_path / "pglogs"
    logs.mkdir()
    server = services.start_postgres(data, logs, port=port)
    try:
        migrate(server.url)
        pipeline.database_url = server.url
        pipeline.schema = "public"
        events, _ = _cohort(learners=20, problems=25, seed=13)
        pipeline.start_worker()
        half = len(events) // 2
        records = pipeline.native_records(events)
        pipeline.produce(records[:half])
        pipeline.wait_for(EVENTS, half // 2)
        server.stop()
        pipeline.produce(records[half:])
        time.sleep(8.0)  # the worker retries with backoff while the database is down
        assert pipeline.workers[0].poll() is None, pipeline.log_tail()
        server = services.start_postgres(data, logs, port=port)
        assert pipeline.wait_for(EVENTS, len(events), timeout=240) == len(events)
        time.sleep(2.0)
        assert pipeline.scalar(EVENTS) == len(events)
        assert pipeline.scalar("SELECT count(*) - count(DISTINCT event_id) FROM events") == 0
    finally:
        server.stop()

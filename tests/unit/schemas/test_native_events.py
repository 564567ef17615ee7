from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from contract_data import KEY, payloads_of
from hypothesis import HealthCheck, given, settings

from schemas.events import EventType, LearningEvent, SourceFormat
from schemas.exceptions import InvalidEvent
from schemas.native import NativeEvent
from schemas.normalise import normalise
from schemas.pseudonym import Pseudonymiser

pytestmark = pytest.mark.unit

EXAMPLE: dict[str, Any] = NativeEvent.model_json_schema()["examples"][0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads_of(NativeEvent))
def test_every_event_the_model_allows_normalises(payload: dict[str, Any]) -> None:
    (event,) = normalise(orjson.dumps(payload), KEY)
    assert normalise(payload, KEY) == [event]
    assert LearningEvent.model_validate(event.model_dump()) == event
    assert event.source is SourceFormat.NATIVE
    assert event.event_id == payload["event_id"]
    assert event.learner_id == Pseudonymiser(KEY).native_learner(payload["learner_id"])
    assert event.event_type == payload["event_type"]
    assert event.skill_ids == tuple(payload.get("skill_ids", ()))
    if payload.get("response") is not None:
        assert event.response_hash == hashlib.sha256(payload["response"].encode()).hexdigest()
    else:
        assert event.response_hash is None
    assert event.timestamp.tzinfo is UTC


def test_the_documented_example_normalises() -> None:
    (event,) = normalise(orjson.dumps(EXAMPLE), KEY)
    assert event.event_type is EventType.ANSWER_SUBMIT
    assert event.timestamp == datetime(2024, 3, 1, 10, 15, 0, 120000, tzinfo=UTC)
    assert (event.attempt, event.correct, event.class_id) == (2, False, "7b")
    assert "s-4711" not in event.model_dump_json()
    assert "3/8" not in event.model_dump_json()


BROKEN = [
    ("attempt", "3", "attempt", "integer"),
    ("attempt", 0, "attempt", "greater than or equal to 1"),
    ("correct", "true", "correct", "boolean"),
    ("event_type", "answered", "event_type", "answer_submit"),
    ("timestamp", "2024-03-01T10:15:00", "timestamp", "time zone"),
    ("timestamp", "2024-03-01T10:15:00-00:00", "timestamp", "unknown"),
    ("timestamp", 1709288100, "timestamp", "string"),
    ("skill_ids", ["ok", ""], "skill_ids[1]", "at least 1 character"),
    ("score_scaled", 1.5, "score_scaled", "less than or equal to 1"),
    ("colour", "blue", "colour", "Extra inputs"),
    ("learner_id", None, "learner_id", "string"),
    ("resource_relation", "agrees", "resource_relation", "supports"),
]


@pytest.mark.parametrize(("field", "value", "path", "words"), BROKEN)
def test_broken_native_events_are_named(field: str, value: Any, path: str, words: str) -> None:
    payload = {**EXAMPLE, field: value}
    with pytest.raises(InvalidEvent) as caught:
        normalise(orjson.dumps(payload), KEY)
    assert caught.value.path == path
    assert words in caught.value.reason
    assert caught.value.source == "native"


def test_missing_required_fields_are_named() -> None:
    payload = dict(EXAMPLE)
    del payload["event_id"]
    with pytest.raises(InvalidEvent) as caught:
        normalise(payload, KEY)
    assert (caught.value.path, caught.value.reason) == ("event_id", "Field required")


def test_native_batches_keep_order_and_index_errors() -> None:
    batch = [{**EXAMPLE, "event_id": f"e-{index}"} for index in range(3)]
    assert [event.event_id for event in normalise(orjson.dumps(batch), KEY)] == [
        "e-0",
        "e-1",
        "e-2",
    ]
    batch[1]["attempt"] = -1
    with pytest.raises(InvalidEvent) as caught:
        normalise(orjson.dumps(batch), KEY)
    assert caught.value.path == "[1].attempt"

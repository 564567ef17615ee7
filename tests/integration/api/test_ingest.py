from __future__ import annotations

import json
import uuid
from pathlib import Path

import orjson
import pytest
from api_support import PSEUDONYM_KEY, ApiEnv, read_all
from fastapi.testclient import TestClient

from schemas.normalise import normalise
from schemas.pseudonym import Pseudonymiser
from schemas.topics import LMS_EVENTS

pytestmark = pytest.mark.integration

CALIPER = Path(__file__).parents[2] / "unit" / "schemas" / "fixtures" / "caliper" / "v1p2"
PSEUDONYMS = Pseudonymiser(PSEUDONYM_KEY.encode())


def test_a_caliper_envelope_becomes_one_record_per_event(client: TestClient, api_env: ApiEnv):
    data = [
        json.loads((CALIPER / name).read_text())
        for name in (
            "caliperEventAssessmentItemCompleted.json",
            "caliperEventNavigationNavigatedToWebPage.json",
            "caliperEventViewViewedDocument.json",
            "caliperEventMediaPausedVideo.json",
        )
    ]
    for event in data:
        event["id"] = f"urn:uuid:{uuid.uuid4()}"
    envelope = {
        "sensor": "https://example.edu/sensors/1",
        "sendTime": "2024-03-01T10:15:01.000Z",
        "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p2",
        "data": data,
    }
    response = client.post("/caliper", json=envelope, headers=api_env.auth("ingest"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == len(envelope["data"]) == len(body["event_ids"])
    wanted = {event["id"] for event in envelope["data"]}
    records = [
        m
        for m in read_all(api_env.bootstrap, api_env.topic(LMS_EVENTS.name))
        if orjson.loads(m.value()).get("data", [{}])[0].get("id") in wanted
    ]
    assert len(records) == len(envelope["data"])
    for record in records:
        value = orjson.loads(record.value())
        assert value["sensor"] == envelope["sensor"] and len(value["data"]) == 1
        (event,) = normalise(value, PSEUDONYMS)
        assert record.key() == event.learner_id.encode()

    # Caliper events tutorstream does not read are refused, naming the event.
    batch = json.loads((CALIPER / "caliperEnvelopeEventBatch.json").read_text())
    refused = client.post("/caliper", json=batch, headers=api_env.auth("ingest"))
    assert refused.status_code == 400
    assert refused.json()["path"] == "data[1].type"


def test_native_events_single_and_batch(client: TestClient, api_env: ApiEnv):
    events = [
        {
            "event_id": f"e-{uuid.uuid4().hex}",
            "learner_id": f"s-{index}",
            "class_id": "7b",
            "event_type": "answer_submit",
            "timestamp": "2024-03-01T10:15:00Z",
            "correct": index % 2 == 0,
            "response": "3/8",
        }
        for index in range(3)
    ]
    one = client.post("/events", json=events[0], headers=api_env.auth("ingest"))
    assert one.status_code == 200 and one.json()["event_ids"] == [events[0]["event_id"]]
    batch = client.post("/events", json=events[1:], headers=api_env.auth("ingest"))
    assert batch.status_code == 200
    assert batch.json()["event_ids"] == [e["event_id"] for e in events[1:]]
    ids = {e["event_id"] for e in events}
    records = [
        m
        for m in read_all(api_env.bootstrap, api_env.topic(LMS_EVENTS.name))
        if orjson.loads(m.value()).get("event_id") in ids
    ]
    assert len(records) == 3
    for record in records:
        value = orjson.loads(record.value())
        assert record.key() == PSEUDONYMS.native_learner(value["learner_id"]).encode()
    # Responses name no learner: only the event ids come back.
    assert "s-1" not in batch.text

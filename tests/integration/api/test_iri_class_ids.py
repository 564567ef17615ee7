"""Class ids that are IRIs (an LMS's course or section) in every tutor endpoint and the feed.

A class id goes into the path percent-encoded as one segment (``quote(class_id, safe="")``);
the API also takes its slashes as they are. Keys are bound to such classes as to any other.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from api_support import ApiEnv, InterventionMaker, read_all
from fastapi.testclient import TestClient
from test_feed import caught_up, sse

from schemas.records import LearnerPrompt
from schemas.topics import LEARNER_PROMPTS

pytestmark = pytest.mark.integration


def _iri_class() -> str:
    return f"https://lms.example.edu/course/{uuid.uuid4().hex[:6]}/section/2?term=2026#a"


def test_every_tutor_endpoint_takes_an_iri_class_id(
    client: TestClient, api_env: ApiEnv, intervention_maker: InterventionMaker
) -> None:
    class_id = _iri_class()
    path = f"/classes/{quote(class_id, safe='')}"
    token = api_env.key_for(["tutor"], [class_id])
    headers = {"Authorization": f"Bearer {token}"}
    learner = uuid.uuid4().hex * 2
    record = intervention_maker(class_id, learner_id=learner, publish=False)
    with api_env.connect() as conn:
        conn.execute(
            "INSERT INTO events (time, event_id, learner_id, class_id, item_id, event_type, "
            "correct, source) VALUES (%s, %s, %s, %s, 'frac-1', 'answer_submit', false, 'xapi')",
            (datetime(2026, 3, 1, 10, tzinfo=UTC), f"e-{uuid.uuid4().hex}", learner, class_id),
        )

    listed = client.get(f"{path}/interventions", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [i["intervention_id"] for i in listed.json()["items"]] == [record.intervention_id]
    assert listed.json()["items"][0]["class_id"] == class_id
    one = client.get(f"{path}/interventions/{record.intervention_id}", headers=headers)
    assert one.status_code == 200 and one.json()["class_id"] == class_id
    timeline = client.get(f"{path}/learners/{learner}/timeline", headers=headers)
    assert timeline.status_code == 200, timeline.text
    assert len(timeline.json()["events"]) == 1
    assert client.get(f"{path}/recommendations", headers=headers).status_code == 200

    approved = client.post(
        f"{path}/interventions/{record.intervention_id}/approve", json={}, headers=headers
    )
    assert approved.status_code == 200, approved.text
    prompts = [
        LearnerPrompt.model_validate_json(m.value())
        for m in read_all(api_env.bootstrap, api_env.topic(LEARNER_PROMPTS.name))
    ]
    assert [p.class_id for p in prompts if p.intervention_id == record.intervention_id] == [
        class_id
    ]
    actions = client.get(f"{path}/actions", headers=headers)
    assert [a["action"] for a in actions.json()["items"]] == ["approve"]

    # slashes may also go unencoded (ASGI servers decode %2F before routing anyway); a query
    # or fragment in an id must be encoded, or it is not part of the path
    plain = class_id.split("?")[0]
    plain_record = intervention_maker(plain, publish=False)
    both = {"Authorization": f"Bearer {api_env.key_for(['tutor'], [class_id, plain])}"}
    raw = client.get(f"/classes/{plain}/interventions", headers=both)
    assert raw.status_code == 200, raw.text
    assert [i["intervention_id"] for i in raw.json()["items"]] == [plain_record.intervention_id]

    # a key bound to a neighbouring class (a prefix of this one) sees nothing of it
    other = api_env.key_for(["tutor"], [class_id.rsplit("/", 2)[0]])
    refused = client.get(f"{path}/interventions", headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 403


def test_the_live_feed_of_an_iri_class(
    api_env: ApiEnv, live_url: str, intervention_maker: InterventionMaker
) -> None:
    class_id = _iri_class()
    token = api_env.key_for(["tutor"], [class_id])
    url = f"{live_url}/classes/{quote(class_id, safe='')}/feed"
    with sse(url, {"Authorization": f"Bearer {token}"}) as feed:
        caught_up(feed)
        intervention_maker(_iri_class())  # another class: never on this feed
        record = intervention_maker(class_id)
        event = feed.next("intervention")
        assert (event.data["intervention_id"], event.data["class_id"]) == (
            record.intervention_id,
            class_id,
        )
        assert feed.status == 200

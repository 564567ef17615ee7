from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from api_support import CLASS_A, ApiEnv, InterventionMaker, read_all, unique_class
from fastapi.testclient import TestClient

from schemas.records import BehaviouralState, LearnerPrompt
from schemas.topics import LEARNER_PROMPTS

pytestmark = pytest.mark.integration


def test_history_filters_and_pages_newest_first(
    client: TestClient, api_env: ApiEnv, intervention_maker: InterventionMaker
):
    class_id = unique_class()
    start = datetime(2024, 3, 1, 10, tzinfo=UTC)
    made = [
        intervention_maker(
            class_id,
            state=BehaviouralState.GAMING if index % 2 else BehaviouralState.ANCHORING,
            time_=start + timedelta(minutes=index),
            publish=False,
        )
        for index in range(7)
    ]
    intervention_maker(unique_class(), publish=False)  # another class: never listed
    headers = api_env.auth("admin")
    url = f"/classes/{class_id}/interventions"

    seen = []
    page = client.get(url, params={"limit": 3}, headers=headers).json()
    while True:
        seen.extend(item["intervention_id"] for item in page["items"])
        if page["next_cursor"] is None:
            break
        page = client.get(
            url, params={"limit": 3, "cursor": page["next_cursor"]}, headers=headers
        ).json()
    assert seen == [m.intervention_id for m in reversed(made)]

    gaming = client.get(url, params={"state": "gaming"}, headers=headers).json()["items"]
    assert {i["intervention_id"] for i in gaming} == {m.intervention_id for m in made[1::2]}
    window = client.get(
        url,
        params={
            "since": (start + timedelta(minutes=2)).isoformat(),
            "until": (start + timedelta(minutes=4)).isoformat(),
        },
        headers=headers,
    ).json()["items"]
    assert [i["intervention_id"] for i in window] == [
        made[3].intervention_id,
        made[2].intervention_id,
    ]
    item = gaming[0]
    assert item["learner_id"] and item["status"] == "pending_review"
    bad = client.get(url, params={"status": "done"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["path"] == "query.status"
    assert client.get(url, params={"cursor": "x"}, headers=headers).json()["path"] == (
        "query.cursor"
    )
    assert client.get(url, params={"limit": 0}, headers=headers).json()["path"] == "query.limit"


def test_approve_publishes_the_prompt_and_records_the_action_once(
    client: TestClient, api_env: ApiEnv, intervention_maker: InterventionMaker
):
    record = intervention_maker(CLASS_A, publish=False)
    base = f"/classes/{CLASS_A}/interventions/{record.intervention_id}"
    response = client.post(
        f"{base}/approve", json={"note": "fits what I saw"}, headers=api_env.auth("tutor")
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["intervention"]["status"] == "sent"
    assert result["intervention"]["acted_by"] == api_env.key_ids["tutor"]
    assert result["action"]["action"] == "approve"
    assert result["action"]["note"] == "fits what I saw"

    prompts = [
        LearnerPrompt.model_validate_json(m.value())
        for m in read_all(api_env.bootstrap, api_env.topic(LEARNER_PROMPTS.name))
    ]
    mine = [p for p in prompts if p.intervention_id == record.intervention_id]
    assert len(mine) == 1
    assert mine[0].prompt_id == result["prompt_id"]
    assert mine[0].learner_id == record.learner_id
    assert mine[0].approved_by == api_env.key_ids["tutor"]
    assert mine[0].text == record.prompt

    again = client.post(f"{base}/dismiss", headers=api_env.auth("tutor"))
    assert again.status_code == 409
    assert again.json()["path"] == "intervention_id"
    audit = client.get(f"{base}/actions", headers=api_env.auth("tutor")).json()
    assert [(a["action"], a["actor"]) for a in audit] == [("approve", api_env.key_ids["tutor"])]
    assert client.get(base, headers=api_env.auth("tutor")).json()["status"] == "sent"


@pytest.mark.parametrize(
    ("action", "status"), [("dismiss", "dismissed"), ("escalate", "escalated")]
)
def test_dismiss_and_escalate_publish_nothing(
    client: TestClient,
    api_env: ApiEnv,
    intervention_maker: InterventionMaker,
    action: str,
    status: str,
):
    record = intervention_maker(CLASS_A, publish=False)
    base = f"/classes/{CLASS_A}/interventions/{record.intervention_id}"
    response = client.post(f"{base}/{action}", headers=api_env.auth("tutor"))
    assert response.status_code == 200, response.text
    assert response.json()["intervention"]["status"] == status
    assert response.json()["prompt_id"] is None
    prompts = read_all(api_env.bootstrap, api_env.topic(LEARNER_PROMPTS.name), settle=0.5)
    assert record.intervention_id not in {
        orjson.loads(m.value())["intervention_id"] for m in prompts
    }
    audit = client.get(f"/classes/{CLASS_A}/actions", headers=api_env.auth("admin")).json()
    assert any(
        a["intervention_id"] == record.intervention_id and a["action"] == action
        for a in audit["items"]
    )


def test_an_intervention_the_policy_sent_cannot_be_acted_on(
    client: TestClient, api_env: ApiEnv, intervention_maker: InterventionMaker
):
    record = intervention_maker(CLASS_A, status="sent", publish=False)
    response = client.post(
        f"/classes/{CLASS_A}/interventions/{record.intervention_id}/approve",
        headers=api_env.auth("tutor"),
    )
    assert response.status_code == 409
    missing = client.post(
        f"/classes/{CLASS_A}/interventions/{uuid.uuid4()}/approve", headers=api_env.auth("tutor")
    )
    assert missing.status_code == 404


def test_two_tutors_approving_at_once_exactly_one_wins(
    live_url: str, api_env: ApiEnv, intervention_maker: InterventionMaker
):
    for _ in range(5):
        record = intervention_maker(CLASS_A, publish=False)
        url = f"{live_url}/classes/{CLASS_A}/interventions/{record.intervention_id}/approve"
        barrier = threading.Barrier(2)
        statuses: dict[str, int] = {}

        def approve(
            role: str,
            url: str = url,
            barrier: threading.Barrier = barrier,
            statuses: dict[str, int] = statuses,
        ) -> None:
            with httpx.Client(timeout=30) as http:
                barrier.wait()
                statuses[role] = http.post(url, headers=api_env.auth(role)).status_code

        threads = [threading.Thread(target=approve, args=(role,)) for role in ("tutor", "tutor2")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses.values()) == [200, 409], statuses
        winner = next(role for role, status in statuses.items() if status == 200)
        with api_env.connect() as conn:
            actions = conn.execute(
                "SELECT actor FROM intervention_actions WHERE intervention_id = %s",
                (record.intervention_id,),
            ).fetchall()
            acted_by = conn.execute(
                "SELECT acted_by FROM interventions WHERE intervention_id = %s",
                (record.intervention_id,),
            ).fetchone()
        assert actions == [(api_env.key_ids[winner],)]
        assert acted_by == (api_env.key_ids[winner],)
        prompts = read_all(api_env.bootstrap, api_env.topic(LEARNER_PROMPTS.name), settle=0.5)
        assert [orjson.loads(m.value())["intervention_id"] for m in prompts].count(
            record.intervention_id
        ) == 1


def test_timeline_and_recommendations(
    client: TestClient, api_env: ApiEnv, intervention_maker: InterventionMaker
):
    class_id = unique_class()
    learner = uuid.uuid4().hex * 2
    when = datetime(2024, 3, 1, 10, tzinfo=UTC)
    with api_env.connect() as conn:
        conn.execute(
            "INSERT INTO events (time, event_id, learner_id, class_id, item_id, event_type, "
            "correct, source) VALUES (%s, 'e1', %s, %s, 'frac-1', 'answer_submit', false, "
            "'native')",
            (when, learner, class_id),
        )
        conn.execute(
            "INSERT INTO predictions (time, event_id, learner_id, class_id, state, confidence, "
            "state_probs, model_version) VALUES (%s, 'e1', %s, %s, 'gaming', 0.8, "
            "'{0.1,0.8,0.1}', 'm@1')",
            (when, learner, class_id),
        )
        conn.execute(
            "INSERT INTO skill_mastery (time, event_id, skill_id, learner_id, class_id, mastery, "
            "model_version) VALUES (%s, 'e1', 'fractions', %s, %s, 0.4, 'm@1')",
            (when, learner, class_id),
        )
        conn.execute(
            "INSERT INTO current_recommendations (class_id, learner_id, time, event_id, item_id, "
            "p_success, reason) VALUES (%s, %s, %s, 'e1', 'frac-2', 0.7, 'next step')",
            (class_id, learner, when),
        )
    intervention_maker(class_id, learner_id=learner, publish=False)
    headers = api_env.auth("admin")
    timeline = client.get(f"/classes/{class_id}/learners/{learner}/timeline", headers=headers)
    assert timeline.status_code == 200, timeline.text
    body = timeline.json()
    assert [e["event_id"] for e in body["events"]] == ["e1"]
    assert body["predictions"][0]["state"] == "gaming"
    assert body["mastery"][0]["skill_id"] == "fractions"
    assert len(body["interventions"]) == 1
    other = client.get(f"/classes/{unique_class()}/learners/{learner}/timeline", headers=headers)
    assert other.status_code == 404
    recs = client.get(f"/classes/{class_id}/recommendations", headers=headers).json()
    assert [(r["learner_id"], r["item_id"]) for r in recs["items"]] == [(learner, "frac-2")]

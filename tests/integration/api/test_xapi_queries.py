"""Statement queries: references to matching statements, formats, context activity arrays."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from api_support import XAPI, ApiEnv
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[2] / "unit" / "schemas" / "fixtures" / "xapi"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def statement(**extra: Any) -> dict[str, Any]:
    base = json.loads((FIXTURES / "appendix_a_simple_statement.json").read_text())
    return {**base, "id": str(uuid.uuid4()), **extra}


def post(client: TestClient, env: ApiEnv, body: Any, **headers: str):
    response = client.post(
        "/xapi/statements",
        content=orjson.dumps(body),
        headers={**XAPI, **env.auth("ingest"), "Content-Type": "application/json", **headers},
    )
    assert response.status_code == 200, response.text
    return response


def get(client: TestClient, env: ApiEnv, headers: dict[str, str] | None = None, **params: str):
    return client.get(
        "/xapi/statements", params=params, headers={**XAPI, **env.auth("ingest"), **(headers or {})}
    )


def test_statements_targeting_a_match_are_returned_and_voided_ones_are_not(
    client: TestClient, api_env: ApiEnv
):
    verb = f"http://example.com/verbs/{uuid.uuid4().hex}"
    target = statement(verb={"id": verb})
    post(client, api_env, target)
    voiding = statement(
        verb={"id": VOIDED}, object={"objectType": "StatementRef", "id": target["id"]}
    )
    post(client, api_env, voiding)
    referring = statement(
        verb={"id": "http://example.com/verbs/commented"},
        object={"objectType": "StatementRef", "id": target["id"]},
    )
    post(client, api_env, referring)
    unrelated = statement(verb={"id": "http://example.com/verbs/commented"})
    post(client, api_env, unrelated)

    found = get(client, api_env, verb=verb, ascending="true").json()["statements"]
    assert [s["id"] for s in found] == [voiding["id"], referring["id"]]
    # since/until bound the returned statements, not the ones they target
    stored_at = get(client, api_env, statementId=referring["id"]).json()["stored"]
    later = get(client, api_env, verb=verb, since=stored_at).json()["statements"]
    assert later == []
    upto = get(client, api_env, verb=verb, until=stored_at, ascending="true").json()
    assert [s["id"] for s in upto["statements"]] == [voiding["id"], referring["id"]]


def test_formats_and_context_activities(client: TestClient, api_env: ApiEnv):
    made = statement(
        verb={
            "id": "http://example.com/verbs/answered",
            "display": {"en-US": "answered", "en-GB": "answered (GB)", "fr": "a répondu"},
        },
        context={
            "contextActivities": {
                "category": {
                    "id": "http://example.com/categories/quiz",
                    "definition": {
                        "name": {"en-US": "quiz", "en-GB": "quiz (GB)"},
                        "description": {"en-US": "a quiz", "en-GB": "a quiz (GB)"},
                    },
                },
                "parent": [{"objectType": "Activity", "id": "http://example.com/course"}],
            }
        },
    )
    post(client, api_env, made)
    exact = get(client, api_env, statementId=made["id"]).json()
    # a single context activity comes back as an array of one
    activities = exact["context"]["contextActivities"]
    assert activities["category"] == [made["context"]["contextActivities"]["category"]]
    assert activities["parent"] == made["context"]["contextActivities"]["parent"]
    assert exact["verb"] == made["verb"]

    canonical = get(
        client, api_env, {"Accept-Language": "en-GB"}, statementId=made["id"], format="canonical"
    ).json()
    assert canonical["verb"]["display"] == {"en-GB": "answered (GB)"}
    category = canonical["context"]["contextActivities"]["category"][0]["definition"]
    assert category == {"name": {"en-GB": "quiz (GB)"}, "description": {"en-GB": "a quiz (GB)"}}

    ids = get(client, api_env, statementId=made["id"], format="ids").json()
    assert ids["verb"] == {"id": made["verb"]["id"]}
    assert ids["context"]["contextActivities"]["parent"] == [{"id": "http://example.com/course"}]
    assert ids["object"] == {"id": made["object"]["id"]}
    assert set(ids["actor"]) == {"objectType", "account"}


def test_what_the_client_sent_is_kept_and_what_the_lrs_sets_is_set(
    client: TestClient, api_env: ApiEnv
):
    made = statement(
        version="1.0.1",
        stored="2001-01-01T00:00:00Z",
        verb={"id": "http://example.com/verbs/answered", "display": {"ja-JP": "答えた ✓"}},
        result={"score": {"raw": 0.1234567, "min": 0, "max": 1}, "extensions": {}},
        timestamp="2024-03-01T10:15:00.123456Z",
    )
    post(client, api_env, made)
    got = get(client, api_env, statementId=made["id"])
    assert got.headers["content-type"] == "application/json"
    stored = got.json()
    assert stored["version"] == "1.0.1"  # kept as accepted
    assert stored["stored"] != made["stored"]  # set by the LRS
    assert stored["verb"]["display"] == {"ja-JP": "答えた ✓"}  # UTF-8 both ways
    assert stored["result"] == made["result"]  # numbers keep their precision
    assert stored["timestamp"] == made["timestamp"]  # sub-millisecond precision kept
    # a query matching nothing is a 200 with an empty list
    empty = get(client, api_env, verb=f"http://example.com/verbs/{uuid.uuid4().hex}").json()
    assert empty == {"statements": [], "more": ""}

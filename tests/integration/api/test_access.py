"""Who may call what: every role on every endpoint, for its own class and for another."""

from __future__ import annotations

import gzip
import uuid
from typing import Any

import httpx
import orjson
import pytest
from api_support import CLASS_A, CLASS_B, XAPI, ApiEnv, serve
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

STATEMENT = {
    "actor": {"mbox": "mailto:matrix@example.edu"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
    "object": {"id": "http://example.com/items/1"},
    "timestamp": "2024-03-01T10:15:00Z",
}
NATIVE = {
    "event_id": "e-matrix",
    "learner_id": "s-1",
    "event_type": "answer_submit",
    "timestamp": "2024-03-01T10:15:00Z",
    "correct": True,
}
CALIPER = {
    "sensor": "https://example.edu/sensors/1",
    "sendTime": "2024-03-01T10:15:01.000Z",
    "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p2",
    "data": [
        {
            "@context": "http://purl.imsglobal.org/ctx/caliper/v1p2",
            "id": "urn:uuid:3a648e68-f00d-4c08-aa59-8738e1884f2c",
            "type": "NavigationEvent",
            "actor": {"id": "https://example.edu/users/554433", "type": "Person"},
            "action": "NavigatedTo",
            "object": {"id": "https://example.edu/pages/1", "type": "WebPage"},
            "eventTime": "2024-03-01T10:15:00.000Z",
        }
    ],
}

INGEST = "ingest"
READ = "read statements"
CLASS = "class"
PUBLIC = "public"


def endpoints(class_id: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, method, path, request options) of every endpoint."""
    some_id = str(uuid.uuid4())
    base = f"/classes/{class_id}"
    return [
        (INGEST, "POST", "/xapi/statements", {"json": STATEMENT, "headers": XAPI}),
        (
            INGEST,
            "PUT",
            f"/xapi/statements?statementId={uuid.uuid4()}",
            {"json": STATEMENT, "headers": XAPI},
        ),
        (INGEST, "POST", "/caliper", {"json": CALIPER}),
        (INGEST, "POST", "/events", {"json": NATIVE}),
        (READ, "GET", f"/xapi/statements?statementId={some_id}", {"headers": XAPI}),
        (READ, "GET", "/xapi/statements?limit=1", {"headers": XAPI}),
        (CLASS, "GET", f"{base}/interventions", {}),
        (CLASS, "GET", f"{base}/interventions/{some_id}", {}),
        (CLASS, "POST", f"{base}/interventions/{some_id}/approve", {}),
        (CLASS, "POST", f"{base}/interventions/{some_id}/dismiss", {"json": {"note": "n"}}),
        (CLASS, "POST", f"{base}/interventions/{some_id}/escalate", {}),
        (CLASS, "GET", f"{base}/interventions/{some_id}/actions", {}),
        (CLASS, "GET", f"{base}/actions", {}),
        (CLASS, "GET", f"{base}/learners/{'a' * 64}/timeline", {}),
        (CLASS, "GET", f"{base}/recommendations", {}),
        (CLASS, "STREAM", f"{base}/feed", {}),
        (PUBLIC, "GET", "/healthz", {}),
        (PUBLIC, "GET", "/readyz", {}),
        (PUBLIC, "GET", "/metrics", {}),
        (PUBLIC, "GET", "/xapi/about", {}),
    ]


def allowed(role: str, kind: str, own_class: bool) -> bool | None:
    """True: served; False: refused with 403; None: refused with 401."""
    if kind == PUBLIC:
        return True
    if role in ("anonymous", "revoked"):
        return None
    if role == "admin":
        return True
    if kind in (INGEST, READ):
        return role == "ingest"
    return role == "tutor" and own_class


def call(http: httpx.Client, method: str, path: str, options: dict[str, Any]) -> int:
    if method == "STREAM":
        with http.stream("GET", path, headers=options.get("headers")) as response:
            return response.status_code
    return http.request(method, path, **options).status_code


def test_every_role_on_every_endpoint_for_own_and_other_class(api_env: ApiEnv, live_url: str):
    failures = []
    seen: list[str] = []
    checked = 0
    with httpx.Client(base_url=live_url, timeout=30) as http:
        for role in ("anonymous", "revoked", "ingest", "tutor", "admin"):
            auth = {} if role == "anonymous" else api_env.auth(role)
            for class_id, own in ((CLASS_A, True), (CLASS_B, False)):
                for kind, method, path, options in endpoints(class_id):
                    if kind != CLASS and not own:
                        continue  # the same endpoint once is enough
                    request = {**options, "headers": {**options.get("headers", {}), **auth}}
                    status = call(http, method, path, request)
                    expected = allowed(role, kind, own)
                    checked += 1
                    ok = (
                        status == 401
                        if expected is None
                        else status == 403
                        if expected is False
                        else status not in (401, 403) and status < 500
                    )
                    seen.append(f"{role} {method} {path} -> {status}")
                    if not ok:
                        failures.append(f"{role} {method} {path}: {status} (expected {expected})")
    assert checked == 5 * (len(endpoints(CLASS_A)) + 10)
    assert not failures, "\n".join(failures)


def test_the_websocket_feed_checks_the_class(client: TestClient, api_env: ApiEnv):
    for role, class_id, code in (("tutor", CLASS_B, 1008), ("ingest", CLASS_A, 1008)):
        with (
            pytest.raises(Exception) as refused,
            client.websocket_connect(
                f"/classes/{class_id}/feed/ws", headers=api_env.auth(role)
            ) as ws,
        ):
            ws.receive_json()
        assert getattr(refused.value, "code", None) == code, role
    with client.websocket_connect(
        f"/classes/{CLASS_A}/feed/ws", headers=api_env.auth("tutor")
    ) as ws:
        assert ws.receive_json()["type"] == "heartbeat"


def test_authentication_errors_are_401_with_a_challenge(client: TestClient, api_env: ApiEnv):
    token = api_env.tokens["admin"]
    key_id = api_env.key_ids["admin"]
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {token[:-1]}x"},  # wrong secret
        {"Authorization": f"Bearer tsk_{'0' * 12}_{token[-43:]}"},  # unknown key
        {"Authorization": f"Bearer {api_env.tokens['revoked']}"},
        {"Authorization": "Basic !!!"},
    ):
        response = client.get(f"/classes/{CLASS_A}/interventions", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["status"] == 401
    basic = httpx.BasicAuth(key_id, token[-43:])
    ok = client.get(f"/classes/{CLASS_A}/interventions", auth=basic)
    assert ok.status_code == 200


def test_error_statuses(client: TestClient, api_env: ApiEnv):
    headers = {**XAPI, **api_env.auth("ingest")}
    # 404: no such route, no such statement
    assert client.get("/nowhere", headers=headers).status_code == 404
    missing = client.get(
        "/xapi/statements", params={"statementId": str(uuid.uuid4())}, headers=headers
    )
    assert missing.status_code == 404 and missing.json()["error"] == "Not Found"
    # 415: not JSON; an encoding other than gzip
    text = client.post(
        "/events", content=b"hello", headers={**headers, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    brotli = client.post(
        "/events",
        content=b"\x00",
        headers={**headers, "Content-Type": "application/json", "Content-Encoding": "br"},
    )
    assert brotli.status_code == 415
    # 400, never 422: bad query parameters and bodies name the field
    limit = client.get(
        f"/classes/{CLASS_A}/interventions", params={"limit": "many"}, headers=api_env.auth("admin")
    )
    assert limit.status_code == 400 and limit.json()["path"] == "query.limit"
    note = client.post(
        f"/classes/{CLASS_A}/interventions/{uuid.uuid4()}/approve",
        json={"note": "x" * 3000},
        headers=api_env.auth("admin"),
    )
    assert note.status_code == 400 and note.json()["path"] == "body.note"
    broken = client.post(
        "/events", content=b"{", headers={**headers, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    native = client.post("/events", json={**NATIVE, "correct": "yes"}, headers=headers)
    assert native.status_code == 400 and native.json()["path"] == "correct"
    native_batch = client.post(
        "/events", json=[NATIVE, {**NATIVE, "learner_id": 7}], headers=headers
    )
    assert native_batch.status_code == 400 and native_batch.json()["path"] == "[1].learner_id"
    caliper = client.post(
        "/caliper",
        json={**CALIPER, "data": [{**CALIPER["data"][0], "action": "Jumped"}]},
        headers=headers,
    )
    assert caliper.status_code == 400 and caliper.json()["path"].startswith("data[0]")


def test_body_limits_and_rate_limits(api_env: ApiEnv):
    settings = api_env.settings(max_body_bytes=2048, rate_per_s=2.0, rate_burst=3)
    headers = {**XAPI, **api_env.auth("ingest"), "Content-Type": "application/json"}
    with serve(settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        big = http.post("/events", content=b" " * 4096, headers=headers)
        assert big.status_code == 413
        bomb = gzip.compress(orjson.dumps([NATIVE] * 500))
        assert len(bomb) < 2048
        inflated = http.post(
            "/events", content=bomb, headers={**headers, "Content-Encoding": "gzip"}
        )
        assert inflated.status_code == 413
        statuses = [
            http.get("/xapi/statements", params={"limit": "1"}, headers=headers) for _ in range(6)
        ]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited, [r.status_code for r in statuses]
        assert int(limited[0].headers["retry-after"]) >= 1
        assert limited[0].json()["status"] == 429

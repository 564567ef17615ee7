from __future__ import annotations

import copy
import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from api_support import PSEUDONYM_KEY, XAPI, ApiEnv, read_all
from fastapi.testclient import TestClient

from schemas.pseudonym import Pseudonymiser
from schemas.topics import LMS_EVENTS

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[2] / "unit" / "schemas" / "fixtures" / "xapi"
STATEMENT_FILES = [
    "appendix_a_simple_statement.json",
    "appendix_a_long_example.json",
    "appendix_a_attempted_duration_in_seconds.json",
    "appendix_d_statement.json",
    "section_2_4_4_3_substatement_planned.json",
]
PSEUDONYMS = Pseudonymiser(PSEUDONYM_KEY.encode())


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def objects_examples() -> list[dict[str, Any]]:
    """Statements whose objects are Appendix B's and whose activities are Appendix C's."""
    objects = fixture("appendix_b_objects.json")
    base = {
        "actor": {"mbox": "mailto:learner@example.edu", "name": "A Learner"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced", "display": {"en": "saw"}},
        "timestamp": "2024-03-01T10:15:00Z",
    }
    made = [{**base, "id": str(uuid.uuid4()), "object": value} for value in objects.values()]
    for definition in fixture("appendix_c_interaction_definitions.json").values():
        made.append(
            {
                **base,
                "id": str(uuid.uuid4()),
                "object": {"id": f"http://example.com/q/{uuid.uuid4()}", "definition": definition},
            }
        )
    return made


def identifiers(node: Any) -> set[str]:
    """Every raw identifier or name an xAPI statement carries for people."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key in ("mbox", "mbox_sha1sum", "openid", "name"):
            if isinstance(node.get(key), str) and (
                "mbox" in node
                or "account" in node
                or "openid" in node
                or "member" in node
                or "mbox_sha1sum" in node
            ):
                found.add(node[key])
        account = node.get("account")
        if isinstance(account, dict) and isinstance(account.get("name"), str):
            found.add(account["name"])
        for value in node.values():
            found |= identifiers(value)
    elif isinstance(node, list):
        for value in node:
            found |= identifiers(value)
    return found


def post(client: TestClient, env: ApiEnv, body: Any, role: str = "ingest", **headers: str):
    return client.post(
        "/xapi/statements",
        content=orjson.dumps(body),
        headers={**XAPI, **env.auth(role), "Content-Type": "application/json", **headers},
    )


def get(client: TestClient, env: ApiEnv, role: str = "ingest", **params: str):
    return client.get("/xapi/statements", params=params, headers={**XAPI, **env.auth(role)})


def test_spec_examples_go_in_and_come_out_pseudonymised(client: TestClient, api_env: ApiEnv):
    statements = [fixture(name) for name in STATEMENT_FILES] + objects_examples()
    for statement in statements:
        statement["id"] = str(uuid.uuid4())
    response = post(client, api_env, statements)
    assert response.status_code == 200, response.text
    assert response.json() == [s["id"] for s in statements]
    assert response.headers["x-experience-api-version"] == "1.0.3"
    assert "x-experience-api-consistent-through" in response.headers

    for sent in statements:
        got = get(client, api_env, statementId=sent["id"])
        assert got.status_code == 200, got.text
        assert got.headers["x-experience-api-version"] == "1.0.3"
        assert got.headers["etag"].startswith('"')
        assert "last-modified" in got.headers
        stored = got.json()
        assert stored["id"] == sent["id"]
        assert stored["verb"] == sent["verb"]
        assert stored["version"] == "1.0.0"
        assert stored["authority"]["account"]["name"] == api_env.key_ids["ingest"]
        for key in ("result", "attachments"):
            assert stored.get(key) == sent.get(key)
        if sent["object"].get("objectType", "Activity") == "Activity":
            assert stored["object"] == sent["object"]
        # Every person is reduced to a pseudonym account: no name, email or account left.
        assert not identifiers(sent) & identifiers(
            {k: v for k, v in stored.items() if k != "authority"}
        ) - {stored["actor"].get("account", {}).get("name")}
        raw_text = json.dumps(stored)
        for secret in identifiers(sent):
            assert secret not in raw_text, secret
        actor = sent["actor"]
        if "mbox" in actor:
            assert stored["actor"]["account"] == {
                "homePage": "https://tutorstream.invalid/learners",
                "name": PSEUDONYMS.mbox(actor["mbox"]),
            }

    # On the topic: the statements as sent (with their ids), keyed by the learner's pseudonym.
    records = {
        orjson.loads(m.value())["id"]: m
        for m in read_all(api_env.bootstrap, api_env.topic(LMS_EVENTS.name))
    }
    for sent in statements:
        record = records[sent["id"]]
        on_topic = orjson.loads(record.value())
        # the LRS gives a statement without a timestamp its stored time (Data 2.4.7), and the
        # record on the topic carries it too: the worker orders a learner's events by it
        assert on_topic == {"timestamp": on_topic.get("timestamp"), **sent}
        assert "timestamp" in on_topic
        actor = sent["actor"]
        if "mbox" in actor:
            assert record.key() == PSEUDONYMS.mbox(actor["mbox"]).encode()

    # Nothing that names a person reached the database.
    with api_env.connect() as conn:
        stored_text = " ".join(
            row[0] for row in conn.execute("SELECT payload::text FROM xapi_statements")
        )
    for statement in statements:
        for secret in identifiers(statement):
            assert secret not in stored_text, secret


def test_ids_are_assigned_when_absent_each_post_a_new_statement(
    client: TestClient, api_env: ApiEnv
):
    statement = fixture("appendix_a_simple_statement.json")
    del statement["id"]
    statement["object"]["id"] = f"http://example.com/a/{uuid.uuid4()}"
    first = post(client, api_env, statement)
    second = post(client, api_env, [statement, statement])
    assert first.status_code == second.status_code == 200, second.text
    (assigned,) = first.json()
    assert uuid.UUID(assigned)
    # the same content twice is two statements: a learner can do the same thing twice
    ids = second.json()
    assert len({assigned, *ids}) == 3 and all(uuid.UUID(i) for i in ids)
    for statement_id in (assigned, *ids):
        stored = get(client, api_env, statementId=statement_id).json()
        assert stored["object"] == statement["object"] and stored["id"] == statement_id
    # the timestamp, when absent, is the stored time
    del statement["timestamp"]
    (untimed,) = post(client, api_env, statement).json()
    stored = get(client, api_env, statementId=untimed).json()
    assert stored["timestamp"] == stored["stored"]


def test_put_stores_once_and_refuses_a_different_statement_under_the_same_id(
    client: TestClient, api_env: ApiEnv
):
    statement = fixture("appendix_a_simple_statement.json")
    statement_id = str(uuid.uuid4())
    statement.pop("id")
    headers = {**XAPI, **api_env.auth("ingest"), "Content-Type": "application/json"}
    url = f"/xapi/statements?statementId={statement_id}"
    first = client.put(url, content=orjson.dumps(statement), headers=headers)
    assert first.status_code == 204, first.text
    assert first.headers["x-experience-api-version"] == "1.0.3"
    again = client.put(url, content=orjson.dumps(statement), headers=headers)
    assert again.status_code == 204
    # the same statement with its timestamp in another zone and members reordered is the same
    shifted = {**statement, "timestamp": "2015-11-18T13:17:00+01:00"}
    assert client.put(url, content=orjson.dumps(shifted), headers=headers).status_code == 204

    changed = copy.deepcopy(statement)
    changed["verb"]["id"] = "http://adlnet.gov/expapi/verbs/failed"
    conflict = client.put(url, content=orjson.dumps(changed), headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["path"] == "id"
    assert post(client, api_env, {**changed, "id": statement_id}).status_code == 409
    assert get(client, api_env, statementId=statement_id).json()["verb"] == statement["verb"]

    mismatch = client.put(
        f"/xapi/statements?statementId={uuid.uuid4()}",
        content=orjson.dumps({**statement, "id": str(uuid.uuid4())}),
        headers=headers,
    )
    assert mismatch.status_code == 400
    assert mismatch.json()["path"] == "id"
    assert client.put("/xapi/statements", content=b"{}", headers=headers).json()["path"] == (
        "query.statementId"
    )


def test_a_batch_is_refused_whole(client: TestClient, api_env: ApiEnv):
    good = {**fixture("appendix_a_simple_statement.json"), "id": str(uuid.uuid4())}
    bad = {**fixture("appendix_a_simple_statement.json"), "id": str(uuid.uuid4())}
    bad["actor"] = {"mbox": "ada.lovelace@school.example"}
    response = post(client, api_env, [good, bad])
    assert response.status_code == 400
    body = response.json()
    assert body["path"] == "[1].actor.mbox"
    assert "mailto" in body["reason"]
    assert "ada.lovelace" not in response.text
    assert get(client, api_env, statementId=good["id"]).status_code == 404

    twice = post(client, api_env, [good, good])
    assert twice.status_code == 400
    assert twice.json()["path"] == "[1].id"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda s: s.update(id="not-a-uuid"), "id"),
        (lambda s: s["verb"].update(id="attempted"), "verb.id"),
        (lambda s: s["verb"].update(display={"not a tag!": "x"}), 'verb.display["not a tag!"]'),
        (lambda s: s.update(timestamp="2024-13-45T99:00:00Z"), "timestamp"),
        (lambda s: s.update(result={"duration": "1 hour"}), "result.duration"),
        (lambda s: s.update(result={"score": {"scaled": 1.5}}), "result.score.scaled"),
        (lambda s: s.update(result={"score": {"raw": 5, "min": 6}}), "result.score.raw"),
        (lambda s: s.update(context={"registration": "nope"}), "context.registration"),
        (lambda s: s.update(version="2.0.0"), "version"),
        (lambda s: s["actor"].update(openid="x"), "actor.openid"),
        (lambda s: s["actor"].update(openid="http://id.example/x"), "actor"),
        (lambda s: s.update(Verb=s["verb"]), "Verb"),
        (lambda s: s.update(result={"success": "true"}), "result.success"),
        (lambda s: s.update(context={"revision": "1", "platform": None}), "context.platform"),
    ],
)
def test_invalid_statements_get_400_naming_the_field(
    client: TestClient, api_env: ApiEnv, change: Any, path: str
):
    statement = fixture("appendix_a_simple_statement.json")
    statement["id"] = str(uuid.uuid4())
    change(statement)
    response = post(client, api_env, statement)
    assert response.status_code == 400, response.text
    assert response.json()["path"] == path
    assert response.json()["reason"]


def test_the_version_header_is_required_and_echoed(client: TestClient, api_env: ApiEnv):
    statement = {**fixture("appendix_a_simple_statement.json"), "id": str(uuid.uuid4())}
    body = orjson.dumps(statement)
    headers = {**api_env.auth("ingest"), "Content-Type": "application/json"}
    missing = client.post("/xapi/statements", content=body, headers=headers)
    assert missing.status_code == 400
    assert missing.json()["path"] == "header.X-Experience-API-Version"
    assert missing.headers["x-experience-api-version"] == "1.0.3"
    for version, status in (("0.95", 400), ("1.1.0", 400), ("1.0", 200), ("1.0.1", 200)):
        response = client.post(
            "/xapi/statements",
            content=body,
            headers={**headers, "X-Experience-API-Version": version},
        )
        assert response.status_code == status, version
    about = client.get("/xapi/about")
    assert about.status_code == 200
    assert about.json() == {"version": ["1.0.3"]}
    assert about.headers["x-experience-api-version"] == "1.0.3"


def test_voiding(client: TestClient, api_env: ApiEnv):
    target = {**fixture("appendix_a_simple_statement.json"), "id": str(uuid.uuid4())}
    assert post(client, api_env, target).status_code == 200
    voiding = {
        "id": str(uuid.uuid4()),
        "actor": {"mbox": "mailto:admin@example.edu"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": target["id"].upper()},
    }
    assert post(client, api_env, voiding).status_code == 200
    assert get(client, api_env, statementId=target["id"]).status_code == 404
    voided = get(client, api_env, voidedStatementId=target["id"])
    assert voided.status_code == 200
    assert voided.json()["id"] == target["id"]
    # a voiding statement cannot itself be voided
    again = {
        **voiding,
        "id": str(uuid.uuid4()),
        "object": {"objectType": "StatementRef", "id": voiding["id"]},
    }
    assert post(client, api_env, again).status_code == 200
    assert get(client, api_env, statementId=voiding["id"]).status_code == 200
    assert get(client, api_env, voidedStatementId=voiding["id"]).status_code == 404
    # voiding a statement that arrives later voids it on arrival
    later_id = str(uuid.uuid4())
    early = {
        **voiding,
        "id": str(uuid.uuid4()),
        "object": {"objectType": "StatementRef", "id": later_id},
    }
    assert post(client, api_env, early).status_code == 200
    later = {**fixture("appendix_a_simple_statement.json"), "id": later_id}
    assert post(client, api_env, later).status_code == 200
    assert get(client, api_env, statementId=later_id).status_code == 404
    assert get(client, api_env, voidedStatementId=later_id).status_code == 200
    # a voiding statement's object must be a StatementRef
    wrong = {**voiding, "id": str(uuid.uuid4()), "object": {"id": "http://example.com/a"}}
    assert post(client, api_env, wrong).json()["path"] == "object"


def test_get_parameters_follow_the_statement_resource_rules(client: TestClient, api_env: ApiEnv):
    statement_id = str(uuid.uuid4())
    assert (
        post(
            client, api_env, {**fixture("appendix_a_simple_statement.json"), "id": statement_id}
        ).status_code
        == 200
    )
    both = get(client, api_env, statementId=statement_id, voidedStatementId=statement_id)
    assert both.status_code == 400
    extra = get(client, api_env, statementId=statement_id, verb="http://example.com/v")
    assert extra.status_code == 400 and extra.json()["path"] == "query.verb"
    unknown = get(client, api_env, statementid=statement_id)
    assert unknown.status_code == 400 and unknown.json()["path"] == "query.statementid"
    assert get(client, api_env, statementId="nope").json()["path"] == "query.statementId"
    assert get(client, api_env, statementId=str(uuid.uuid4())).status_code == 404

    ids = get(client, api_env, statementId=statement_id, format="ids").json()
    assert ids["verb"] == {"id": "http://example.com/xapi/verbs#sent-a-statement"}
    assert ids["object"] == {"id": "http://example.com/xapi/activity/simplestatement"}

    multipart = get(client, api_env, statementId=statement_id, attachments="true")
    assert multipart.headers["content-type"].startswith("multipart/mixed; boundary=")
    assert b'"id":"' + statement_id.encode() in multipart.content

    head = client.head(
        "/xapi/statements",
        params={"statementId": statement_id},
        headers={**XAPI, **api_env.auth("ingest")},
    )
    assert head.status_code == 200


def test_queries_filter_and_page(client: TestClient, api_env: ApiEnv):
    verb = f"http://example.com/verbs/{uuid.uuid4().hex}"
    learner = f"mailto:{uuid.uuid4().hex}@example.edu"
    statements = [
        {
            "id": str(uuid.uuid4()),
            "actor": {"mbox": learner if index % 2 == 0 else "mailto:other@example.edu"},
            "verb": {"id": verb},
            "object": {"id": f"http://example.com/items/{index}"},
            "timestamp": "2024-03-01T10:15:00Z",
        }
        for index in range(5)
    ]
    assert post(client, api_env, statements).status_code == 200
    everything = get(client, api_env, verb=verb, ascending="true").json()
    assert [s["id"] for s in everything["statements"]] == sorted(
        (s["id"] for s in statements), key=lambda i: (0, i)
    ) or len(everything["statements"]) == 5
    assert everything["more"] == ""
    mine = get(client, api_env, verb=verb, agent=json.dumps({"mbox": learner})).json()
    assert {s["id"] for s in mine["statements"]} == {statements[i]["id"] for i in (0, 2, 4)}

    seen: list[str] = []
    page = get(client, api_env, verb=verb, limit="2").json()
    while True:
        assert len(page["statements"]) <= 2
        seen.extend(s["id"] for s in page["statements"])
        if not page["more"]:
            break
        page = client.get(page["more"], headers={**XAPI, **api_env.auth("ingest")}).json()
    assert sorted(seen) == sorted(s["id"] for s in statements)
    activity = get(client, api_env, activity="http://example.com/items/3", verb=verb).json()
    assert [s["id"] for s in activity["statements"]] == [statements[3]["id"]]
    assert get(client, api_env, agent="{").json()["path"] == "query.agent"
    assert get(client, api_env, limit="-1").json()["path"] == "query.limit"


def test_gzip_bodies_are_read(client: TestClient, api_env: ApiEnv):
    statement = {**fixture("appendix_a_simple_statement.json"), "id": str(uuid.uuid4())}
    response = client.post(
        "/xapi/statements",
        content=gzip.compress(orjson.dumps(statement)),
        headers={
            **XAPI,
            **api_env.auth("ingest"),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == [statement["id"]]


def test_a_real_server_sends_one_date_header(live_url: str, api_env: ApiEnv):
    statement = {**fixture("appendix_a_simple_statement.json"), "id": str(uuid.uuid4())}
    headers = {**XAPI, **api_env.auth("ingest")}
    with httpx.Client(base_url=live_url, timeout=30) as http:
        assert http.post("/xapi/statements", json=statement, headers=headers).status_code == 200
        response = http.get(
            "/xapi/statements", params={"statementId": statement["id"]}, headers=headers
        )
    assert response.status_code == 200
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("x-experience-api-version")) == 1
    assert response.headers["x-experience-api-consistent-through"].endswith("Z")


def test_attachments_in_json_need_a_file_url(client: TestClient, api_env: ApiEnv):
    signed = fixture("appendix_d_signed_statement.json")
    signed["id"] = str(uuid.uuid4())
    refused = post(client, api_env, signed)
    assert refused.status_code == 400
    assert refused.json()["path"] == "attachments[0].fileUrl"
    assert "x-experience-api-consistent-through" in refused.headers
    signed["attachments"][0]["fileUrl"] = "https://files.example/signature.jws"
    accepted = post(client, api_env, signed)
    assert accepted.status_code == 200, accepted.text
    stored = get(client, api_env, statementId=signed["id"]).json()
    assert stored["attachments"] == signed["attachments"]

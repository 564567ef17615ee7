"""Statements with attachment data (multipart/mixed), signed statements, the alternate syntax."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from api_support import XAPI, ApiEnv
from fastapi.testclient import TestClient
from psycopg import sql

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[2] / "unit" / "schemas" / "fixtures" / "xapi"
SIGNATURE = "http://adlnet.gov/expapi/attachments/signature"


def statement(**extra: Any) -> dict[str, Any]:
    base = json.loads((FIXTURES / "appendix_a_simple_statement.json").read_text())
    return {**base, "id": str(uuid.uuid4()), **extra}


def attachment(data: bytes, usage: str = "http://example.com/usage/essay", **extra: Any):
    return {
        "usageType": usage,
        "display": {"en-US": "An attachment"},
        "contentType": "text/plain",
        "length": len(data),
        "sha2": hashlib.sha256(data).hexdigest(),
        **extra,
    }


def part(data: bytes, sha2: str | None = None, **headers: str) -> tuple[dict[str, str], bytes]:
    made = {
        "Content-Type": "text/plain",
        "Content-Transfer-Encoding": "binary",
        "X-Experience-API-Hash": sha2 or hashlib.sha256(data).hexdigest(),
    }
    for name, value in headers.items():
        key = name.replace("_", "-")
        if value == "":
            made.pop(key, None)
        else:
            made[key] = value
    return made, data


def multipart(
    first: Any, *parts: tuple[dict[str, str], bytes], first_type: str = "application/json"
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks = [
        f"--{boundary}\r\nContent-Type: {first_type}\r\n\r\n".encode(),
        first if isinstance(first, bytes) else orjson.dumps(first),
    ]
    for headers, data in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        chunks += [f"\r\n--{boundary}\r\n{head}\r\n".encode(), data]
    chunks.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/mixed; boundary="{boundary}"'


def send(
    client: TestClient,
    env: ApiEnv,
    body: bytes,
    content_type: str,
    method: str = "POST",
    **params: str,
):
    return client.request(
        method,
        "/xapi/statements",
        content=body,
        params=params,
        headers={**XAPI, **env.auth("ingest"), "Content-Type": content_type},
    )


def get(client: TestClient, env: ApiEnv, **params: str):
    return client.get("/xapi/statements", params=params, headers={**XAPI, **env.auth("ingest")})


def split(response: Any) -> list[tuple[dict[str, str], bytes]]:
    """Parse a multipart/mixed response into (headers, content) parts."""
    kind = response.headers["content-type"]
    boundary = kind.split("boundary=")[1].strip('"').encode()
    pieces = response.content.split(b"--" + boundary)
    parsed = []
    for piece in pieces[1:-1]:
        head, _, content = piece[2:].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parsed.append((headers, content.removesuffix(b"\r\n")))
    assert pieces[-1].startswith(b"--")
    return parsed


def jws(payload: Any, alg: str = "RS256") -> bytes:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(orjson.dumps({"alg": alg}))
    return f"{header}.{b64(orjson.dumps(payload))}.{b64(b'not-checked-signature')}".encode()


def test_attachment_data_goes_in_and_comes_back(client: TestClient, api_env: ApiEnv):
    essay = f"An essay {uuid.uuid4()}\r\n--not a boundary\r\n\x00\xff".encode("latin-1")
    made = statement(attachments=[attachment(essay)])
    body, kind = multipart(made, part(essay))
    response = send(client, api_env, body, kind)
    assert response.status_code == 200, response.text
    assert response.json() == [made["id"]]

    single = get(client, api_env, statementId=made["id"], attachments="true")
    assert single.status_code == 200
    parts = split(single)
    assert orjson.loads(parts[0][1])["attachments"] == made["attachments"]
    assert parts[0][0]["Content-Type"] == "application/json"
    assert parts[1][0]["X-Experience-API-Hash"] == made["attachments"][0]["sha2"]
    assert parts[1][0]["Content-Transfer-Encoding"] == "binary"
    assert parts[1][0]["Content-Type"] == "text/plain"
    assert parts[1][1] == essay
    # without attachments=true the answer is plain JSON
    plain = get(client, api_env, statementId=made["id"])
    assert plain.headers["content-type"] == "application/json"

    # a query with attachments=true is multipart too, the data once per hash
    verb = f"http://example.com/verbs/{uuid.uuid4().hex}"
    twice = [
        statement(verb={"id": verb}, attachments=[attachment(essay)]),
        statement(verb={"id": verb}, attachments=[attachment(essay)]),
    ]
    body, kind = multipart(twice, part(essay))
    assert send(client, api_env, body, kind).status_code == 200
    queried = split(get(client, api_env, verb=verb, attachments="true"))
    assert len(orjson.loads(queried[0][1])["statements"]) == 2
    assert [content for _, content in queried[1:]] == [essay]


def test_put_takes_a_multipart_body(client: TestClient, api_env: ApiEnv):
    data = uuid.uuid4().bytes
    made = statement(attachments=[attachment(data, contentType="application/octet-stream")])
    body, kind = multipart(made, part(data, Content_Type="application/octet-stream"))
    response = send(client, api_env, body, kind, "PUT", statementId=made["id"])
    assert response.status_code == 204, response.text
    parts = split(get(client, api_env, statementId=made["id"], attachments="true"))
    assert parts[1][1] == data and parts[1][0]["Content-Type"] == "application/octet-stream"


def test_a_file_url_attachment_needs_no_part(client: TestClient, api_env: ApiEnv):
    made = statement(
        attachments=[attachment(b"elsewhere", fileUrl="https://files.example/essay.txt")]
    )
    body, kind = multipart(made)
    assert send(client, api_env, body, kind).status_code == 200
    parts = split(get(client, api_env, statementId=made["id"], attachments="true"))
    assert len(parts) == 1


@pytest.mark.parametrize(
    ("build", "path"),
    [
        # an attachment without fileUrl and without its part
        (lambda d, s: multipart(s), "attachments[0].sha2"),
        # the part's content does not match its hash header
        (
            lambda d, s: multipart(s, part(d + b"!", s["attachments"][0]["sha2"])),
            "body.parts[1].X-Experience-API-Hash",
        ),
        # no hash header
        (
            lambda d, s: multipart(s, part(d, X_Experience_API_Hash="")),
            "body.parts[1].X-Experience-API-Hash",
        ),
        # not binary
        (
            lambda d, s: multipart(s, part(d, Content_Transfer_Encoding="base64")),
            "body.parts[1].Content-Transfer-Encoding",
        ),
        (
            lambda d, s: multipart(s, part(d, Content_Transfer_Encoding="")),
            "body.parts[1].Content-Transfer-Encoding",
        ),
        # no Content-Type on a part
        (lambda d, s: multipart(s, part(d, Content_Type="")), "body.parts[1].Content-Type"),
        # an extra part no attachment references
        (lambda d, s: multipart(s, part(d), part(b"extra")), "body.parts[2].X-Experience-API-Hash"),
        # the first part is not JSON
        (lambda d, s: multipart(s, part(d), first_type="text/plain"), "body.parts[0].Content-Type"),
        # statements split over two parts: the second is not an attachment
        (
            lambda d, s: multipart(s, ({"Content-Type": "application/json"}, orjson.dumps(s))),
            "body.parts[1].Content-Transfer-Encoding",
        ),
        # no boundary parameter
        (
            lambda d, s: (multipart(s, part(d))[0], "multipart/mixed"),
            "header.Content-Type.boundary",
        ),
        # a boundary in the header that the body does not use
        (lambda d, s: (multipart(s, part(d))[0], "multipart/mixed; boundary=other"), "body"),
        # the attachment data in a multipart/form-data body
        (
            lambda d, s: (multipart(s, part(d))[0], "multipart/form-data; boundary=x"),
            "header.Content-Type",
        ),
    ],
)
def test_multipart_bodies_that_break_a_rule_get_400(
    client: TestClient, api_env: ApiEnv, build: Any, path: str
):
    data = f"essay {uuid.uuid4()}".encode()
    made = statement(attachments=[attachment(data)])
    body, kind = build(data, made)
    response = send(client, api_env, body, kind)
    assert response.status_code == 400, response.text
    assert response.json()["path"] == path
    assert get(client, api_env, statementId=made["id"]).status_code == 404


def test_signed_statements(client: TestClient, api_env: ApiEnv):
    for alg in ("RS256", "RS384", "RS512"):
        made = statement()
        token = jws(made, alg)
        made["attachments"] = [attachment(token, SIGNATURE, contentType="application/octet-stream")]
        body, kind = multipart(made, part(token, Content_Type="application/octet-stream"))
        response = send(client, api_env, body, kind)
        assert response.status_code == 200, response.text
    # the stored statement keeps the signature's metadata, never its data (the JWS payload
    # holds the learner's raw identifiers)
    stored = get(client, api_env, statementId=made["id"], attachments="true")
    parts = split(stored)
    assert orjson.loads(parts[0][1])["attachments"] == made["attachments"]
    assert len(parts) == 1
    with api_env.connect() as conn:
        found = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.xapi_attachments WHERE sha2 = %s").format(
                sql.Identifier(api_env.schema)
            ),
            (made["attachments"][0]["sha2"],),
        ).fetchone()
    assert found == (0,)

    other = statement(verb={"id": "http://example.com/verbs/other"})
    cases = [
        (jws(other), "attachments[0]"),  # the payload is another statement
        (jws({"not": "a statement"}), "attachments[0]"),
        (b"not-a-jws", "attachments[0]"),
        (b"e30.e30.", "attachments[0]"),
    ]
    for token, path in cases:
        made = statement()
        made["attachments"] = [attachment(token, SIGNATURE, contentType="application/octet-stream")]
        body, kind = multipart(made, part(token, Content_Type="application/octet-stream"))
        response = send(client, api_env, body, kind)
        assert response.status_code == 400, token
        assert response.json()["path"] == path
    # another algorithm
    made = statement()
    token = jws(made, "HS256")
    made["attachments"] = [attachment(token, SIGNATURE, contentType="application/octet-stream")]
    body, kind = multipart(made, part(token, Content_Type="application/octet-stream"))
    refused = send(client, api_env, body, kind)
    assert refused.status_code == 400 and "RS256" in refused.json()["reason"]
    # a signature must be application/octet-stream
    made = statement()
    token = jws(made)
    made["attachments"] = [attachment(token, SIGNATURE, contentType="text/plain")]
    body, kind = multipart(made, part(token))
    refused = send(client, api_env, body, kind)
    assert refused.status_code == 400
    assert refused.json()["path"] == "attachments[0].contentType"


# ---------------------------------------------------------------------- alternate syntax


def form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


FORM = "application/x-www-form-urlencoded"


def test_alternate_syntax_get_and_put(client: TestClient, api_env: ApiEnv):
    made = statement()
    response = client.post(
        "/xapi/statements",
        params={"method": "PUT"},
        content=form(
            {
                "statementId": made["id"],
                "content": json.dumps(made),
                "X-Experience-API-Version": "1.0.3",
                # the key in the form only: the form's headers are the request's headers
                "Authorization": api_env.auth("ingest")["Authorization"],
            }
        ),
        headers={"Content-Type": FORM},
    )
    assert response.status_code == 204, response.text
    assert response.headers["x-experience-api-version"] == "1.0.3"
    fetched = client.post(
        "/xapi/statements",
        params={"method": "GET"},
        content=form({"statementId": made["id"], **XAPI, **api_env.auth("ingest")}),
        headers={"Content-Type": FORM},
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["id"] == made["id"]
    page = client.post(
        "/xapi/statements",
        params={"method": "GET"},
        content=form({"limit": "1"}),
        headers={**XAPI, **api_env.auth("ingest"), "Content-Type": FORM},
    )
    assert page.status_code == 200, page.text
    assert set(page.json()) == {"statements", "more"} and len(page.json()["statements"]) == 1
    posted = client.post(
        "/xapi/statements",
        params={"method": "POST"},
        content=form({"content": json.dumps(statement())}),
        headers={**XAPI, **api_env.auth("ingest"), "Content-Type": FORM},
    )
    assert posted.status_code == 200, posted.text


@pytest.mark.parametrize(
    ("method", "params", "fields", "content_type", "path"),
    [
        # the form's version header is the request's, and 0.8 is refused
        (
            "POST",
            {"method": "PUT"},
            {"X-Experience-API-Version": "0.8"},
            FORM,
            "header.X-Experience-API-Version",
        ),
        # anything besides method in the query
        ("POST", {"method": "PUT", "statementId": "ID"}, {}, FORM, "query.statementId"),
        # no content to PUT
        ("POST", {"method": "PUT"}, {"content": None}, FORM, "body.content"),
        # the form sent as JSON
        ("POST", {"method": "PUT"}, {}, "application/json", "header.Content-Type"),
        # not issued as a POST
        ("PUT", {"method": "POST"}, {}, FORM, "query.method"),
        ("POST", {"method": "PATCH"}, {}, FORM, "query.method"),
    ],
)
def test_alternate_syntax_misuse_gets_400(
    client: TestClient,
    api_env: ApiEnv,
    method: str,
    params: dict[str, str],
    fields: dict[str, Any],
    content_type: str,
    path: str,
):
    made = statement()
    query = {key: made["id"] if value == "ID" else value for key, value in params.items()}
    values = {"statementId": made["id"], "content": json.dumps(made), **XAPI, **fields}
    values = {key: value for key, value in values.items() if value is not None}
    body = form(values) if content_type == FORM else orjson.dumps(values)
    response = client.request(
        method,
        "/xapi/statements",
        params=query,
        content=body,
        headers={**api_env.auth("ingest"), "Content-Type": content_type},
    )
    assert response.status_code == 400, response.text
    assert response.json()["path"] == path
    assert get(client, api_env, statementId=made["id"]).status_code == 404

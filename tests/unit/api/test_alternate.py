from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from api.alternate import AlternateRefused, rewrite, uses_alternate

pytestmark = pytest.mark.unit

FORM = (b"content-type", b"application/x-www-form-urlencoded")


def scope(method: str = "POST", query: str = "method=PUT", *headers: tuple[bytes, bytes]):
    return {
        "type": "http",
        "method": method,
        "query_string": query.encode(),
        "headers": [FORM, (b"authorization", b"Bearer outer"), *headers],
    }


def test_a_form_becomes_the_request_it_stands_for():
    made = scope()
    fields = {
        "statementId": "f1b7c9a4-0000-4000-8000-000000000001",
        "content": '{"actor": "é"}',
        "X-Experience-API-Version": "1.0.3",
        "Authorization": "Bearer inner",
    }
    assert uses_alternate(made)
    body = rewrite(made, urlencode(fields).encode())
    assert body == '{"actor": "é"}'.encode()
    assert made["method"] == "PUT"
    assert parse_qsl(made["query_string"].decode()) == [("statementId", fields["statementId"])]
    headers = dict(made["headers"])
    assert headers[b"authorization"] == b"Bearer inner"
    assert headers[b"x-experience-api-version"] == b"1.0.3"
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(body)).encode()


def test_a_get_needs_no_content():
    made = scope(query="method=get")
    assert rewrite(made, b"limit=1&format=ids") == b""
    assert made["method"] == "GET"
    assert parse_qsl(made["query_string"].decode()) == [("limit", "1"), ("format", "ids")]


def test_plain_requests_are_not_alternate():
    assert not uses_alternate(scope(query="statementId=x"))
    assert not uses_alternate(scope(query=""))


@pytest.mark.parametrize(
    ("made", "body", "path", "reason"),
    [
        (
            scope("PUT", "method=POST"),
            b"content=%7B%7D",
            "query.method",
            "the alternate request syntax is only sent as POST",
        ),
        (
            scope(query="method=PUT&statementId=x"),
            b"content=%7B%7D",
            "query.statementId",
            "the alternate request syntax takes no query parameter but method; send it in the form",
        ),
        (
            scope(query="method=PUT&method=GET"),
            b"",
            "query.method",
            "give method once",
        ),
        (
            scope(query="method=PATCH"),
            b"",
            "query.method",
            "must be one of DELETE, GET, HEAD, POST, PUT",
        ),
        (
            {**scope(), "headers": [(b"content-type", b"application/json")]},
            b"{}",
            "header.Content-Type",
            "must be application/x-www-form-urlencoded in the alternate request syntax",
        ),
        (scope(), b"statementId=x", "body.content", "is required to PUT in the alternate syntax"),
        (scope(), b"content=a&content=b", "body.content", "appears twice in the form"),
        (scope(), b"\xff=1", "body", "is not a URL-encoded form"),
    ],
)
def test_misuse_is_refused_with_its_reason(
    made: dict[str, Any], body: bytes, path: str, reason: str
):
    with pytest.raises(AlternateRefused) as refused:
        rewrite(made, body)
    assert (refused.value.path, refused.value.reason) == (path, reason)

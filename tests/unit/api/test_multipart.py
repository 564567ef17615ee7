from __future__ import annotations

import hashlib

import pytest

from api.attachments import Part, multipart_response, referenced_hashes, split_multipart
from api.exceptions import BadRequest

pytestmark = pytest.mark.unit

DATA = b"line one\r\nx--b\r\n--bb not a delimiter\x00\xff"
SHA = hashlib.sha256(DATA).hexdigest()


def body(*chunks: bytes, boundary: bytes = b"b") -> bytes:
    out = b""
    for chunk in chunks:
        out += b"--" + boundary + b"\r\n" + chunk + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


FIRST = b'Content-Type: application/json\r\n\r\n{"a": 1}'
SECOND = (
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n"
    b"X-Experience-API-Hash: " + SHA.encode() + b"\r\n\r\n" + DATA
)


def test_parts_are_split_with_binary_content_intact():
    statements, parts = split_multipart('multipart/mixed; boundary="b"', body(FIRST, SECOND))
    assert statements == b'{"a": 1}'
    assert parts == [Part(SHA, "text/plain", DATA)]
    # a preamble before the first delimiter is ignored
    with_preamble = b"preamble\r\n" + body(FIRST, SECOND)
    assert split_multipart("multipart/mixed; boundary=b", with_preamble)[1] == parts


def test_a_response_splits_back_into_the_same_parts():
    made, kind = multipart_response(b"{}", [Part(SHA, "text/plain", DATA)])
    statements, parts = split_multipart(kind, made)
    assert statements == b"{}"
    assert parts == [Part(SHA, "text/plain", DATA)]


@pytest.mark.parametrize(
    ("content_type", "payload", "path", "reason"),
    [
        (
            "multipart/mixed",
            body(FIRST),
            "header.Content-Type.boundary",
            "multipart/mixed needs a boundary parameter",
        ),
        (
            "multipart/mixed; boundary=zz",
            body(FIRST),
            "body",
            "holds no part delimited by the boundary",
        ),
        (
            "multipart/mixed; boundary=b",
            body(FIRST)[: -len(b"--b--\r\n")],
            "body",
            "the multipart body has no closing boundary delimiter",
        ),
        (
            "multipart/mixed; boundary=b",
            body(b"Content-Type: text/plain\r\n\r\n{}"),
            "body.parts[0].Content-Type",
            "the first part must be the statements, with Content-Type: application/json",
        ),
        (
            "multipart/mixed; boundary=b",
            body(FIRST, SECOND.replace(b"binary", b"base64")),
            "body.parts[1].Content-Transfer-Encoding",
            "must be binary on every attachment part",
        ),
        (
            "multipart/mixed; boundary=b",
            body(FIRST, SECOND.replace(b"X-Experience-API-Hash", b"X-Other")),
            "body.parts[1].X-Experience-API-Hash",
            "is required on every attachment part (the attachment's sha2)",
        ),
        (
            "multipart/mixed; boundary=b",
            body(FIRST, SECOND + b"!"),
            "body.parts[1].X-Experience-API-Hash",
            "does not match the part's content (the content arrived changed, or the hash is "
            "of other data)",
        ),
        (
            "multipart/mixed; boundary=b",
            body(FIRST, SECOND.replace(SHA.encode(), b"abc")),
            "body.parts[1].X-Experience-API-Hash",
            "is not a hex SHA-2 hash",
        ),
        (
            "multipart/mixed; boundary=b",
            body(FIRST, SECOND.replace(b"Content-Type: text/plain\r\n", b"")),
            "body.parts[1].Content-Type",
            "is required on every attachment part",
        ),
    ],
)
def test_broken_bodies_are_named(content_type: str, payload: bytes, path: str, reason: str):
    with pytest.raises(BadRequest) as refused:
        split_multipart(content_type, payload)
    assert (refused.value.path, refused.value.reason) == (path, reason)


def test_referenced_hashes_skip_signatures_when_asked():
    signature = {"usageType": "http://adlnet.gov/expapi/attachments/signature", "sha2": "AA"}
    essay = {"usageType": "http://example.com/essay", "sha2": "bb"}
    payloads = [
        {"attachments": [signature, essay]},
        {"object": {"objectType": "SubStatement", "attachments": [essay]}},
    ]
    assert referenced_hashes(payloads) == ["aa", "bb"]
    assert referenced_hashes(payloads, signatures=False) == ["bb"]

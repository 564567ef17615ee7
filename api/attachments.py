"""xAPI attachments sent and returned in ``multipart/mixed`` bodies (Communication 1.5.2).

A statement request with attachment data is a ``multipart/mixed`` body: the first part is the
statements as ``application/json``; every further part is one attachment's data, with its
``Content-Type``, ``Content-Transfer-Encoding: binary`` and an ``X-Experience-API-Hash`` header
equal to the ``sha2`` of an attachment of those statements. Each part is checked against its
hash; a part no statement references, or an attachment without ``fileUrl`` that has no part,
makes the request a 400.

Signature attachments (Data 2.6) are checked (a compact JWS signed with RS256, RS384 or RS512
whose payload is the statement itself) and their data is then not kept: the JWS payload is the
statement as sent, with the learner's raw identifiers, which the store never holds (the stored
statement is pseudonymised, so the signature could not verify against it anyway). The stored
statement keeps the signature's metadata; a GET with ``attachments=true`` has no part for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import orjson
from msgspec import UNSET

from api.exceptions import BadRequest
from api.statements import SIGNATURE_USAGE, same_statement
from schemas import xapi
from schemas.exceptions import InvalidEvent

SIGNATURE_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512"})
_HASHES: Final = {56: hashlib.sha224, 64: hashlib.sha256, 96: hashlib.sha384, 128: hashlib.sha512}
_BOUNDARY_RE: Final = re.compile(r'boundary\s*=\s*(?:"([^"]{1,200})"|([^\s;"]{1,200}))', re.I)
_MULTIPART_RE: Final = re.compile(r"^\s*multipart/mixed\s*(?:;.*)?$", re.I | re.S)
_JSON_PART_RE: Final = re.compile(r"^\s*application/json\s*(?:;.*)?$", re.I)


@dataclass(frozen=True, slots=True)
class Part:
    """One attachment's data from a multipart body.

    Attributes:
        sha2: lower-case hex hash from its ``X-Experience-API-Hash`` header (checked).
        content_type: its ``Content-Type``.
        content: its bytes.
    """

    sha2: str
    content_type: str
    content: bytes


def is_multipart(content_type: str | None) -> bool:
    """Return whether a Content-Type is ``multipart/mixed``."""
    return content_type is not None and _MULTIPART_RE.fullmatch(content_type) is not None


def _headers(block: bytes, where: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise BadRequest(f"has a malformed header line {line[:60]!r}", where)
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return headers


def split_multipart(content_type: str, body: bytes) -> tuple[bytes, list[Part]]:
    """Split a ``multipart/mixed`` statement body into its statements and attachment parts.

    Args:
        content_type: the request's Content-Type, with its ``boundary`` parameter.
        body: the whole body.

    Returns:
        The JSON of the first part, and the other parts with their hashes checked.

    Raises:
        BadRequest: when the boundary is missing, a delimiter or part header is malformed, the
            first part is not ``application/json``, or a later part lacks
            ``Content-Transfer-Encoding: binary`` or an ``X-Experience-API-Hash`` matching its
            content.
    """
    found = _BOUNDARY_RE.search(content_type)
    if found is None:
        raise BadRequest(
            "multipart/mixed needs a boundary parameter", "header.Content-Type.boundary"
        )
    delimiter = b"--" + (found.group(1) or found.group(2)).encode("latin-1")
    # The body starts with a delimiter or with a preamble ending in CRLF before one.
    if body.startswith(delimiter):
        start = len(delimiter)
    else:
        at = body.find(b"\r\n" + delimiter)
        if at < 0:
            raise BadRequest("holds no part delimited by the boundary", "body")
        start = at + 2 + len(delimiter)
    chunks: list[bytes] = []
    closed = False
    while True:
        if body.startswith(b"--", start):
            closed = True
            break
        line_end = body.find(b"\r\n", start)
        if line_end < 0 or body[start:line_end].strip(b" \t"):
            raise BadRequest("a boundary delimiter is not followed by a line break", "body")
        end = _next_delimiter(body, delimiter, line_end)
        if end < 0:
            break
        chunks.append(body[line_end + 2 : end])
        start = end + 2 + len(delimiter)
    if not closed:
        raise BadRequest("the multipart body has no closing boundary delimiter", "body")
    if not chunks:
        raise BadRequest("the multipart body holds no parts", "body")
    first = True
    statements = b""
    parts: list[Part] = []
    for index, chunk in enumerate(chunks):
        where = f"body.parts[{index}]"
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            if chunk.startswith(b"\r\n"):
                head, content = b"", chunk[2:]
            else:
                raise BadRequest("has no blank line between its headers and content", where)
        headers = _headers(head, where)
        kind = headers.get("content-type")
        if first:
            if kind is None or _JSON_PART_RE.fullmatch(kind) is None:
                raise BadRequest(
                    "the first part must be the statements, with Content-Type: application/json",
                    f"{where}.Content-Type",
                )
            statements = content
            first = False
            continue
        parts.append(_part(headers, content, where))
    return statements, parts


def _next_delimiter(body: bytes, delimiter: bytes, start: int) -> int:
    """Return where the next CRLF + delimiter starts, or -1.

    The boundary followed by anything but ``--`` or a line end (``--bb`` for boundary ``b``) is
    content, not a delimiter (RFC 2046 5.1.1).
    """
    marker = b"\r\n" + delimiter
    at = body.find(marker, start)
    while at >= 0:
        after = at + len(marker)
        rest = body[after : after + 2]
        if rest == b"--" or body[after:].lstrip(b" \t").startswith(b"\r\n"):
            return at
        at = body.find(marker, after)
    return -1


def _part(headers: Mapping[str, str], content: bytes, where: str) -> Part:
    kind = headers.get("content-type")
    if not kind:
        raise BadRequest("is required on every attachment part", f"{where}.Content-Type")
    if headers.get("content-transfer-encoding", "").strip().lower() != "binary":
        raise BadRequest(
            "must be binary on every attachment part", f"{where}.Content-Transfer-Encoding"
        )
    sha2 = headers.get("x-experience-api-hash", "").strip().lower()
    if not sha2:
        raise BadRequest(
            "is required on every attachment part (the attachment's sha2)",
            f"{where}.X-Experience-API-Hash",
        )
    digest = _HASHES.get(len(sha2))
    if digest is None or re.fullmatch(r"[0-9a-f]+", sha2) is None:
        raise BadRequest("is not a hex SHA-2 hash", f"{where}.X-Experience-API-Hash")
    if digest(content).hexdigest() != sha2:
        raise BadRequest(
            "does not match the part's content (the content arrived changed, or the hash is "
            "of other data)",
            f"{where}.X-Experience-API-Hash",
        )
    return Part(sha2, kind, content)


def _attachments_of(statement: xapi.Statement, path: str) -> Iterable[tuple[str, xapi.Attachment]]:
    prefix = f"{path}." if path else ""
    if statement.attachments is not UNSET:
        for index, attachment in enumerate(statement.attachments):
            yield f"{prefix}attachments[{index}]", attachment
    target = statement.object
    if target.objectType == "SubStatement" and target.attachments is not UNSET:
        for index, attachment in enumerate(target.attachments):
            yield f"{prefix}object.attachments[{index}]", attachment


def check_attachments(
    statements: list[xapi.Statement], is_array: bool, parts: list[Part] | None
) -> None:
    """Check that the statements' attachments and the body's parts match one for one.

    Args:
        statements: the decoded statements.
        is_array: whether they came as an array (paths then start with ``[index]``).
        parts: the attachment parts of a multipart body, or ``None`` for an application/json
            body, where every attachment must point at its data with ``fileUrl``.

    Raises:
        InvalidEvent: naming an attachment without data, or a part no attachment references.
    """
    hashes = {part.sha2 for part in parts} if parts is not None else set()
    referenced: set[str] = set()
    for number, statement in enumerate(statements):
        path = f"[{number}]" if is_array else ""
        for where, attachment in _attachments_of(statement, path):
            sha2 = attachment.sha2.lower()
            referenced.add(sha2)
            if parts is None:
                if attachment.fileUrl is UNSET:
                    raise InvalidEvent(
                        f"{where}.fileUrl",
                        "is required in an application/json request; send the attachment's "
                        "data in a multipart/mixed body instead",
                        xapi.SOURCE,
                    )
                continue
            if attachment.fileUrl is UNSET and sha2 not in hashes:
                raise InvalidEvent(
                    f"{where}.sha2",
                    "no part of the multipart body carries this hash, and the attachment has "
                    "no fileUrl",
                    xapi.SOURCE,
                )
            if attachment.usageType == SIGNATURE_USAGE:
                _signature(statement, attachment, parts, where)
    for index, part in enumerate(parts or ()):
        if part.sha2 not in referenced:
            raise InvalidEvent(
                f"body.parts[{index + 1}].X-Experience-API-Hash",
                "matches the sha2 of no attachment of the statements",
                xapi.SOURCE,
            )


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _signature(
    statement: xapi.Statement, attachment: xapi.Attachment, parts: list[Part], where: str
) -> None:
    """Check a signature attachment (Data 2.6): a JWS over the statement itself."""
    if attachment.contentType != "application/octet-stream":
        raise InvalidEvent(
            f"{where}.contentType",
            "must be application/octet-stream for a signature",
            xapi.SOURCE,
        )
    part = next((p for p in parts if p.sha2 == attachment.sha2.lower()), None)
    if part is None:
        raise InvalidEvent(
            f"{where}.sha2", "a signature's JWS must come in the multipart body", xapi.SOURCE
        )
    try:
        head, payload, signed = part.content.decode("ascii").strip().split(".")
        header = orjson.loads(_b64(head))
        body = orjson.loads(_b64(payload))
        signature = _b64(signed)
    except (ValueError, UnicodeDecodeError, binascii.Error, orjson.JSONDecodeError) as err:
        raise InvalidEvent(
            where, "the signature is not a compact JWS (header.payload.signature)", xapi.SOURCE
        ) from err
    if type(header) is not dict or header.get("alg") not in SIGNATURE_ALGORITHMS:
        raise InvalidEvent(where, "the JWS must be signed with RS256, RS384 or RS512", xapi.SOURCE)
    if not signature:
        raise InvalidEvent(where, "the JWS has an empty signature", xapi.SOURCE)
    try:
        signed_statement = xapi.validate_statement(body)
    except InvalidEvent as err:
        raise InvalidEvent(
            where,
            f"the JWS payload is not a valid statement ({err.path}: {err.reason})",
            xapi.SOURCE,
        ) from None
    if not _same_content(signed_statement, statement):
        raise InvalidEvent(
            where,
            "the JWS payload is not this statement (it differs from what was sent)",
            xapi.SOURCE,
        )


def _same_content(signed: xapi.Statement, sent: xapi.Statement) -> bool:
    first: dict[str, Any] = msgspec.to_builtins(signed)
    second: dict[str, Any] = msgspec.to_builtins(sent)
    # The payload is the statement before the signature was added to its attachments.
    for one in (first, second):
        one.pop("attachments", None)
    return same_statement(first, second)


def multipart_response(statements_json: bytes, parts: Iterable[Part]) -> tuple[bytes, str]:
    """Build a ``multipart/mixed`` body: the JSON first, then each attachment's data.

    Returns:
        The body and its Content-Type (with the boundary).
    """
    boundary = uuid.uuid4().hex
    delimiter = f"--{boundary}".encode()
    chunks = [delimiter, b"\r\nContent-Type: application/json\r\n\r\n", statements_json]
    for part in parts:
        chunks += [
            b"\r\n",
            delimiter,
            f"\r\nContent-Type: {part.content_type}\r\nContent-Transfer-Encoding: binary\r\n"
            f"X-Experience-API-Hash: {part.sha2}\r\n\r\n".encode("latin-1"),
            part.content,
        ]
    chunks += [b"\r\n", delimiter, b"--\r\n"]
    return b"".join(chunks), f'multipart/mixed; boundary="{boundary}"'


def referenced_hashes(
    payloads: Iterable[Mapping[str, Any]], *, signatures: bool = True
) -> list[str]:
    """Return the sha2 of every attachment of stored statements, first seen first.

    Args:
        payloads: stored statements.
        signatures: whether to include signature attachments (whose data is never kept).
    """
    seen: dict[str, None] = {}
    for payload in payloads:
        for holder in (payload, payload.get("object")):
            if type(holder) is not dict:
                continue
            attachments = holder.get("attachments")
            if type(attachments) is not list:
                continue
            for attachment in attachments:
                if type(attachment) is not dict:
                    continue
                if not signatures and attachment.get("usageType") == SIGNATURE_USAGE:
                    continue
                sha2 = attachment.get("sha2")
                if type(sha2) is str:
                    seen.setdefault(sha2.lower(), None)
    return list(seen)

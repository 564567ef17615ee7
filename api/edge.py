"""The edge of every HTTP request: body size cap, gzip bodies, xAPI version header, metrics, log.

It also turns xAPI's alternate request syntax into the request it stands for
(:mod:`api.alternate`), before routing, so the statement resource sees one shape of request.

One pure ASGI middleware does it all: the body is read once (refused with 413 past the cap,
counted after decompression too, so a small gzip bomb is refused as well), handed to the app
whole, and the response gets the headers every endpoint of its kind needs.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

import orjson
from prometheus_client import Counter, Histogram

from api.alternate import AlternateRefused, rewrite, uses_alternate

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("api.access")

XAPI_VERSION: Final = "1.0.3"
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_GZIP: Final = frozenset({"gzip", "x-gzip"})


def problem_body(status: int, reason: str, path: str = "") -> bytes:
    """Return the JSON of an error response (the ``Problem`` model)."""
    return orjson.dumps(
        {"status": status, "error": HTTPStatus(status).phrase, "path": path, "reason": reason}
    )


class _Refused(Exception):
    def __init__(self, status: int, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.path = path


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in _GZIP:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    else:
        inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise _Refused(413, f"the decompressed body is over the {limit}-byte limit")
        out += inflater.flush()
    except zlib.error as err:
        raise _Refused(400, f"the body is not valid {encoding} data: {err}") from err
    if len(out) > limit:
        raise _Refused(413, f"the decompressed body is over the {limit}-byte limit")
    if not inflater.eof:
        raise _Refused(400, f"the {encoding} body is truncated")
    return out


class Edge:
    """Wraps the app: see the module's docstring.

    Args:
        app: the ASGI app.
        max_body_bytes: largest body, before and after decompression.
        requests: counter of requests by method, route and status.
        latency: histogram of request seconds by method and route.
    """

    def __init__(
        self, app: App, max_body_bytes: int, requests: Counter, latency: Histogram
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (only HTTP requests are touched)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        xapi = scope["path"].startswith("/xapi")
        statements = xapi and scope["path"].startswith("/xapi/statements")
        status_seen = 500

        async def send_wrapped(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = message["status"]
                if xapi:
                    headers = list(message.get("headers", []))
                    headers.append((b"x-experience-api-version", XAPI_VERSION.encode()))
                    if statements and not any(
                        key.lower() == b"x-experience-api-consistent-through" for key, _ in headers
                    ):
                        # Accepted statements are stored before the answer: all up to now is
                        # readable, on every answer of the resource, errors included.
                        headers.append((b"x-experience-api-consistent-through", _now_header()))
                    message["headers"] = headers
            await send(message)

        try:
            if scope["method"] in _BODY_METHODS:
                body = await self._body(scope, receive)
                if statements and uses_alternate(scope):
                    body = _alternate(scope, body)
                receive = _replay(body)
            elif statements and uses_alternate(scope):
                _alternate(scope, b"")
        except _Refused as refused:
            await self._refuse(send_wrapped, refused.status, refused.reason, refused.path)
        else:
            await self.app(scope, receive, send_wrapped)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            elapsed = time.perf_counter() - started
            self.requests.labels(method, template, str(status_seen)).inc()
            self.latency.labels(method, template).observe(elapsed)
            # The route's template, never the path or query: those can name a learner.
            access_log.info("%s %s %d %.1f ms", method, template, status_seen, elapsed * 1000)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        headers = {key.lower(): value for key, value in scope["headers"]}
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    raise _Refused(413, f"the body is over the {limit}-byte limit")
            except ValueError as err:
                raise _Refused(400, "Content-Length is not a number") from err
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"the body is over the {limit}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding in _GZIP or encoding == "deflate":
            inflated = _inflate(body, encoding, limit)
            scope["headers"] = [
                (key, value)
                for key, value in scope["headers"]
                if key.lower() not in (b"content-encoding", b"content-length")
            ] + [(b"content-length", str(len(inflated)).encode())]
            return inflated
        raise _Refused(415, f"Content-Encoding {encoding!r} is not supported; use gzip")

    @staticmethod
    async def _refuse(send: Send, status: int, reason: str, path: str = "") -> None:
        body = problem_body(status, reason, path)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _alternate(scope: Scope, body: bytes) -> bytes:
    try:
        return rewrite(scope, body)
    except AlternateRefused as refused:
        raise _Refused(400, refused.reason, refused.path) from refused


def _now_header() -> bytes:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z").encode()


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, an ASGI app waits here only to learn of a disconnect.
        return {"type": "http.disconnect"}

    return receive

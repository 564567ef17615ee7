"""The live feed of a class: server-sent events and a WebSocket, resumable from a cursor.

SSE: ``GET /classes/{class_id}/feed`` sends ``event: intervention`` with ``id: <cursor>`` and the
intervention (``schemas.records.Intervention``) as data, and ``event: heartbeat`` every
``TUTORSTREAM_API__HEARTBEAT_S`` seconds. A reconnecting client sends its last id as
``Last-Event-ID`` (browsers do this by themselves) or ``?cursor=``.

WebSocket: ``/classes/{class_id}/feed/ws?cursor=`` sends JSON messages
``{"type": "intervention", "cursor", "intervention"}`` and ``{"type": "heartbeat", "cursor"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, WebSocket
from fastapi.responses import Response
from starlette.websockets import WebSocketDisconnect

from api.auth import require_class
from api.exceptions import ApiError, BadRequest, Unavailable
from api.feed import FeedItem, InterventionFeed, Position, Subscription, parse_cursor
from api.keys import Principal
from api.runtime import Metrics, principal, runtime_of

# class ids of any shape (IRIs): see api.routers.tutor
router = APIRouter(prefix="/classes/{class_id:path}", tags=["live feed"])

ClassId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^\S+$")]
_BATCH: Final = 256
_RETRY_MS: Final = 2000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _since(cursor: str | None, last_event_id: str | None) -> Position | None:
    if last_event_id:
        return parse_cursor(last_event_id, "header.Last-Event-ID")
    if cursor:
        return parse_cursor(cursor, "query.cursor")
    return None


async def _start(
    feed: InterventionFeed, class_id: str, since: Position | None
) -> tuple[Subscription, list[FeedItem]]:
    """Register for live records, then read back what the client missed up to that moment.

    Raises:
        Unavailable: while the instance's consumer has not found its partitions yet (it would
            not know where replay ends).
    """
    if not feed.ready:
        raise Unavailable("the live feed is starting; try again in a moment")
    subscription, upto = feed.subscribe(class_id, since)
    try:
        missed = await feed.replay(class_id, since, upto) if since else []
    except BaseException:
        feed.unsubscribe(subscription)
        raise
    return subscription, missed


def _heartbeat_sse(cursor: str | None) -> bytes:
    data = orjson.dumps({"cursor": cursor, "time": time.time()})
    if cursor is None:
        return b"event: heartbeat\ndata: %s\n\n" % data
    return b"id: %s\nevent: heartbeat\ndata: %s\n\n" % (cursor.encode(), data)


class FeedStream(Response):
    """A server-sent event stream of one subscription, ended when the client leaves."""

    media_type = "text/event-stream"

    def __init__(
        self,
        feed: InterventionFeed,
        subscription: Subscription,
        missed: list[FeedItem],
        heartbeat_s: float,
        metrics: Metrics,
    ) -> None:
        # No Content-Length: the stream has no end.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self.feed = feed
        self.subscription = subscription
        self.missed = missed
        self.heartbeat_s = heartbeat_s
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the missed interventions, then live ones and heartbeats until the client leaves."""
        subscription = self.subscription
        gauge = self.metrics.feed_clients.labels("sse")
        gauge.inc()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            subscription.close()

        watcher = asyncio.create_task(watch_disconnect())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            first = [b"retry: %d\n\n" % _RETRY_MS]
            first.extend(item.sse(subscription.cursor_for(item)) for item in self.missed)
            await send({"type": "http.response.body", "body": b"".join(first), "more_body": True})
            self.metrics.feed_sent.inc(len(self.missed))
            subscription.caught_up = True
            await self._stream(send)
        except OSError:
            pass
        finally:
            watcher.cancel()
            self.feed.unsubscribe(subscription)
            gauge.dec()

    async def _stream(self, send: Send) -> None:
        subscription = self.subscription
        while not subscription.overflowed:
            item = await subscription.next(self.heartbeat_s)
            if item is None:
                if subscription.overflowed:
                    break
                chunk = _heartbeat_sse(self.feed.heartbeat_cursor(subscription))
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                continue
            frames = [item.sse(subscription.cursor_for(item))]
            # Send what queued meanwhile in one write: fewer wake-ups under load.
            while len(frames) < _BATCH and subscription.pending():
                more = await subscription.next(0)
                if more is None:
                    break
                frames.append(more.sse(subscription.cursor_for(more)))
            await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
            self.metrics.feed_sent.inc(len(frames))
        # Overflowed (too slow) or shutting down: end the response; the client resumes.
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


@router.get(
    "/feed",
    summary="Live feed of the class's interventions (server-sent events)",
    response_class=FeedStream,
    status_code=200,
    responses={
        200: {
            "description": "An endless text/event-stream.",
            "content": {
                "text/event-stream": {
                    "example": 'id: 0:15,1:9,2:4\nevent: intervention\ndata: {"intervention_id"'
                    ': "…", "class_id": "7b", "state": "gaming", …}\n\n'
                }
            },
        },
        400: {"description": "A malformed cursor or Last-Event-ID."},
        401: {"description": "No API key, or an unknown or revoked one."},
        403: {"description": "The key may not see this class."},
        503: {"description": "The missed interventions could not be read back in time."},
    },
)
async def feed_sse(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    class_id: ClassId,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="Resume after this cursor.")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Resume after this event id (the cursor)."),
    ] = None,
) -> FeedStream:
    """Stream the class's interventions as they arrive, after those missed since the cursor."""
    require_class(caller, class_id)
    runtime = runtime_of(request)
    since = _since(cursor, last_event_id)
    subscription, missed = await _start(runtime.feed, class_id, since)
    return FeedStream(
        runtime.feed, subscription, missed, runtime.settings.api.heartbeat_s, runtime.metrics
    )


@router.websocket("/feed/ws")
async def feed_ws(websocket: WebSocket, class_id: str, cursor: str | None = None) -> None:
    """The same feed over a WebSocket; see the module's docstring for the messages.

    Refusals close the socket before accepting it: 1008 (policy: what would be 401/403), 1003
    (a malformed cursor, 400) or 1013 (try again: the feed is starting, or replay timed out).
    """
    runtime = runtime_of(websocket)
    try:
        caller = await runtime.authenticator.authenticate(websocket)
        require_class(caller, class_id)
        since = _since(cursor, None)
        subscription, missed = await _start(runtime.feed, class_id, since)
    except ApiError as err:
        code = (
            1003 if isinstance(err, BadRequest) else 1013 if isinstance(err, Unavailable) else 1008
        )
        await websocket.close(code=code, reason=err.reason[:120])
        return
    gauge = runtime.metrics.feed_clients.labels("websocket")
    gauge.inc()

    async def watch_disconnect() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await websocket.receive_text()
        subscription.close()

    watcher: asyncio.Task[None] | None = None
    try:
        await websocket.accept()
        watcher = asyncio.create_task(watch_disconnect())
        for item in missed:
            await websocket.send_text(item.websocket(subscription.cursor_for(item)))
        subscription.caught_up = True
        heartbeat_s = runtime.settings.api.heartbeat_s
        while not subscription.overflowed:
            next_item = await subscription.next(heartbeat_s)
            if next_item is None:
                if subscription.overflowed:
                    break
                beat = runtime.feed.heartbeat_cursor(subscription)
                await websocket.send_text(
                    orjson.dumps({"type": "heartbeat", "cursor": beat}).decode()
                )
                continue
            await websocket.send_text(next_item.websocket(subscription.cursor_for(next_item)))
            runtime.metrics.feed_sent.inc()
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=1013, reason="fell behind; resume from your cursor")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        if watcher is not None:
            watcher.cancel()
        runtime.feed.unsubscribe(subscription)
        gauge.dec()

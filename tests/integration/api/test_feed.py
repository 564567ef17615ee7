from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from api_support import ApiEnv, InterventionMaker, serve, unique_class
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

pytestmark = pytest.mark.integration


@dataclass
class Event:
    kind: str
    id: str | None
    data: dict


class SseClient:
    """Reads a server-sent event stream in a thread; events arrive on a queue."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self._stop = threading.Event()
        self.status: int | None = None
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(30, read=5)) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            self.status = response.status_code
            kind, ident, data = "message", None, []
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line == "":
                    if data:
                        self.events.put(Event(kind, ident, json.loads("\n".join(data))))
                    kind, ident, data = "message", None, []
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])

    def next(self, kind: str, timeout: float = 20.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event within {timeout} s")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event.kind == kind:
                return event

    def close(self) -> None:
        self._stop.set()


@contextmanager
def sse(url: str, headers: dict[str, str]) -> Iterator[SseClient]:
    client = SseClient(url, headers)
    try:
        yield client
    finally:
        client.close()


def caught_up(client: SseClient) -> str:
    """Wait for a heartbeat that carries a cursor: the connection is live and caught up."""
    while True:
        beat = client.next("heartbeat")
        if beat.id is not None:
            return beat.id


def test_a_reconnect_in_the_middle_loses_nothing(
    api_env: ApiEnv, live_url: str, intervention_maker: InterventionMaker
):
    class_id = unique_class()
    token = api_env.key_for(["tutor"], [class_id])
    headers = {"Authorization": f"Bearer {token}"}
    feed = f"/classes/{class_id}/feed"
    sent: list[str] = []
    received: list[str] = []

    with sse(live_url + feed, headers) as first:
        caught_up(first)
        for _ in range(5):
            sent.append(intervention_maker(class_id).intervention_id)
        intervention_maker(unique_class())  # another class: never on this feed
        last_id = None
        for _ in range(5):
            event = first.next("intervention")
            received.append(event.data["intervention_id"])
            assert event.data["class_id"] == class_id
            last_id = event.id
    assert sorted(received) == sorted(sent)

    # While the dashboard is away: more interventions arrive.
    for _ in range(5):
        sent.append(intervention_maker(class_id).intervention_id)
    intervention_maker(unique_class())

    # It comes back on another instance of the API, with the id of the last event it saw.
    with (
        serve(api_env.settings()) as other_instance,
        sse(other_instance + feed, {**headers, "Last-Event-ID": last_id or ""}) as second,
    ):
        # More arrive while it is reading back what it missed.
        for _ in range(5):
            sent.append(intervention_maker(class_id).intervention_id)
        for _ in range(10):
            received.append(second.next("intervention").data["intervention_id"])
        cursor = caught_up(second)
        with pytest.raises(AssertionError):
            second.next("intervention", timeout=1.5)

    assert len(received) == len(sent) == 15
    assert sorted(received) == sorted(sent)  # nothing lost, nothing twice

    # Resuming from a heartbeat's cursor gives nothing already seen.
    with sse(live_url + feed, {**headers, "Last-Event-ID": cursor}) as third:
        caught_up(third)
        late = intervention_maker(class_id).intervention_id
        assert third.next("intervention").data["intervention_id"] == late


def test_the_feed_refuses_other_classes_and_bad_cursors(api_env: ApiEnv, live_url: str):
    class_id = unique_class()
    token = api_env.key_for(["tutor"], [class_id])
    with httpx.Client(base_url=live_url, timeout=10) as http:
        other = http.get(
            f"/classes/{unique_class()}/feed", headers={"Authorization": f"Bearer {token}"}
        )
        assert other.status_code == 403
        bad = http.get(
            f"/classes/{class_id}/feed",
            headers={"Authorization": f"Bearer {token}", "Last-Event-ID": "zero"},
        )
        assert bad.status_code == 400
        assert bad.json()["path"] == "header.Last-Event-ID"
        assert http.get(f"/classes/{class_id}/feed").status_code == 401


def test_the_websocket_feed_resumes_from_its_cursor(
    client: TestClient, api_env: ApiEnv, intervention_maker: InterventionMaker
):
    class_id = unique_class()
    headers = api_env.auth("admin")
    path = f"/classes/{class_id}/feed/ws"
    with client.websocket_connect(path, headers=headers) as ws:
        beat = ws.receive_json()
        while beat["cursor"] is None:
            beat = ws.receive_json()
        first = [intervention_maker(class_id).intervention_id for _ in range(3)]
        got = []
        cursor = None
        while len(got) < 3:
            message = ws.receive_json()
            if message["type"] == "intervention":
                got.append(message["intervention"]["intervention_id"])
                cursor = message["cursor"]
        assert sorted(got) == sorted(first)
    missed = [intervention_maker(class_id).intervention_id for _ in range(2)]
    with client.websocket_connect(f"{path}?cursor={cursor}", headers=headers) as ws:
        again = []
        while len(again) < 2:
            message = ws.receive_json()
            if message["type"] == "intervention":
                again.append(message["intervention"]["intervention_id"])
        assert sorted(again) == sorted(missed)

    token = api_env.key_for(["tutor"], [class_id])
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(
            f"/classes/{unique_class()}/feed/ws", headers={"Authorization": f"Bearer {token}"}
        ) as ws,
    ):
        ws.receive_json()
    assert refused.value.code == 1008

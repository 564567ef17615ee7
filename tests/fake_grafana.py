"""A local HTTP server standing in for Grafana, recording and checking every request.

Grafana itself cannot be installed here. The stand-in checks each request against Grafana's HTTP
API documentation (https://grafana.com/docs/grafana/latest/developers/http_api/): bearer
authentication, JSON bodies, ``GET/POST /api/datasources``, ``GET/PUT /api/datasources/uid/:uid``,
``GET/POST /api/folders`` and ``PUT /api/folders/:uid``, ``POST /api/dashboards/db`` with a
dashboard that has a uid and title, ``folderUid`` and ``overwrite``, and ``POST /api/annotations``
(``time`` in epoch milliseconds, ``text``, ``tags``; ``dashboardUID``, ``panelId`` and
``timeEnd`` optional). It keeps what it was given, so a second push meets the objects the first
one created, and it can be told to fail the next annotation requests with given statuses.
What it cannot check is how Grafana renders the boards.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "glsa_test-token"
ANNOTATION_FIELDS = {"dashboardUID", "dashboardId", "panelId", "time", "timeEnd", "tags", "text"}


@dataclass
class FakeGrafana:
    """State of the stand-in: objects by uid, and every request as (method, path, body).

    ``failures`` holds statuses to answer the next annotation requests with, in order;
    ``headers`` the headers of every request, in the order of ``requests``.
    """

    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    boards: dict[str, dict[str, Any]] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


def documented(state: FakeGrafana, method: str, path: str, body: Any) -> tuple[int, Any]:
    """Answer one request as Grafana's HTTP API documents it."""
    bad = state.violations.append
    if method == "GET" and path.startswith("/api/datasources/uid/"):
        uid = path.rsplit("/", 1)[1]
        if uid not in state.datasources:
            return 404, {"message": "Data source not found"}
        return 200, state.datasources[uid]
    if method in ("POST", "PUT") and path.startswith("/api/datasources"):
        for key in ("name", "type", "access", "url", "uid"):
            if key not in body:
                bad(f"{method} {path}: datasource without {key}")
        if body.get("access") not in ("proxy", "direct"):
            bad(f"{method} {path}: access must be proxy or direct")
        if method == "POST":
            if path != "/api/datasources":
                bad(f"POST {path}: datasources are created at /api/datasources")
            if body["uid"] in state.datasources:
                return 409, {"message": "data source with the same uid already exists"}
            body = {**body, "id": len(state.datasources) + 1}
            state.datasources[body["uid"]] = body
            return 200, {"datasource": body, "id": body["id"], "message": "Datasource added"}
        uid = path.rsplit("/", 1)[1]
        if uid not in state.datasources:
            return 404, {"message": "Data source not found"}
        state.datasources[uid] = body
        return 200, {"datasource": body, "id": body.get("id"), "message": "Datasource updated"}
    if method == "GET" and path.startswith("/api/folders/"):
        uid = path.rsplit("/", 1)[1]
        if uid not in state.folders:
            return 404, {"message": "folder not found"}
        return 200, state.folders[uid]
    if method == "POST" and path == "/api/folders":
        if not body.get("title"):
            bad("POST /api/folders: title is required")
        if body.get("uid") in state.folders:
            return 412, {"message": "a folder with the same uid already exists"}
        folder = {
            "id": len(state.folders) + 1,
            "uid": body.get("uid"),
            "title": body["title"],
            "version": 1,
        }
        state.folders[str(folder["uid"])] = folder
        return 200, folder
    if method == "PUT" and path.startswith("/api/folders/"):
        uid = path.rsplit("/", 1)[1]
        if "version" not in body and not body.get("overwrite"):
            bad("PUT /api/folders/:uid needs version or overwrite")
        state.folders[uid]["title"] = body.get("title", state.folders[uid]["title"])
        return 200, state.folders[uid]
    if method == "POST" and path == "/api/dashboards/db":
        board = body.get("dashboard") or {}
        if not board.get("uid") or not board.get("title"):
            bad("POST /api/dashboards/db: dashboard needs uid and title")
        if body.get("folderUid") not in state.folders:
            bad("POST /api/dashboards/db: folderUid names no folder")
        old = state.boards.get(board.get("uid", ""))
        if old is not None and not body.get("overwrite"):
            return 412, {"status": "version-mismatch", "message": "dashboard changed"}
        version = (old or {}).get("version", 0) + 1
        state.boards[board["uid"]] = {**board, "version": version, "folderUid": body["folderUid"]}
        return 200, {
            "id": len(state.boards),
            "uid": board["uid"],
            "status": "success",
            "version": version,
            "url": f"/d/{board['uid']}/x",
            "slug": "x",
        }
    if method == "POST" and path == "/api/annotations":
        if state.failures:  # a Grafana in trouble: answered before the body is looked at
            code = state.failures.pop(0)
            return code, {"message": f"scripted {code}"}
        if not isinstance(body.get("time"), int) or not body.get("text"):
            bad("POST /api/annotations: time (epoch ms) and text are required")
        if not isinstance(body.get("tags"), list) or not all(
            isinstance(t, str) for t in body.get("tags", [])
        ):
            bad("POST /api/annotations: tags must be a list of strings")
        unknown = set(body) - ANNOTATION_FIELDS
        if unknown:
            bad(f"POST /api/annotations: fields Grafana does not know: {sorted(unknown)}")
        state.annotations.append(body)
        return 200, {"message": "Annotation added", "id": len(state.annotations)}
    bad(f"{method} {path}: not an endpoint push should call")
    return 404, {"message": "Not found"}


@contextmanager
def serve_grafana(token: str = TOKEN) -> Iterator[FakeGrafana]:
    """Run the stand-in on a free loopback port for the duration of the block."""
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with state.lock:
                state.requests.append((method, self.path, body))
                state.headers.append(dict(self.headers.items()))
                if self.headers.get("Authorization") != f"Bearer {token}":
                    code, reply = 401, {"message": "Unauthorized"}
                elif raw and "application/json" not in (self.headers.get("Content-Type") or ""):
                    state.violations.append(f"{method} {self.path}: body is not sent as JSON")
                    code, reply = 415, {"message": "unsupported media type"}
                else:
                    code, reply = documented(state, method, self.path, body)
            data = json.dumps(reply).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.answer("GET")

        def do_POST(self) -> None:
            self.answer("POST")

        def do_PUT(self) -> None:
            self.answer("PUT")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()

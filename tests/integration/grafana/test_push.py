"""``tutorstream grafana push`` and the annotation helper against a recording HTTP server.

Grafana itself cannot be installed here, so a small local HTTP server stands in for it. It
records every request and checks each one against Grafana's HTTP API documentation
(https://grafana.com/docs/grafana/latest/developers/http_api/): bearer authentication, JSON
bodies, ``GET/POST /api/datasources``, ``GET/PUT /api/datasources/uid/:uid``,
``GET/POST /api/folders`` and ``PUT /api/folders/:uid``, ``POST /api/dashboards/db`` with a
dashboard that has a uid and title, ``folderUid`` and ``overwrite``, and ``POST /api/annotations``.
It keeps what it was given, so a second push meets the objects the first one created. What it
cannot check is how Grafana renders the boards.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from tutorstream.cli import app
from tutorstream.grafana.boards import (
    FOLDER_UID,
    LEARNER_UID,
    PROMETHEUS_UID,
    STORE_UID,
    dashboards,
)
from tutorstream.grafana.push import StoreSource, annotate_intervention, connect_grafana, push

pytestmark = pytest.mark.integration

TOKEN = "glsa_test-token"


@dataclass
class FakeGrafana:
    """State of the stand-in: objects by uid, and every request as (method, path, body)."""

    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    boards: dict[str, dict[str, Any]] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    url: str = ""


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
        if not isinstance(body.get("time"), int) or not body.get("text"):
            bad("POST /api/annotations: time (epoch ms) and text are required")
        if not isinstance(body.get("tags"), list):
            bad("POST /api/annotations: tags must be a list")
        state.annotations.append(body)
        return 200, {"message": "Annotation added", "id": len(state.annotations)}
    bad(f"{method} {path}: not an endpoint push should call")
    return 404, {"message": "Not found"}


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            state.requests.append((method, self.path, body))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
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
    yield state
    server.shutdown()
    server.server_close()


def test_push_creates_then_updates_in_place(grafana: FakeGrafana) -> None:
    api = connect_grafana(grafana.url, TOKEN)
    first = push(api, StoreSource(password="s3cret"))
    assert first.datasources == {STORE_UID: "created", PROMETHEUS_UID: "created"}
    assert first.folder == "created"
    assert set(first.dashboards.values()) == {"success"}
    assert set(grafana.boards) == {b["uid"] for b in dashboards().values()}
    assert all(b["folderUid"] == FOLDER_UID for b in grafana.boards.values())
    store = grafana.datasources[STORE_UID]
    assert store["type"] == "grafana-postgresql-datasource"
    assert store["jsonData"]["timescaledb"] is True
    assert store["secureJsonData"] == {"password": "s3cret"}

    second = push(api, StoreSource(timescaledb=False))
    assert second.datasources == {STORE_UID: "updated", PROMETHEUS_UID: "updated"}
    assert second.folder == "unchanged"
    assert len(grafana.datasources) == 2 and len(grafana.folders) == 1
    assert {b["version"] for b in grafana.boards.values()} == {2}
    assert grafana.datasources[STORE_UID]["jsonData"]["timescaledb"] is False
    # A push without a password leaves the stored one alone: no secureJsonData sent.
    assert "secureJsonData" not in grafana.datasources[STORE_UID]
    saves = [body for method, path, body in grafana.requests if path == "/api/dashboards/db"]
    assert len(saves) == 8 and all(s["overwrite"] is True for s in saves)
    assert all(s["dashboard"]["id"] is None for s in saves)
    assert grafana.violations == []


def test_annotation_marks_the_learner_board(grafana: FakeGrafana) -> None:
    api = connect_grafana(grafana.url, TOKEN)
    when = datetime(2026, 3, 2, 9, 30, 5, 250000, tzinfo=UTC)
    ident = annotate_intervention(
        api, time=when, learner_id="ab12", state="gaming", status="sent", text="Slow down"
    )
    assert ident == 1
    (note,) = grafana.annotations
    assert note["dashboardUID"] == LEARNER_UID
    assert note["time"] == 1772443805250
    assert {"intervention", "gaming", "sent", "learner:ab12"} <= set(note["tags"])
    assert grafana.violations == []


def test_cli_push_reports_and_fails_cleanly_on_a_bad_token(grafana: FakeGrafana) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["grafana", "push", "--url", grafana.url, "--token", TOKEN])
    assert ok.exit_code == 0, ok.output
    assert f"datasource {STORE_UID}: created" in ok.output
    assert "dashboard class-overview.json: success" in ok.output
    refused = runner.invoke(app, ["grafana", "push", "--url", grafana.url, "--token", "wrong"])
    assert refused.exit_code == 1
    assert "401" in refused.output
    assert grafana.violations == []

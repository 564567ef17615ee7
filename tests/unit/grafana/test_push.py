"""``tutorstream grafana push`` against a recording HTTP server standing in for Grafana.

Grafana itself cannot be installed here, so the local server of
``tests/integration/grafana/recording.py`` stands in for it: it records every request and checks
each one against Grafana's HTTP API documentation (datasources, folders,
``POST /api/dashboards/db`` with ``overwrite``; see that module). It keeps what it was given, so
a second push meets the objects the first one created. What it cannot check is how Grafana
renders the boards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from tests.fake_grafana import TOKEN, FakeGrafana, serve_grafana
from tutorstream.cli import app
from tutorstream.grafana.boards import (
    CLASS_OVERVIEW_UID,
    FOLDER_UID,
    PROMETHEUS_UID,
    STORE_UID,
    dashboards,
)
from tutorstream.grafana.push import StoreSource, connect_grafana, push

pytestmark = pytest.mark.unit


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with serve_grafana() as state:
        yield state


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


def test_cli_push_points_the_boards_links_at_the_console(grafana: FakeGrafana) -> None:
    result = CliRunner().invoke(
        app,
        [
            "grafana",
            "push",
            "--url",
            grafana.url,
            "--token",
            TOKEN,
            "--console-url",
            "https://tutors.school.example/",
        ],
    )
    assert result.exit_code == 0, result.output
    consoles = {
        uid: [v["query"] for v in board["templating"].get("list", []) if v["name"] == "console"]
        for uid, board in grafana.boards.items()
    }
    assert consoles[CLASS_OVERVIEW_UID] == ["https://tutors.school.example"]
    assert sum(1 for found in consoles.values() if found) == 3

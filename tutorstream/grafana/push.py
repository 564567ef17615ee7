"""Put the boards into a running Grafana through its HTTP API (grafana-client).

:func:`push` creates or updates the two datasources, the folder and every board, and can run
any number of times: datasources and the folder are looked up by UID first and updated in
place, boards are saved with ``overwrite``. Workers annotate interventions themselves
(:mod:`streams.annotations`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from tutorstream.grafana.boards import (
    DEFAULT_CONSOLE_URL,
    FOLDER_TITLE,
    FOLDER_UID,
    STORE_UID,
    dashboards,
    datasources,
)

NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class StoreSource:
    """How Grafana's server reaches the store and Prometheus.

    Attributes:
        host: ``host:port`` of the store.
        database: its database.
        user: a login member of the store's read-only ``tutorstream_reader`` role.
        password: that role's password; ``None`` leaves a stored one as it is.
        timescaledb: the store runs TimescaleDB.
        prometheus_url: URL of Prometheus.
    """

    host: str = "timescaledb:5432"
    database: str = "tutorstream"
    user: str = "grafana_reader"
    password: str | None = None
    timescaledb: bool = True
    prometheus_url: str = "http://prometheus:9090"


@dataclass(slots=True)
class PushReport:
    """What :func:`push` did: ``created`` or ``updated`` per datasource, folder and board."""

    datasources: dict[str, str] = field(default_factory=dict)
    folder: str = ""
    dashboards: dict[str, str] = field(default_factory=dict)


def connect_grafana(url: str, token: str, *, timeout: float = 10.0) -> Any:
    """Return a grafana-client API object for ``url``, authenticating with a bearer token."""
    return GrafanaApi.from_url(url, credential=token, timeout=timeout)


def _missing(err: GrafanaClientError) -> bool:
    return bool(err.status_code == NOT_FOUND)


def _push_datasource(api: Any, source: Mapping[str, Any]) -> str:
    uid = str(source["uid"])
    try:
        existing = api.datasource.get_datasource_by_uid(uid)
    except GrafanaClientError as err:
        if not _missing(err):
            raise
        api.datasource.create_datasource(dict(source))
        return "created"
    api.datasource.update_datasource_by_uid(uid, {**source, "id": existing.get("id")})
    return "updated"


def _push_folder(api: Any) -> str:
    try:
        existing = api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as err:
        if not _missing(err):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        return "created"
    if existing.get("title") != FOLDER_TITLE:
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        return "updated"
    return "unchanged"


def push(
    api: Any,
    source: StoreSource | None = None,
    *,
    boards: Mapping[str, Mapping[str, Any]] | None = None,
    console_url: str = DEFAULT_CONSOLE_URL,
) -> PushReport:
    """Create or update the datasources, the folder and the boards in Grafana.

    Args:
        api: from :func:`connect_grafana`.
        source: where Grafana finds the store and Prometheus.
        boards: board JSON by file name; every board of :mod:`tutorstream.grafana.boards`
            when ``None``.
        console_url: base URL of the tutors' console that the boards' links open (ignored
            when ``boards`` is given).

    Returns:
        What was created and updated.

    Raises:
        grafana_client.client.GrafanaException: when Grafana refuses a request.
        ValueError: when ``console_url`` is not an http(s) URL (before anything is sent).
    """
    source = source or StoreSource()
    boards = boards if boards is not None else dashboards(console_url)
    report = PushReport()
    for entry in datasources(
        source.host,
        source.database,
        source.user,
        source.prometheus_url,
        timescaledb=source.timescaledb,
    ):
        if entry["uid"] == STORE_UID and source.password is not None:
            entry["secureJsonData"] = {"password": source.password}
        report.datasources[entry["uid"]] = _push_datasource(api, entry)
    report.folder = _push_folder(api)
    for name, board in boards.items():
        body = {
            # Grafana matches an existing board by uid when id is null, so a re-push updates it.
            "dashboard": {**board, "id": None},
            "folderUid": FOLDER_UID,
            "overwrite": True,
            "message": "tutorstream grafana push",
        }
        answer = api.dashboard.update_dashboard(body)
        report.dashboards[name] = str(answer.get("status", "success"))
    return report

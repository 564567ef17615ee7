"""The SQL each board sends to the store, found by walking the boards' JSON.

Used by the tests that run every query against the store, and by anything that times them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tutorstream.grafana.boards import STORE_UID, dashboards
from tutorstream.grafana.macros import parse_interval


@dataclass(frozen=True, slots=True)
class BoardQuery:
    """One SQL query of a board.

    Attributes:
        board: the board's file name.
        title: the panel's title, ``variable <name>`` or ``annotation <name>``.
        kind: the panel type (``timeseries``, ``table``...), ``variable`` or ``annotation``.
        fmt: the target's format, ``time_series`` or ``table``.
        sql: the raw SQL with macros and variables unexpanded.
        min_interval: the panel's minimum interval, if it sets one.
        options: the panel's options (``xField`` of a bar chart, for instance).
        unit: the panel's default unit (``s``, ``percentunit``...), if it sets one.
    """

    board: str
    title: str
    kind: str
    fmt: str
    sql: str
    min_interval: timedelta | None = None
    options: Mapping[str, Any] | None = None
    unit: str | None = None


def _is_store(ref: Any) -> bool:
    return isinstance(ref, dict) and ref.get("uid") == STORE_UID


def board_queries(boards: Mapping[str, Mapping[str, Any]] | None = None) -> Iterator[BoardQuery]:
    """Yield every SQL query of the boards: panels' targets, variables and annotations."""
    for name, board in (boards if boards is not None else dashboards()).items():
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query" and _is_store(variable.get("datasource")):
                yield BoardQuery(
                    name,
                    f"variable {variable['name']}",
                    "variable",
                    "table",
                    str(variable["query"]),
                )
        for annotation in board.get("annotations", {}).get("list", []):
            target = annotation.get("target") or {}
            if _is_store(annotation.get("datasource")) and "rawSql" in target:
                yield BoardQuery(
                    name,
                    f"annotation {annotation['name']}",
                    "annotation",
                    "table",
                    str(target["rawSql"]),
                )
        for panel in board.get("panels", []):
            interval = panel.get("interval")
            for target in panel.get("targets", []):
                if "rawSql" not in target:
                    continue
                yield BoardQuery(
                    name,
                    str(panel["title"]),
                    str(panel["type"]),
                    str(target.get("format", "time_series")),
                    str(target["rawSql"]),
                    parse_interval(interval) if interval else None,
                    panel.get("options"),
                    panel.get("fieldConfig", {}).get("defaults", {}).get("unit"),
                )

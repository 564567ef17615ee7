"""Grafana's SQL macros and template variables, expanded the way Grafana expands them.

Grafana sends a PostgreSQL panel's ``rawSql`` through two steps before the database sees it:
the dashboard replaces template variables (``$class``, ``${learner}``, ``$__interval``), then
the PostgreSQL datasource expands its macros (``$__timeFilter(col)``,
``$__timeGroupAlias(col, 5m)``, ``$__timeFrom()``...). This module repeats both steps so the
boards' queries can be run, tested and timed against the store without a Grafana server.

A single-valued variable is inserted raw with single quotes doubled; a multi-valued one (or
one with "All") as a comma-separated list of quoted literals, which is what Grafana's SQL
datasources do. ``$__timeGroup`` uses ``time_bucket`` when the datasource is marked as
TimescaleDB and ``floor(extract(epoch ...))`` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

_INTERVAL = re.compile(r"^\s*'?(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)'?\s*$")
_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}
_MACRO = re.compile(r"\$(__[_a-zA-Z0-9]+)\(([^)]*)\)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LINK_VARIABLE = re.compile(r"\$\{([\w.]+)(?::(\w+))?\}|\$([A-Za-z_]\w*)")
# Variables whose value is already a piece of a query string: Grafana inserts them unformatted.
_PREFORMATTED = frozenset({"__url_time_range", "__all_variables"})


class MacroError(ValueError):
    """A macro Grafana would refuse: unknown name or wrong arguments."""


def parse_interval(text: str) -> timedelta:
    """Parse a Grafana interval (``30s``, ``5m``, ``1h``, ``'1d'``) to a duration.

    Raises:
        MacroError: when ``text`` is not an interval.
    """
    match = _INTERVAL.match(text)
    if match is None:
        raise MacroError(f"not an interval: {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def format_interval(value: timedelta) -> str:
    """Format a duration the way ``$__interval`` shows it (``1m``, ``2h``, ``500ms``)."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def _rfc3339(moment: datetime) -> str:
    text = moment.astimezone().isoformat() if moment.tzinfo is None else moment.isoformat()
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class QueryContext:
    """What a panel query is expanded with: time range, interval and variable values.

    Attributes:
        time_from: start of the dashboard's time range (timezone-aware).
        time_to: end of the time range.
        interval: the panel's ``$__interval``.
        variables: template variable values; a sequence stands for a multi-value selection.
        timescaledb: the datasource has its TimescaleDB option on.
    """

    time_from: datetime
    time_to: datetime
    interval: timedelta = timedelta(minutes=1)
    variables: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    timescaledb: bool = False


def _variable_value(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value.replace("'", "''")
    return ",".join("'" + v.replace("'", "''") + "'" for v in value)


def _time_group(args: list[str], context: QueryContext, alias: bool) -> str:
    if len(args) < 2:
        raise MacroError("$__timeGroup needs a column and an interval")
    column = args[0]
    seconds = parse_interval(args[1]).total_seconds()
    if context.timescaledb:
        text = f"time_bucket('{seconds:.0f}s',{column})"
    else:
        text = f"floor(extract(epoch from {column})/{seconds:g})*{seconds:g}"
    return f'{text} AS "time"' if alias else text


def _macro(name: str, raw_args: str, context: QueryContext) -> str:
    args = [a.strip() for a in raw_args.split(",")] if raw_args.strip() else []
    start, end = _rfc3339(context.time_from), _rfc3339(context.time_to)
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        if len(args) != 1:
            raise MacroError("$__timeFilter takes one column")
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"
    if name == "__timeFrom":
        return f"'{start}'"
    if name == "__timeTo":
        return f"'{end}'"
    if name == "__timeGroup":
        return _time_group(args, context, alias=False)
    if name == "__timeGroupAlias":
        return _time_group(args, context, alias=True)
    if name == "__unixEpochFilter":
        lo, hi = int(context.time_from.timestamp()), int(context.time_to.timestamp())
        return f"{args[0]} >= {lo} AND {args[0]} <= {hi}"
    raise MacroError(f"unknown macro ${name}")


def expand(sql: str, context: QueryContext) -> str:
    """Return ``sql`` as the database receives it from Grafana.

    Raises:
        MacroError: on an unknown macro or a variable without a value.
    """
    interval_ms = round(context.interval.total_seconds() * 1000)
    text = re.sub(r"\$__interval_ms\b", str(interval_ms), sql)
    text = re.sub(r"\$__interval\b", format_interval(context.interval), text)

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name.startswith("__"):
            return match.group(0)
        if name not in context.variables:
            raise MacroError(f"no value for template variable ${name}")
        return _variable_value(context.variables[name])

    text = _VARIABLE.sub(variable, text)
    return _MACRO.sub(lambda m: _macro(m.group(1), m.group(2), context), text)


def expand_promql(
    expr: str, *, interval: timedelta, scrape_interval: timedelta, time_range: timedelta
) -> str:
    """Return a PromQL expression with Grafana's range variables filled in.

    ``$__rate_interval`` is ``max($__interval + scrape interval, 4 * scrape interval)``, as
    Grafana's Prometheus datasource computes it; ``$__range`` is the dashboard's time range.
    """
    rate = max(interval + scrape_interval, 4 * scrape_interval)
    text = re.sub(r"\$__rate_interval\b", format_interval(rate), expr)
    text = re.sub(r"\$__range\b", format_interval(time_range), text)
    return re.sub(r"\$__interval\b", format_interval(interval), text)


def expand_link(url: str, variables: Mapping[str, str]) -> str:
    """Return a panel or data link's ``url`` as a browser opens it from Grafana.

    ``variables`` holds the board's variables and the data link's own (``__value.raw``,
    ``__url_time_range``...). A variable is inserted with its format: ``raw`` as it is,
    ``percentencode`` as ``encodeURIComponent`` with ``!'()*`` encoded too (Grafana's strict
    form); without a format, percent-encoded, which is what Grafana 10 and later do in links.

    Raises:
        MacroError: on a variable without a value or a format this does not know.
    """

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2)
        if name not in variables:
            raise MacroError(f"no value for the link's variable ${name}")
        value = variables[name]
        if name in _PREFORMATTED or fmt == "raw":
            return value
        if fmt in (None, "percentencode"):
            return quote(value, safe="")
        raise MacroError(f"unknown format :{fmt} of ${name} in a link")

    return _LINK_VARIABLE.sub(variable, url)

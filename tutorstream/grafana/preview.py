"""Static PNG previews of the tutor boards, drawn from the same SQL Grafana would send.

Grafana cannot run here, so this draws each store-backed panel with matplotlib (time series
as lines or stacked bars, the heatmap as an image, tables as text, stats as numbers) to show a
person roughly what a tutor would see. One PNG per board. The Prometheus board is not drawn.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from streams.store import connect
from tutorstream.grafana.boards import dashboards
from tutorstream.grafana.macros import QueryContext, expand
from tutorstream.grafana.queries import BoardQuery, board_queries

Result = tuple[list[str], list[tuple[Any, ...]]]


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(float(value), UTC)


def _x(values: Sequence[datetime]) -> npt.NDArray[np.datetime64]:
    # matplotlib draws numpy datetimes as dates; naive UTC, as numpy has no time zones.
    naive = [v.astimezone(UTC).replace(tzinfo=None) for v in values]
    return np.array(naive, dtype="datetime64[ms]")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    return None


def _short(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%m-%d %H:%M")
    number = _number(value)
    if number is not None and not isinstance(value, int):
        return f"{number:.2f}"
    text = str(value)
    # Pseudonyms are 64 hex characters; a prefix tells learners apart on a preview.
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:10] + "…"
    return text[:23] + "…" if len(text) > 24 else text


def _series(ax: Axes, columns: list[str], rows: list[tuple[Any, ...]], bars: bool) -> None:
    if "metric" in columns:
        t, m, v = columns.index("time"), columns.index("metric"), columns.index("value")
        by_metric: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        for row in rows:
            by_metric[str(row[m])].append((_time(row[t]), _number(row[v]) or 0.0))
        if bars:
            times = sorted({x for points in by_metric.values() for x, _ in points})
            bottom = dict.fromkeys(times, 0.0)
            for name, points in sorted(by_metric.items()):
                values = dict(points)
                heights = [values.get(x, 0.0) for x in times]
                ax.bar(
                    _x(times),
                    heights,
                    bottom=[bottom[x] for x in times],
                    label=name,
                    width=np.timedelta64(50, "s"),
                )
                for x, h in zip(times, heights, strict=True):
                    bottom[x] += h
        else:
            for name, points in sorted(by_metric.items()):
                ax.plot(_x([x for x, _ in points]), [y for _, y in points], label=name)
    else:
        t = columns.index("time")
        for i, name in enumerate(columns):
            if i != t:
                ax.plot(
                    _x([_time(r[t]) for r in rows]),
                    [_number(r[i]) or float("nan") for r in rows],
                    ".",
                    label=name,
                )
    ax.xaxis_date()
    ax.legend(fontsize=6, loc="upper left")
    ax.tick_params(labelsize=6)


def _heatmap(ax: Axes, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    t, m, v = columns.index("time"), columns.index("metric"), columns.index("value")
    times = sorted({_time(r[t]) for r in rows})
    skills = sorted({str(r[m]) for r in rows})
    grid = [[float("nan")] * len(times) for _ in skills]
    for row in rows:
        grid[skills.index(str(row[m]))][times.index(_time(row[t]))] = _number(row[v]) or 0.0
    image = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=0, vmax=1)
    ax.set_yticks(range(len(skills)), skills, fontsize=6)
    ax.set_xticks(range(len(times)), [x.strftime("%H:%M") for x in times], fontsize=6)
    ax.figure.colorbar(image, ax=ax)


def _table(ax: Axes, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    ax.axis("off")
    cells = [[_short(v) for v in row] for row in rows[:10]]
    if cells:
        table = ax.table(cellText=cells, colLabels=columns, loc="upper center")
        table.auto_set_font_size(False)
        table.set_fontsize(6)
        table.auto_set_column_width(list(range(len(columns))))  # long prompts and reasons


def _with_unit(value: Any, unit: str | None) -> str:
    # the few units the boards' stat panels use, shown as Grafana would
    number = _number(value)
    if number is None or unit is None:
        return _short(value)
    if unit == "s":
        for size, name in ((86400, "day"), (3600, "h"), (60, "min")):
            if number >= size:
                return f"{number / size:.1f} {name}"
        return f"{number:.0f} s"
    if unit == "percentunit":
        return f"{number:.0%}"
    return f"{_short(value)} {unit}"


def _stat(
    ax: Axes, columns: list[str], rows: list[tuple[Any, ...]], unit: str | None = None
) -> None:
    ax.axis("off")
    values = rows[0] if rows else ()
    text = "\n".join(f"{c}: {_with_unit(v, unit)}" for c, v in zip(columns, values, strict=False))
    ax.text(0.5, 0.5, text or "no data", ha="center", va="center", fontsize=12)


def _bars(ax: Axes, query: BoardQuery, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    x_field = str((query.options or {}).get("xField", columns[0]))
    x = columns.index(x_field)
    numeric = [i for i in range(len(columns)) if i != x]
    width = 0.8 / max(len(numeric), 1)
    for k, i in enumerate(numeric):
        ax.bar(
            [n + k * width for n in range(len(rows))],
            [_number(r[i]) or 0.0 for r in rows],
            width=width,
            label=columns[i],
        )
    ax.set_xticks(range(len(rows)), [str(r[x]) for r in rows], fontsize=6, rotation=20)
    ax.legend(fontsize=6)


def _state_timeline(ax: Axes, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    t = columns.index("time")
    s = next(i for i in range(len(columns)) if i != t)
    states = sorted({str(r[s]) for r in rows})
    ax.scatter(_x([_time(r[t]) for r in rows]), [states.index(str(r[s])) for r in rows], s=8)
    ax.set_yticks(range(len(states)), states, fontsize=6)
    ax.xaxis_date()
    ax.tick_params(axis="x", labelsize=6)


def draw(ax: Axes, query: BoardQuery, result: Result) -> None:
    """Draw one panel's result on ``ax`` the way its panel type shows it."""
    columns, rows = result
    ax.set_title(query.title, fontsize=8)
    if not rows:
        ax.axis("off")
        ax.text(0.5, 0.5, "no data", ha="center", va="center")
    elif query.kind == "heatmap":
        _heatmap(ax, columns, rows)
    elif query.kind == "timeseries":
        _series(ax, columns, rows, bars="over time" in query.title or "status" in query.title)
    elif query.kind == "state-timeline":
        _state_timeline(ax, columns, rows)
    elif query.kind == "stat":
        _stat(ax, columns, rows, query.unit)
    elif query.kind == "barchart":
        _bars(ax, query, columns, rows)
    else:
        _table(ax, columns, rows)


def render_previews(
    url: str,
    schema: str,
    out: Path,
    context: QueryContext,
) -> list[Path]:
    """Write one PNG per store-backed board under ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    panels: Mapping[str, list[BoardQuery]] = defaultdict(list)
    for query in board_queries(dashboards()):
        if query.kind not in ("variable", "annotation"):
            panels[query.board].append(query)
    written = []
    with connect(url, schema=schema, connect_timeout=30) as conn:
        for board, queries in panels.items():
            cols = 2
            rows_n = (len(queries) + cols - 1) // cols
            figure, axes = plt.subplots(rows_n, cols, figsize=(14, 3.6 * rows_n), squeeze=False)
            flat: Sequence[Axes] = [a for row in axes for a in row]
            for ax, query in zip(flat, queries, strict=False):
                cursor = conn.execute(expand(query.sql, context).encode())
                result = ([c.name for c in cursor.description or []], cursor.fetchall())
                draw(ax, query, result)
            for ax in flat[len(queries) :]:
                ax.axis("off")
            figure.suptitle(f"{board.removesuffix('.json')} — class {context.variables['class']}")
            figure.tight_layout()
            path = out / board.replace(".json", ".png")
            figure.savefig(path, dpi=90)
            plt.close(figure)
            written.append(path)
    return written

"""Time every board query on a store holding a year of a simulated class.

The store is filled through the sink (COPY on PostgreSQL), the fallback's aggregates are
materialised (TimescaleDB: refreshed), and each panel's SQL is expanded as Grafana would for
the board's default time range, for 30 days and for the whole year, then run ``runs`` times
after one warm-up run.
Queries reading an aggregate are also run against the raw table they aggregate (same columns,
one row per raw row): that is the baseline, and the ratio is what the aggregate buys.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from streams.store import connect, migrate, refresh_aggregates, status
from tutorstream.bench.report import ratio
from tutorstream.cohort import simulate_class
from tutorstream.grafana.boards import dashboards
from tutorstream.grafana.macros import QueryContext, expand, format_interval, parse_interval
from tutorstream.grafana.queries import BoardQuery, board_queries
from tutorstream.grafana.sample import (
    SampleSummary,
    act_on_interventions,
    sample_batches,
    stretched_events,
    write_batches,
)

FLOOR_MS: Final = 300.0
"""Every panel's p99 must stay under this."""

# Each aggregate rewritten as a scan of its raw table with the same columns.
RAW_EQUIVALENT: Final = {
    "class_states_1m": "(SELECT time AS bucket, class_id, state, 1::bigint AS predictions, "
    "confidence::double precision AS mean_confidence FROM predictions) AS class_states_1m",
    "class_interventions_1m": "(SELECT time AS bucket, class_id, state, status, "
    "1::bigint AS interventions FROM interventions) AS class_interventions_1m",
    "class_skill_mastery_1h": "(SELECT time AS bucket, class_id, skill_id, 1::bigint AS "
    "estimates, mastery::double precision AS mean_mastery FROM skill_mastery) "
    "AS class_skill_mastery_1h",
}
_NICE: Final = tuple(
    timedelta(seconds=s) for s in (60, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 86400)
)
# Grafana's maxDataPoints for a panel about 1000 pixels wide.
_POINTS: Final = 1000

Progress = Callable[[str], None]


@dataclass(slots=True)
class QueryTiming:
    """Timings of one query in one time range, in milliseconds."""

    board: str
    panel: str
    range: str
    rows: int
    median_ms: float
    p99_ms: float
    raw_median_ms: float | None = None

    @property
    def aggregate_speedup(self) -> float | None:
        """Raw-table median over aggregate median, when the query reads an aggregate."""
        if self.raw_median_ms is None or self.median_ms == 0:
            return None
        return ratio(self.raw_median_ms, self.median_ms)


@dataclass(slots=True)
class BoardsBench:
    """The benchmark's result."""

    mode: str
    learners: int
    events: int
    rows: dict[str, int]
    load_seconds: float
    runs: int
    timings: list[QueryTiming] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        data = asdict(self)
        for timing, entry in zip(self.timings, data["timings"], strict=True):
            entry["aggregate_speedup"] = timing.aggregate_speedup
            entry["under_floor"] = timing.p99_ms < FLOOR_MS
        data["floor_ms"] = FLOOR_MS
        data["all_under_floor"] = all(t.p99_ms < FLOOR_MS for t in self.timings)
        return data


def grafana_interval(span: timedelta, minimum: timedelta | None) -> timedelta:
    """The ``$__interval`` Grafana picks for ``span`` (rounded up to a round step)."""
    raw = span / _POINTS
    step = next((n for n in _NICE if n >= raw), _NICE[-1])
    return max(step, minimum or timedelta(minutes=1))


def _default_span(board: dict[str, Any]) -> timedelta:
    match = re.fullmatch(r"now-(\d+[smhdwy])", str(board["time"]["from"]))
    return parse_interval(match.group(1)) if match else timedelta(days=1)


def _raw(sql: str) -> str | None:
    rewritten = sql
    for name, raw in RAW_EQUIVALENT.items():
        rewritten = rewritten.replace(f"FROM {name}\n", f"FROM {raw}\n")
    return rewritten if rewritten != sql else None


def load_year(
    url: str,
    schema: str,
    *,
    learners: int,
    problems: int,
    seed: int,
    end: datetime,
    progress: Progress,
) -> tuple[SampleSummary, float]:
    """Migrate ``schema`` and fill it with a year of a simulated class; return the time."""
    migrate(url, schema=schema)
    columns = simulate_class(learners, problems, seed)
    total = len(columns)
    summary = SampleSummary()
    started = time.perf_counter()
    written = 0
    last_report = 0.0

    def report(rows: int) -> None:
        nonlocal written, last_report
        written = summary.events
        now = time.perf_counter()
        if now - last_report < 5 and written < total:
            return
        last_report = now
        rate = written / max(now - started, 1e-9)
        eta = (total - written) / rate if rate else float("inf")
        progress(f"  loaded {written:,}/{total:,} events ({rate:,.0f}/s, ETA {eta:,.0f} s)")

    span = timedelta(days=365)
    batches = sample_batches(
        stretched_events(columns, end=end, span=span),
        seed=seed,
        version_switch=end - span / 2,
        batch_events=5000,
        summary=summary,
    )
    write_batches(url, schema, batches, progress=report)
    summary.acted = act_on_interventions(url, schema)
    progress("  refreshing aggregates")
    refresh_aggregates(url, schema=schema, now=end, full=True)
    with connect(url, schema=schema) as conn:
        conn.execute("ANALYZE")
    return summary, time.perf_counter() - started


def _choose_variables(url: str, schema: str, end: datetime) -> dict[str, str]:
    with connect(url, schema=schema) as conn:
        row = conn.execute(
            "SELECT class_id, learner_id FROM interventions WHERE time > %s "
            "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1",
            (end - timedelta(days=7),),
        ).fetchone()
    if row is None:
        raise RuntimeError("the loaded store has no intervention in its last week")
    return {"class": str(row[0]), "learner": str(row[1]), "window": "10"}


def _time(conn: Any, sql: str, runs: int) -> tuple[list[float], int]:
    rows = len(conn.execute(sql.encode()).fetchall())  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        conn.execute(sql.encode()).fetchall()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, rows


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def time_queries(
    url: str, schema: str, *, end: datetime, runs: int, progress: Progress
) -> list[QueryTiming]:
    """Time every board query against the loaded store."""
    variables = _choose_variables(url, schema, end)
    timescaledb = status(url, schema=schema).mode.value == "timescaledb"
    boards = dashboards()
    queries: list[BoardQuery] = list(board_queries(boards))
    timings = []
    with connect(url, schema=schema) as conn:
        for query in queries:
            default = _default_span(boards[query.board])
            spans = dict.fromkeys((default, timedelta(days=30), timedelta(days=365)))
            for span in spans:
                label = f"last {format_interval(span)}"
                context = QueryContext(
                    end - span,
                    end,
                    grafana_interval(span, query.min_interval),
                    variables,
                    timescaledb,
                )
                samples, rows = _time(conn, expand(query.sql, context), runs)
                raw_sql = _raw(query.sql)
                raw_median = None
                if raw_sql is not None:
                    raw_samples, _ = _time(conn, expand(raw_sql, context), max(3, runs // 3))
                    raw_median = statistics.median(raw_samples)
                timing = QueryTiming(
                    query.board,
                    query.title,
                    label,
                    rows,
                    statistics.median(samples),
                    _p99(samples),
                    raw_median,
                )
                timings.append(timing)
                progress(
                    f"  {query.board} / {query.title} [{label}]: "
                    f"p50 {timing.median_ms:.1f} ms, p99 {timing.p99_ms:.1f} ms"
                )
    return timings


def run_boards_bench(
    url: str,
    *,
    schema: str = "bench_boards",
    learners: int = 500,
    problems: int = 300,
    seed: int = 5,
    runs: int = 20,
    progress: Progress = print,
) -> BoardsBench:
    """Load a year for ``learners`` into ``schema`` (dropped first) and time every query."""
    with connect(url) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    progress(f"simulating {learners} learners x {problems} problems, spread over a year")
    summary, seconds = load_year(
        url, schema, learners=learners, problems=problems, seed=seed, end=end, progress=progress
    )
    mode = status(url, schema=schema).mode.value
    with connect(url, schema=schema) as conn:
        rows = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in (
                "events",
                "predictions",
                "skill_mastery",
                "interventions",
                "recommendations",
            )
        }
    progress("timing queries")
    timings = time_queries(url, schema, end=end, runs=runs, progress=progress)
    return BoardsBench(mode, learners, summary.events, rows, seconds, runs, timings)


def format_table(bench: BoardsBench) -> str:
    """Return the result as a fixed-width table."""
    lines = [
        f"store: {bench.mode}, {bench.learners} learners, {bench.events:,} events over a year "
        f"(loaded in {bench.load_seconds:.0f} s); {bench.runs} runs per query",
        f"{'board / panel':<70} {'range':<10} {'rows':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'raw/agg':>8} floor",
    ]
    for t in bench.timings:
        speedup = t.aggregate_speedup
        lines.append(
            f"{(t.board.removesuffix('.json') + ' / ' + t.panel)[:70]:<70} {t.range:<10} "
            f"{t.rows:>6} {t.median_ms:>8.1f} {t.p99_ms:>8.1f} "
            f"{(f'{speedup:.1f}x' if speedup else '-'):>8} "
            f"{'ok' if t.p99_ms < FLOOR_MS else 'OVER'}"
        )
    return "\n".join(lines)

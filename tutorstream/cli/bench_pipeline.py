"""`tutorstream bench pipeline`: end-to-end throughput and event-to-intervention latency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer


def pipeline(
    learners: Annotated[int, typer.Option(min=1, help="Learners in the simulated cohort.")] = 500,
    events: Annotated[
        int, typer.Option(min=100, help="Events for the throughput phase.")
    ] = 100_000,
    rate: Annotated[float, typer.Option(min=1, help="Offered load of the latency phase.")] = 2000,
    latency_events: Annotated[
        int, typer.Option(min=100, help="Events offered in the latency phase.")
    ] = 40_000,
    workers: Annotated[
        int, typer.Option(min=1, max=12, help="Worker processes sharing the partitions.")
    ] = 1,
    smoke: Annotated[bool, typer.Option(help="A small run, for CI.")] = False,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path(
        "bench-results/pipeline.json"
    ),
) -> None:
    """Sustained events/s to durable rows, and p50/p95/p99 event-to-intervention latency."""
    from tutorstream.bench_pipeline import format_table, run_pipeline_bench

    if smoke:
        learners, events, latency_events, rate = 20, 2000, 1000, 500
    report = run_pipeline_bench(
        learners,
        events,
        rate,
        latency_events,
        progress=lambda m: typer.echo(m, err=True),
        workers=workers,
    )
    typer.echo(format_table(report))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    typer.echo(f"wrote {out}")

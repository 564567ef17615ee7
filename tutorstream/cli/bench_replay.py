"""`tutorstream bench replay`: events/s replayed in export (JSONL, Parquet) and rebuild modes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer


def replay(
    learners: Annotated[int, typer.Option(min=1, help="Learners in the simulated cohort.")] = 500,
    events: Annotated[int, typer.Option(min=100, help="Events to replay.")] = 100_000,
    smoke: Annotated[bool, typer.Option(help="A small run, for CI.")] = False,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path(
        "bench-results/replay.json"
    ),
) -> None:
    """Events/s of a replay in export and rebuild modes, against a plain Kafka read."""
    from tutorstream.bench_replay import format_table, run_replay_bench

    if smoke:
        learners, events = 20, 2000
    report = run_replay_bench(learners, events, say=lambda m: typer.echo(m, err=True))
    typer.echo(format_table(report))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    typer.echo(f"wrote {out}")

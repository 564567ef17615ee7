"""`tutorstream bench boards`: median and p99 of every board query on a year of a class."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer


def boards(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="PostgreSQL or TimescaleDB URL; default: a throwaway embedded PostgreSQL.",
            show_default=False,
        ),
    ] = None,
    learners: Annotated[int, typer.Option(min=1, help="Learners in the class.")] = 500,
    problems: Annotated[
        int, typer.Option(min=2, help="Mean problems per learner over the year.")
    ] = 300,
    runs: Annotated[int, typer.Option(min=3, help="Timed runs per query.")] = 20,
    schema: Annotated[str, typer.Option(help="Schema to load (dropped first).")] = ("bench_boards"),
    smoke: Annotated[bool, typer.Option(help="A small class and few runs, for CI.")] = False,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path(
        "bench-results/boards.json"
    ),
) -> None:
    """Load a year of a simulated class through the sink, then time every panel's SQL."""
    from tutorstream import services
    from tutorstream.grafana.bench import format_table, run_boards_bench

    if smoke:
        learners, problems, runs = 60, 20, 3

    def progress(message: str) -> None:
        typer.echo(message, err=True)

    with tempfile.TemporaryDirectory(prefix="bench-boards-") as scratch:
        server = None
        if url is None:
            progress("starting an embedded PostgreSQL")
            server = services.start_postgres(
                Path(scratch) / "pg", Path(scratch) / "logs", durable=False
            )
            url = server.url
        try:
            result = run_boards_bench(
                url,
                schema=schema,
                learners=learners,
                problems=problems,
                runs=runs,
                progress=progress,
            )
        finally:
            if server is not None:
                server.stop()
    report = result.to_dict()
    report["smoke"] = smoke
    typer.echo(format_table(result))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n", "utf-8")
    typer.echo(f"wrote {out}")

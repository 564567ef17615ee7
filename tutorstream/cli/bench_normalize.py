"""`tutorstream bench normalize`: inbound records normalised per second per core, by format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from schemas.bench import run_benchmark, table


def normalize(
    events: Annotated[
        int, typer.Option(min=100, help="Distinct records generated per format.")
    ] = 20_000,
    rounds: Annotated[int, typer.Option(min=1, help="Passes over each corpus.")] = 5,
    smoke: Annotated[bool, typer.Option(help="A small corpus and one pass, for CI.")] = False,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path(
        "bench-results/normalize.json"
    ),
) -> None:
    """Events/s normalised per core for xAPI, Caliper and native, against json.loads and orjson."""
    if smoke:
        events, rounds = 1_000, 1
    report = run_benchmark(events, rounds, progress=typer.echo)
    report["smoke"] = smoke
    typer.echo("")
    for line in table(report):
        typer.echo(line)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    typer.echo(f"wrote {out}")

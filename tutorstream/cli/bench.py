"""`tutorstream bench <what>`: benchmarks that print a table and write JSON."""

from __future__ import annotations

import typer

from tutorstream.cli import (
    bench_api,
    bench_boards,
    bench_console,
    bench_inference,
    bench_normalize,
    bench_pipeline,
    bench_replay,
)

app = typer.Typer(no_args_is_help=True, help="Benchmarks: each prints a table and writes JSON.")

app.command("inference")(bench_inference.inference)
app.command("normalize")(bench_normalize.normalize)
app.command("api")(bench_api.api)
app.command("pipeline")(bench_pipeline.pipeline)
app.command("boards")(bench_boards.boards)
app.command("replay")(bench_replay.replay)
app.command("console")(bench_console.console)

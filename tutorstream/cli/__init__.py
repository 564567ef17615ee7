"""The ``tutorstream`` command line; each command group lives in its own module."""

from __future__ import annotations

import typer

from tutorstream.cli import (
    api,
    bench,
    chaos,
    db,
    demo,
    dlq,
    grafana,
    keys,
    model,
    produce,
    profiles,
    replay,
    stack,
    topics,
    worker,
)

app = typer.Typer(
    name="tutorstream",
    help="Learning events in, tutor-reviewed metacognitive interventions out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(topics.app, name="topics")
app.add_typer(model.app, name="model")
app.add_typer(db.app, name="db")
app.add_typer(bench.app, name="bench")
app.add_typer(keys.app, name="keys")
app.add_typer(grafana.app, name="grafana")
app.add_typer(replay.app, name="replay")
app.add_typer(dlq.app, name="dlq")
app.add_typer(profiles.app, name="profiles")
app.command("produce")(produce.produce)
app.command("worker")(worker.worker)
app.command("demo")(demo.demo)
app.command("api")(api.api)
app.command("chaos")(chaos.chaos)


def main() -> None:
    """Run the command line."""
    app()

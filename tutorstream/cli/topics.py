"""`tutorstream topics create | list | check | inspect`: the topic catalogue on any broker."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from schemas.topics import CATALOGUE, DAY_MS, CleanupPolicy, TopicSpec
from tutorstream import kafka
from tutorstream.cli.topics_inspect import inspect
from tutorstream.cli.topics_retention import check
from tutorstream.settings import Settings
from tutorstream.stack import StackError, kafka_bootstrap

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "The topics of the catalogue (schemas/topics.py) on the broker of "
        "TUTORSTREAM_KAFKA_BOOTSTRAP, or the embedded stack's."
    ),
)
app.command("inspect")(inspect)
app.command("check")(check)

BootstrapOption = Annotated[
    str | None,
    typer.Option(help="Broker to use instead of TUTORSTREAM_KAFKA_BOOTSTRAP / the stack's."),
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _bootstrap(override: str | None) -> str:
    if override:
        return override
    try:
        return kafka_bootstrap(Settings())
    except StackError as err:
        _fail(str(err))


@app.command()
def create(
    bootstrap: BootstrapOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 30.0,
) -> None:
    """Create the catalogue's topics that do not exist yet; existing ones are left as they are."""
    target = _bootstrap(bootstrap)
    try:
        results = kafka.create_topics(target, CATALOGUE, timeout=timeout)
    except kafka.KafkaSetupError as err:
        _fail(str(err))
    width = max(len(r.name) for r in results)
    for result in results:
        note = (
            ""
            if result.matches
            else f"  (catalogue says {result.expected_partitions}; left as it is)"
        )
        typer.echo(
            f"{result.name:<{width}}  {result.outcome.value:<7}  "
            f"{result.partitions:>3} partitions{note}"
        )


@app.command("list")
def list_topics(
    bootstrap: BootstrapOption = None,
    every: Annotated[
        bool, typer.Option("--all", help="Also list topics that are not in the catalogue.")
    ] = False,
) -> None:
    """List the catalogue's topics and their partitions; exits with 3 when one is missing."""
    target = _bootstrap(bootstrap)
    try:
        found = kafka.topic_partitions(target)
    except kafka.KafkaSetupError as err:
        _fail(str(err))
    names = [spec.name for spec in CATALOGUE]
    if every:
        names += sorted(set(found) - set(names))
    width = max(len(name) for name in names)
    missing = 0
    for name in names:
        if name in found:
            typer.echo(f"{name:<{width}}  {found[name]:>3} partitions")
        else:
            missing += 1
            typer.echo(f"{name:<{width}}  missing (run `tutorstream topics create`)")
    if missing:
        raise typer.Exit(3)


def _retention(spec: TopicSpec) -> str:
    if spec.cleanup_policy is CleanupPolicy.COMPACT:
        return "compacted (latest per key)"
    if spec.retention_ms is None:
        return "broker default"
    if spec.retention_ms % DAY_MS == 0:
        return f"{spec.retention_ms // DAY_MS} days"
    return f"{spec.retention_ms} ms"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def catalogue_table() -> str:
    """Return the topic catalogue as a Markdown table (the one in README.md)."""
    rows = [
        "| topic | partitions | key | retention | value | what flows |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows += [
        f"| `{spec.name}` | {spec.partitions} | {_cell(spec.key)} | {_retention(spec)} | "
        f"{_cell(spec.value_schema)} | {_cell(spec.description)} |"
        for spec in CATALOGUE
    ]
    return "\n".join(rows)


@app.command()
def table() -> None:
    """Print the topic catalogue as a Markdown table (for README.md)."""
    typer.echo(catalogue_table())

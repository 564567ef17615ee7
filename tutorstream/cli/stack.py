"""`tutorstream stack up | down | status`: the embedded broker and PostgreSQL on loopback."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tutorstream.settings import Settings
from tutorstream.stack import Health, Origin, ServiceStatus, Stack, StackError, redact_url

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "The embedded stack: Tansu (Kafka protocol) and PostgreSQL 18 on loopback, with data in "
        "TUTORSTREAM_STATE_DIR. TUTORSTREAM_KAFKA_BOOTSTRAP / TUTORSTREAM_DATABASE_URL replace "
        "them with external services."
    ),
)


def _shown_url(status: ServiceStatus) -> str:
    if status.url is None:
        return "-"
    # Embedded services hold no secrets; an external URL may carry a real password.
    return redact_url(status.url) if status.origin is Origin.EXTERNAL else status.url


def _print(statuses: list[ServiceStatus]) -> None:
    width = max(len(s.name) for s in statuses)
    for status in statuses:
        url = _shown_url(status)
        where = f"pid {status.pid}" if status.pid and status.health is not Health.STOPPED else ""
        line = f"{status.name:<{width}}  {status.health.value:<13}  {status.origin.value:<8}  {url}"
        typer.echo(f"{line}  {where}".rstrip())


@app.command()
def up(
    timescale: Annotated[
        bool, typer.Option("--timescale", help="Also start the TimescaleDB 2.23 WASM server.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each service to answer.")
    ] = 90.0,
) -> None:
    """Start the broker and PostgreSQL (detached), wait until they answer, print their URLs."""
    stack = Stack(Settings())
    try:
        statuses = stack.up(timescale=timescale, timeout=timeout)
    except StackError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    _print(statuses)
    if any(s.health is not Health.RUNNING for s in statuses):
        raise typer.Exit(1)
    typer.echo(f"state folder: {stack.state_dir}")


@app.command()
def down(
    purge: Annotated[
        bool,
        typer.Option("--purge", help="Also delete the databases and logs in the state folder."),
    ] = False,
) -> None:
    """Stop the embedded services cleanly (external ones are left alone)."""
    stack = Stack(Settings())
    stopped = stack.down(purge=purge)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Say what runs; exits with 3 when a service of the stack is not running."""
    statuses = Stack(Settings()).status()
    if as_json:
        typer.echo(
            json.dumps(
                [{**s.to_dict(), "url": redact_url(s.url) if s.url else None} for s in statuses],
                indent=2,
            )
        )
    else:
        _print(statuses)
    if any(s.health is not Health.RUNNING for s in statuses):
        raise typer.Exit(3)

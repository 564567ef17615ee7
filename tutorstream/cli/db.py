"""`tutorstream db`: migrate the store, report its status, run its maintenance by hand.

The database is ``--url``, else ``TUTORSTREAM_DATABASE_URL``, else the embedded stack's
PostgreSQL when ``tutorstream stack up`` runs it (its TimescaleDB WASM server with
``--timescale``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated

import psycopg
import typer

from streams.store import (
    StoreError,
    StoreMode,
    StoreSettings,
    StoreStatus,
    maintain,
    migrate,
    refresh_aggregates,
    status,
)
from tutorstream import stack
from tutorstream.settings import Settings
from tutorstream.stack import StackError

app = typer.Typer(no_args_is_help=True, help="Migrate the store and report its status.")

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="PostgreSQL URL; default TUTORSTREAM_DATABASE_URL, then the embedded stack's.",
        show_default=False,
    ),
]
TimescaleOption = Annotated[
    bool,
    typer.Option(
        "--timescale",
        help="Use the embedded stack's TimescaleDB server (`tutorstream stack up --timescale`).",
    ),
]
SchemaOption = Annotated[
    str | None,
    typer.Option(
        "--schema",
        help="Schema of the store's tables (TUTORSTREAM_STORE__DB_SCHEMA, default public).",
        show_default=False,
    ),
]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def database_url(explicit: str | None = None, *, timescale: bool = False) -> str:
    """Return the store's URL: ``explicit``, else the setting or the embedded stack's.

    Args:
        explicit: a URL given on the command line.
        timescale: use the embedded stack's TimescaleDB WASM server instead of PostgreSQL.

    Raises:
        typer.Exit: when no database is configured or running.
    """
    if explicit:
        return explicit
    settings = Settings()
    try:
        if timescale:
            return stack.timescale_url(settings)
        return stack.database_url(settings)
    except StackError as err:
        _fail(str(err))
        raise AssertionError("unreachable") from err


def _settings(schema: str | None) -> StoreSettings:
    settings = StoreSettings()
    if schema is not None:
        settings = settings.model_copy(update={"db_schema": schema})
    return settings


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "?"
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}" + ("s" if count != 1 else "")
    return f"{seconds} seconds"


def _print_status(current: StoreStatus) -> None:
    typer.echo(f"schema      {current.db_schema}")
    typer.echo(f"mode        {current.mode.value} ({current.mode_reason})")
    typer.echo(f"server      {current.server_version.split(' on ')[0]}")
    if current.timescaledb_version:
        typer.echo(f"timescaledb {current.timescaledb_version}")
    applied = ", ".join(str(v) for v in current.applied) or "none"
    pending = ", ".join(str(v) for v in current.pending) or "none"
    typer.echo(f"applied     {applied}")
    typer.echo(f"pending     {pending}")
    if current.policies:
        policies = ", ".join(
            f"{name.replace('_', ' ')} {_duration(value)}"
            for name, value in current.policies.items()
        )
        typer.echo(f"policies    {policies}")
    for aggregate in current.aggregates:
        mark = aggregate.watermark.isoformat() if aggregate.watermark else "not refreshed yet"
        typer.echo(
            f"aggregate   {aggregate.name}: refreshes from {_duration(aggregate.start_offset)} "
            f"to {_duration(aggregate.end_offset)} ago, materialised up to {mark}"
        )


@contextmanager
def _reporting_errors() -> Iterator[None]:
    """Turn the store's errors into one line on stderr and exit status 1."""
    try:
        yield
    except (StoreError, ValueError) as err:
        _fail(str(err))
    except psycopg.OperationalError as err:
        _fail(f"cannot reach the database: {err.diag.message_primary or err}")


@app.command("migrate")
def migrate_command(
    url: UrlOption = None,
    timescale: TimescaleOption = False,
    schema: SchemaOption = None,
    mode: Annotated[
        StoreMode | None,
        typer.Option(help="Force a mode (TUTORSTREAM_STORE__MODE); default: automatic."),
    ] = None,
) -> None:
    """Apply missing migrations and the compression and retention policies (idempotent)."""
    settings = _settings(schema)
    target = database_url(url, timescale=timescale)
    with _reporting_errors():
        run = migrate(
            target,
            schema=settings.db_schema,
            mode=mode or settings.mode,
            compression_after=settings.compression_after,
            retention=settings.retention,
        )
        applied = ", ".join(f"{v:04d}" for v in run.applied_now) or "nothing (up to date)"
        typer.echo(f"applied now {applied}")
        _print_status(run.status)


@app.command("status")
def status_command(
    url: UrlOption = None,
    timescale: TimescaleOption = False,
    schema: SchemaOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Report the store's mode (timescaledb or postgresql), migrations, policies, aggregates."""
    settings = _settings(schema)
    target = database_url(url, timescale=timescale)
    with _reporting_errors():
        current = status(target, schema=settings.db_schema)
        if as_json:
            typer.echo(json.dumps(current.to_dict(), indent=2))
        else:
            _print_status(current)


@app.command("refresh")
def refresh_command(
    url: UrlOption = None,
    timescale: TimescaleOption = False,
    schema: SchemaOption = None,
    full: Annotated[
        bool,
        typer.Option(help="Refresh all history within retention (after a bulk load)."),
    ] = False,
) -> None:
    """Refresh the aggregates now and, in PostgreSQL mode, apply retention."""
    settings = _settings(schema)
    target = database_url(url, timescale=timescale)
    with _reporting_errors():
        if full:
            refreshed = refresh_aggregates(target, schema=settings.db_schema, full=True)
            deleted: dict[str, int] = {}
        else:
            report = maintain(target, schema=settings.db_schema)
            refreshed, deleted = report.refreshed, report.deleted
    for item in refreshed:
        start = item.window_start.isoformat() if item.window_start else "the beginning"
        typer.echo(f"refreshed   {item.name}: {start} to {item.window_end.isoformat()}")
    for table, count in deleted.items():
        if count:
            typer.echo(f"retention   {table}: {count} rows deleted")
    if not refreshed:
        typer.echo("nothing to do: TimescaleDB's background jobs keep the aggregates fresh")

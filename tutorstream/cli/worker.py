"""`tutorstream worker`: run a stream worker (start as many as there are partitions to share)."""

from __future__ import annotations

import asyncio
import logging
import os

import typer

from tutorstream.settings import Settings


def worker(
    web_port: int = typer.Option(6066, envvar="TUTORSTREAM_WEB_PORT", help="HTTP port (/metrics)."),
    worker_id: str | None = typer.Option(
        None,
        envvar="TUTORSTREAM_WORKER_ID",
        help="Stable id for static group membership (restarts don't trigger a rebalance).",
    ),
    loglevel: str = typer.Option("info", help="Log level."),
) -> None:
    """Consume lms.events.v1, score learners and publish interventions, until stopped."""
    import faust

    from schemas.profiles import ProfileError
    from streams.app import Worker
    from streams.settings import StreamSettings
    from tutorstream.stack import StackError, database_url, kafka_bootstrap

    wiring = Settings()
    try:
        os.environ["TUTORSTREAM_KAFKA_BOOTSTRAP"] = kafka_bootstrap(wiring)
        os.environ["TUTORSTREAM_DATABASE_URL"] = database_url(wiring)
    except StackError as err:
        raise typer.BadParameter(str(err)) from None
    settings = StreamSettings(web_port=web_port, worker_id=worker_id)
    try:
        settings.profiles.load()
    except ProfileError as err:
        # a worker that misreads its producers' statements must not start
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=loglevel.upper())
    if settings.event_loop == "uvloop":
        import uvloop

        # before any loop exists: Faust's consumer thread makes its own from the same policy
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    stream_worker = Worker(settings)
    try:
        stream_worker.prepare()
    except RuntimeError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    runner = faust.Worker(stream_worker.app, loglevel=loglevel)
    # Faust's progress spinner lowers the root logger to DEBUG so that every record spins it:
    # every aiokafka debug call then builds a log record, about a quarter of the worker's CPU
    runner.spinner = None
    runner.execute_from_commandline()

"""`tutorstream api`: serve the ingest endpoints and the tutor alerting API."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from tutorstream.settings import Settings


def api(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (TUTORSTREAM_API__HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (TUTORSTREAM_API__PORT).")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes; each is an instance with its own live feed.")
    ] = 1,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Serve the API until stopped (broker and database from TUTORSTREAM_* or the stack)."""
    import uvicorn

    from api.settings import ApiSettings
    from schemas.profiles import ProfileError
    from tutorstream.stack import StackError, database_url, kafka_bootstrap

    wiring = Settings()
    try:
        os.environ["TUTORSTREAM_KAFKA_BOOTSTRAP"] = kafka_bootstrap(wiring)
        os.environ["TUTORSTREAM_DATABASE_URL"] = database_url(wiring)
    except StackError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    settings = ApiSettings()
    try:
        settings.profiles.load()
    except ProfileError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        "api.app:app_from_environment",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers,
        log_level=loglevel.lower(),
        proxy_headers=True,
        # uvicorn's access log prints query strings, and ?agent= can hold an email address;
        # the API logs each request by its route template instead (logger api.access).
        access_log=False,
        # Each instance reads its own copy of the live feed; uvloop and httptools when present.
        loop="auto",
        http="auto",
    )

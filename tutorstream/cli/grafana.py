"""`tutorstream grafana`: generate the boards and provisioning files; push them to Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from grafana_client.client import GrafanaException

from tutorstream.grafana.boards import generated_files
from tutorstream.grafana.push import StoreSource, connect_grafana, push

app = typer.Typer(no_args_is_help=True, help="Grafana boards as code: build and push.")


@app.command("build")
def build(
    root: Annotated[
        Path, typer.Option("--root", help="Repository root the files are written under.")
    ] = Path("."),
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; fail when a committed file differs."),
    ] = False,
) -> None:
    """Write the dashboards, Grafana provisioning and Prometheus configuration."""
    stale = []
    for relative, text in generated_files().items():
        path = root / relative
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(relative)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if check and stale:
        typer.echo("out of date (run `tutorstream grafana build`):\n  " + "\n  ".join(stale))
        raise typer.Exit(1)
    verb = "would write" if check else "wrote"
    typer.echo(f"{verb} {len(stale)} file(s); {len(generated_files()) - len(stale)} unchanged")


@app.command("push")
def push_boards(
    url: Annotated[str, typer.Option("--url", help="Grafana's URL.", envvar="GRAFANA_URL")],
    token: Annotated[
        str,
        typer.Option("--token", help="A Grafana service-account token.", envvar="GRAFANA_TOKEN"),
    ],
    store_host: Annotated[
        str, typer.Option("--store-host", help="host:port of the store, as Grafana reaches it.")
    ] = "timescaledb:5432",
    database: Annotated[str, typer.Option("--database", help="The store's database.")] = (
        "tutorstream"
    ),
    user: Annotated[str, typer.Option("--user", help="Read-only role for Grafana.")] = (
        "grafana_reader"
    ),
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="That role's password (kept as it is in Grafana when left out).",
            envvar="TUTORSTREAM_GRAFANA_DB_PASSWORD",
            show_default=False,
        ),
    ] = None,
    plain_postgres: Annotated[
        bool,
        typer.Option("--plain-postgres", help="The store has no TimescaleDB extension."),
    ] = False,
    prometheus_url: Annotated[
        str, typer.Option("--prometheus-url", help="Prometheus, as Grafana reaches it.")
    ] = "http://prometheus:9090",
) -> None:
    """Create or update the datasources, the folder and the boards in a running Grafana."""
    source = StoreSource(
        host=store_host,
        database=database,
        user=user,
        password=password,
        timescaledb=not plain_postgres,
        prometheus_url=prometheus_url,
    )
    try:
        report = push(connect_grafana(url, token), source)
    except GrafanaException as err:
        typer.echo(f"Grafana refused a request: {err.status_code} {err.message}", err=True)
        raise typer.Exit(1) from err
    for uid, what in report.datasources.items():
        typer.echo(f"datasource {uid}: {what}")
    typer.echo(f"folder: {report.folder}")
    for name, what in report.dashboards.items():
        typer.echo(f"dashboard {name}: {what}")

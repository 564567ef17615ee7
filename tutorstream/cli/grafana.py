"""`tutorstream grafana`: generate the boards and provisioning files; push them to Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from grafana_client.client import GrafanaException

from tutorstream.grafana.boards import DEFAULT_CONSOLE_URL, dashboards, generated_files
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
    console_url: Annotated[
        str,
        typer.Option(
            "--console-url",
            help="The tutors' console (the API's URL as tutors' browsers reach it), "
            "which the boards' links open.",
            envvar="TUTORSTREAM_PUBLIC_URL",
        ),
    ] = DEFAULT_CONSOLE_URL,
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
        boards = dashboards(console_url)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--console-url") from err
    try:
        report = push(connect_grafana(url, token), source, boards=boards)
    except GrafanaException as err:
        typer.echo(f"Grafana refused a request: {err.status_code} {err.message}", err=True)
        raise typer.Exit(1) from err
    for uid, what in report.datasources.items():
        typer.echo(f"datasource {uid}: {what}")
    typer.echo(f"folder: {report.folder}")
    for name, what in report.dashboards.items():
        typer.echo(f"dashboard {name}: {what}")


@app.command("preview")
def preview(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Store to draw from; default: a throwaway embedded PostgreSQL holding a "
            "simulated class.",
            show_default=False,
        ),
    ] = None,
    schema: Annotated[str, typer.Option("--schema", help="The store's schema.")] = "public",
    hours: Annotated[
        float, typer.Option("--hours", min=0.1, help="Time range with --url: the last N hours.")
    ] = 24.0,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")] = Path(
        ".state/grafana-previews"
    ),
) -> None:
    """Draw the tutor boards' panels as static PNGs from the boards' own SQL."""
    import tempfile
    from datetime import UTC, datetime, timedelta

    from streams.store import connect, migrate, status
    from tutorstream import services
    from tutorstream.grafana.macros import QueryContext
    from tutorstream.grafana.preview import render_previews
    from tutorstream.grafana.sample import sample_window, write_sample

    with tempfile.TemporaryDirectory(prefix="grafana-preview-") as scratch:
        server = None
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            window = (now - timedelta(hours=hours), now)
            if url is None:
                server = services.start_postgres(
                    Path(scratch) / "pg", Path(scratch) / "logs", durable=False
                )
                url = server.url
                migrate(url, schema=schema)
                summary = write_sample(url, schema=schema, start=now - timedelta(hours=4))
                window = sample_window(summary)
                typer.echo(
                    f"simulated class: {summary.events} events, {summary.interventions} "
                    f"interventions, {len(summary.learners)} learners"
                )
            with connect(url, schema=schema, connect_timeout=30) as conn:
                row = conn.execute(
                    "SELECT class_id, learner_id FROM interventions WHERE time >= %s "
                    "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1",
                    (window[0],),
                ).fetchone()
            if row is None:
                typer.echo("no interventions in the time range: nothing to draw", err=True)
                raise typer.Exit(1)
            timescaledb = status(url, schema=schema).mode.value == "timescaledb"
            context = QueryContext(
                window[0],
                window[1],
                timedelta(minutes=1),
                {"class": str(row[0]), "learner": str(row[1]), "window": "10"},
                timescaledb,
            )
            for path in render_previews(url, schema, out, context):
                typer.echo(f"wrote {path}")
        finally:
            if server is not None:
                server.stop()

"""`tutorstream bench console`: intervention-to-screen latency and page loads with many tutors.

Runs on a broker, a PostgreSQL and an OpenID Provider of its own, started in a temporary folder
and stopped at the end. The provider needs Node.js and ``make setup`` (a checkout).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Annotated

import typer

from api.bench import BenchTarget, write_json
from schemas.topics import LEARNER_PROMPTS, LMS_EVENTS, TUTOR_INTERVENTIONS, TopicSpec
from streams.store import migrate
from tutorstream import kafka, services
from tutorstream.bench_console import ConsolePlan, format_table, run_console_bench


def console(
    smoke: Annotated[bool, typer.Option(help="A run of seconds, for CI.")] = False,
    tutors: Annotated[int, typer.Option(min=1, help="Tutors signed in at once.")] = 50,
    classes: Annotated[int, typer.Option(min=1, help="Classes they are spread over.")] = 10,
    interventions: Annotated[int, typer.Option(min=1, help="Interventions published.")] = 400,
    rate: Annotated[float, typer.Option(min=0.1, help="Interventions per second.")] = 20.0,
    page_loads: Annotated[int, typer.Option(min=1, help="Queue page loads per tutor.")] = 10,
    events_per_s: Annotated[
        float, typer.Option(min=1.0, help="xAPI statements/s offered to the API meanwhile.")
    ] = 2000.0,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path(
        "bench-results/console.json"
    ),
) -> None:
    """Intervention-to-screen p99 over every tutor's live queue, and queue page loads p99."""
    plan = (
        ConsolePlan.smoke()
        if smoke
        else ConsolePlan(tutors, classes, interventions, rate, page_loads, events_per_s)
    )
    work = Path(tempfile.mkdtemp(prefix="tutorstream-bench-console-"))
    typer.echo(f"starting a broker and PostgreSQL in {work}")
    broker = services.start_broker(work / "logs")
    postgres = services.start_postgres(work / "postgres", work / "logs")
    try:
        prefix = f"bench.{uuid.uuid4().hex[:6]}."
        kafka.create_topics(
            broker.url,
            [
                TopicSpec(
                    name=f"{prefix}{spec.name}",
                    partitions=spec.partitions,
                    value_schema=spec.value_schema,
                    description=spec.description,
                )
                for spec in (LMS_EVENTS, TUTOR_INTERVENTIONS, LEARNER_PROMPTS)
            ],
        )
        migrate(postgres.url, schema="bench_console")
        target = BenchTarget(broker.url, postgres.url, "bench_console", prefix)
        try:
            report = run_console_bench(target, plan, typer.echo, work)
        except RuntimeError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        report["smoke"] = smoke
    finally:
        postgres.stop()
        broker.stop()
    typer.echo("")
    typer.echo(format_table(report))
    typer.echo(f"wrote {write_json(report, out)}")
    shutil.rmtree(work, ignore_errors=True)

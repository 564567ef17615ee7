"""`tutorstream bench api`: xAPI statements/s through the API, and live-feed delivery latency.

Runs on a broker and a PostgreSQL of its own, started in a temporary folder and stopped at the
end, so it neither needs nor disturbs a running stack.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Annotated

import typer

from api.bench import BenchPlan, BenchTarget, format_table, run_api_bench, write_json
from schemas.topics import LEARNER_PROMPTS, LMS_EVENTS, TUTOR_INTERVENTIONS, TopicSpec
from streams.store import migrate
from tutorstream import kafka, services


def api(
    smoke: Annotated[bool, typer.Option(help="A run of seconds, for CI.")] = False,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent ingest clients.")] = 4,
    batches: Annotated[int, typer.Option(min=1, help="Batches of 100 statements sent.")] = 400,
    feed_clients: Annotated[
        int, typer.Option(min=1, help="Live-feed (SSE) clients connected at once.")
    ] = 1000,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path(
        "bench-results/api.json"
    ),
) -> None:
    """Statements/s (p50/p99) for batches of 100, and feed latency at many SSE clients."""
    plan = (
        BenchPlan.smoke()
        if smoke
        else BenchPlan(clients=clients, batches=batches, feed_clients=feed_clients)
    )
    work = Path(tempfile.mkdtemp(prefix="tutorstream-bench-api-"))
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
        migrate(postgres.url, schema="bench_api")
        target = BenchTarget(broker.url, postgres.url, "bench_api", prefix)
        report = run_api_bench(target, plan, typer.echo, work / "logs")
        report["smoke"] = smoke
    finally:
        postgres.stop()
        broker.stop()
    typer.echo("")
    typer.echo(format_table(report))
    typer.echo(f"wrote {write_json(report, out)}")
    shutil.rmtree(work, ignore_errors=True)

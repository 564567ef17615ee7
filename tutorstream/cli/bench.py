"""`tutorstream bench <what>`: benchmarks that print a table and write JSON.

Each command imports its benchmark from :mod:`tutorstream.bench` when it runs, so listing the
commands loads none of them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inference.registry import DEFAULT_MODEL
from tutorstream.bench.report import publish

if TYPE_CHECKING:
    from tutorstream.bench.api import BenchTarget

app = typer.Typer(no_args_is_help=True, help="Benchmarks: each prints a table and writes JSON.")

Out = Annotated[Path, typer.Option(help="Where the JSON goes.")]


def _err(message: str) -> None:
    typer.echo(message, err=True)


@app.command("inference")
def inference(
    model: Annotated[
        str, typer.Option(help="Model reference, name@version or name@latest.")
    ] = DEFAULT_MODEL,
    registry: Annotated[
        list[Path] | None,
        typer.Option(help="Extra registry root searched before the packaged models."),
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for both engines.")] = 2,
    smoke: Annotated[bool, typer.Option(help="A few calls per point, for CI.")] = False,
    out: Out = Path("bench-results/inference.json"),
) -> None:
    """Windows/s and p50/p99 latency at batch 1, 64 and 512: ONNX Runtime vs PyTorch eager."""
    # spinning OpenMP workers distort PyTorch's figures when the cores are shared
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from tutorstream.bench.inference import format_table, run_inference_bench

    report = run_inference_bench(model, registry or [], threads=threads, smoke=smoke)
    publish(format_table(report), report.to_dict(), out, typer.echo)


@app.command("normalize")
def normalize(
    events: Annotated[
        int, typer.Option(min=100, help="Distinct records generated per format.")
    ] = 20_000,
    rounds: Annotated[int, typer.Option(min=1, help="Passes over each corpus.")] = 5,
    smoke: Annotated[bool, typer.Option(help="A small corpus and one pass, for CI.")] = False,
    out: Out = Path("bench-results/normalize.json"),
) -> None:
    """Events/s normalised per core for xAPI, Caliper and native, against json.loads and orjson."""
    from tutorstream.bench.normalize import run_benchmark, table

    if smoke:
        events, rounds = 1_000, 1
    report = run_benchmark(events, rounds, progress=typer.echo)
    report["smoke"] = smoke
    typer.echo("")
    publish("\n".join(table(report)), report, out, typer.echo)


@app.command("api")
def api(
    smoke: Annotated[bool, typer.Option(help="A run of seconds, for CI.")] = False,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent ingest clients.")] = 4,
    batches: Annotated[int, typer.Option(min=1, help="Batches of 100 statements sent.")] = 400,
    feed_clients: Annotated[
        int, typer.Option(min=1, help="Live-feed (SSE) clients connected at once.")
    ] = 1000,
    out: Out = Path("bench-results/api.json"),
) -> None:
    """Statements/s (p50/p99) for batches of 100, and feed latency at many SSE clients.

    Runs on a broker and a PostgreSQL of its own, started in a temporary folder and stopped at
    the end, so it neither needs nor disturbs a running stack.
    """
    from tutorstream.bench.api import BenchPlan, format_table, run_api_bench

    plan = (
        BenchPlan.smoke()
        if smoke
        else BenchPlan(clients=clients, batches=batches, feed_clients=feed_clients)
    )
    with _own_stack("api") as (target, work):
        report = run_api_bench(target, plan, typer.echo, work / "logs")
        report["smoke"] = smoke
    typer.echo("")
    publish(format_table(report), report, out, typer.echo)


@app.command("pipeline")
def pipeline(
    learners: Annotated[int, typer.Option(min=1, help="Learners in the simulated cohort.")] = 500,
    events: Annotated[
        int, typer.Option(min=100, help="Events for the throughput phase.")
    ] = 100_000,
    rate: Annotated[float, typer.Option(min=1, help="Offered load of the latency phase.")] = 2000,
    latency_events: Annotated[
        int, typer.Option(min=100, help="Events offered in the latency phase.")
    ] = 40_000,
    workers: Annotated[
        int, typer.Option(min=1, max=12, help="Worker processes sharing the partitions.")
    ] = 1,
    compare_workers: Annotated[
        int,
        typer.Option(
            min=0,
            max=12,
            help="Run the throughput phase again with this many workers, for the ratio (0: no).",
        ),
    ] = 0,
    smoke: Annotated[bool, typer.Option(help="A small run, for CI.")] = False,
    out: Out = Path("bench-results/pipeline.json"),
) -> None:
    """Sustained events/s to durable rows, and p50/p95/p99 event-to-intervention latency.

    Also the worker's CPU per event against a rebuild replay of the same events, and with
    ``--compare-workers N`` the throughput of N workers against ``--workers``.
    """
    from tutorstream.bench.pipeline import format_table, run_pipeline_bench

    if smoke:
        learners, events, latency_events, rate = 20, 2000, 1000, 500
    report = run_pipeline_bench(
        learners, events, rate, latency_events, progress=_err, workers=workers
    )
    if compare_workers:
        _err(f"throughput again with {compare_workers} workers")
        other = run_pipeline_bench(
            learners,
            events,
            rate,
            latency_events,
            progress=_err,
            workers=compare_workers,
            latency=False,
            rebuild=False,
        )
        report.scale_out = {
            "workers": compare_workers,
            "events_per_s": other.events_per_s,
            "ratio": other.events_per_s / report.events_per_s if report.events_per_s else 0.0,
            "worker_cpu_us": other.worker_cpu_us,
        }
    publish(format_table(report), report.to_dict(), out, typer.echo)


@app.command("boards")
def boards(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="PostgreSQL or TimescaleDB URL; default: a throwaway embedded PostgreSQL.",
            show_default=False,
        ),
    ] = None,
    learners: Annotated[int, typer.Option(min=1, help="Learners in the class.")] = 500,
    problems: Annotated[
        int, typer.Option(min=2, help="Mean problems per learner over the year.")
    ] = 300,
    runs: Annotated[int, typer.Option(min=3, help="Timed runs per query.")] = 20,
    schema: Annotated[str, typer.Option(help="Schema to load (dropped first).")] = ("bench_boards"),
    smoke: Annotated[bool, typer.Option(help="A small class and few runs, for CI.")] = False,
    out: Out = Path("bench-results/boards.json"),
) -> None:
    """Load a year of a simulated class through the sink, then time every panel's SQL."""
    from tutorstream import services
    from tutorstream.bench.boards import format_table, run_boards_bench

    if smoke:
        learners, problems, runs = 60, 20, 3
    with tempfile.TemporaryDirectory(prefix="bench-boards-") as scratch:
        server = None
        if url is None:
            _err("starting an embedded PostgreSQL")
            server = services.start_postgres(
                Path(scratch) / "pg", Path(scratch) / "logs", durable=False
            )
            url = server.url
        try:
            result = run_boards_bench(
                url,
                schema=schema,
                learners=learners,
                problems=problems,
                runs=runs,
                progress=_err,
            )
        finally:
            if server is not None:
                server.stop()
    report = result.to_dict()
    report["smoke"] = smoke
    publish(format_table(result), report, out, typer.echo)


@app.command("replay")
def replay(
    learners: Annotated[int, typer.Option(min=1, help="Learners in the simulated cohort.")] = 500,
    events: Annotated[int, typer.Option(min=100, help="Events to replay.")] = 100_000,
    smoke: Annotated[bool, typer.Option(help="A small run, for CI.")] = False,
    out: Out = Path("bench-results/replay.json"),
) -> None:
    """Events/s of a replay in export and rebuild modes, against a plain Kafka read."""
    from tutorstream.bench.replay import format_table, run_replay_bench

    if smoke:
        learners, events = 20, 2000
    report = run_replay_bench(learners, events, say=_err)
    publish(format_table(report), report.to_dict(), out, typer.echo)


@app.command("console")
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
    out: Out = Path("bench-results/console.json"),
) -> None:
    """Intervention-to-screen p99 over every tutor's live queue, and queue page loads p99.

    Runs on a broker, a PostgreSQL and an OpenID Provider of its own, started in a temporary
    folder and stopped at the end. The provider needs Node.js and ``make setup`` (a checkout).
    """
    from tutorstream.bench.console import ConsolePlan, format_table, run_console_bench

    plan = (
        ConsolePlan.smoke()
        if smoke
        else ConsolePlan(tutors, classes, interventions, rate, page_loads, events_per_s)
    )
    with _own_stack("console") as (target, work):
        try:
            report = run_console_bench(target, plan, typer.echo, work)
        except RuntimeError as err:
            _err(f"error: {err}")
            raise typer.Exit(1) from None
        report["smoke"] = smoke
    typer.echo("")
    publish(format_table(report), report, out, typer.echo)


@contextlib.contextmanager
def _own_stack(name: str) -> Iterator[tuple[BenchTarget, Path]]:
    """Start a broker and a PostgreSQL of the benchmark's own in a temporary folder.

    Yields the target (the ingest, intervention and prompt topics under a fresh prefix, the store
    migrated into schema ``bench_<name>``) and the folder, and stops and removes both at the end,
    so a benchmark neither needs nor disturbs a running stack.
    """
    from schemas.topics import LEARNER_PROMPTS, LMS_EVENTS, TUTOR_INTERVENTIONS, TopicSpec
    from streams.store import migrate
    from tutorstream import kafka, services
    from tutorstream.bench.api import BenchTarget

    work = Path(tempfile.mkdtemp(prefix=f"tutorstream-bench-{name}-"))
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
        migrate(postgres.url, schema=f"bench_{name}")
        yield BenchTarget(broker.url, postgres.url, f"bench_{name}", prefix), work
    finally:
        postgres.stop()
        broker.stop()
    shutil.rmtree(work, ignore_errors=True)

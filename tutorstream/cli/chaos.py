"""`tutorstream chaos`: the fault suite on a private embedded stack, judged by event ids."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tutorstream.bench.report import publish


def chaos(
    events: Annotated[int, typer.Option(min=100, help="Good events produced per fault.")] = 200_000,
    learners: Annotated[int, typer.Option(min=1, help="Learners of the simulated class.")] = 500,
    fault: Annotated[
        list[str] | None,
        typer.Option(help="A fault: kill, outage, bad or rebalance (repeatable; all by default)."),
    ] = None,
    kills: Annotated[int, typer.Option(min=1, help="SIGKILLs of the kill fault.")] = 10,
    outage: Annotated[
        float, typer.Option(min=1, help="Seconds the outage fault stops PostgreSQL.")
    ] = 30.0,
    bad: Annotated[int, typer.Option(min=0, help="Bad records of the bad fault.")] = 10_000,
    oversized: Annotated[int, typer.Option(min=0, help="2 MB records among the bad ones.")] = 20,
    rate: Annotated[
        float,
        typer.Option(min=1, help="Events/s offered during the outage and the rebalance faults."),
    ] = 2_000.0,
    seed: Annotated[
        int, typer.Option(help="Seed of the class, kill points and bad records (of the first run).")
    ] = 1,
    runs: Annotated[
        int,
        typer.Option(min=1, help="Runs of every fault, each on a fresh stack with the next seed."),
    ] = 1,
    quiet: Annotated[
        float,
        typer.Option(min=5, help="Seconds with no event newly stored before counting the missing."),
    ] = 120.0,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path(
        "bench-results/chaos.json"
    ),
    worker_loglevel: Annotated[
        str,
        typer.Option(help="The workers' log level (their logs are kept when a fault fails)."),
    ] = "warning",
) -> None:
    """Run the worker under faults and count, by event id, what went missing or twice.

    Each fault runs on its own topics, schema and consumer group of one private broker and
    PostgreSQL: the worker SIGKILLed at random moments (``--kills`` times), PostgreSQL stopped
    for ``--outage`` seconds under load, ``--bad`` bad records of every kind including 2 MB
    ones, and a worker joining and one leaving mid-stream. Prints produced, stored, missing and
    duplicated (per table and on the interventions topic), the DLQ topic against the DLQ
    metric, and learners whose state disagrees with their stored answers; exits 1 when
    anything is missing or duplicated, a bad record has no dead letter, or a learner's state
    disagrees. With ``--runs N`` it says, per fault, in how many of the N runs it was clean.
    """
    from tutorstream.chaos import (
        FAULTS,
        ChaosError,
        format_runs,
        format_table,
        run_chaos,
        runs_by_fault,
    )

    chosen = fault or list(FAULTS)
    unknown = sorted(set(chosen) - set(FAULTS))
    if unknown:
        typer.echo(f"error: unknown fault {unknown}; choose from {', '.join(FAULTS)}", err=True)
        raise typer.Exit(2)
    reports = []
    for k in range(runs):
        if runs > 1:
            typer.echo(f"run {k + 1} of {runs} (seed {seed + k})", err=True)
        try:
            report = run_chaos(
                events=events,
                learners=learners,
                faults=chosen,
                kills=kills,
                outage_s=outage,
                bad=bad,
                oversized=oversized,
                rate=rate,
                seed=seed + k,
                quiet_s=quiet,
                progress=lambda line: typer.echo(line, err=True),
                keep_logs=out.parent / "chaos-logs",
                worker_loglevel=worker_loglevel,
            )
        except ChaosError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        reports.append(report)
        if runs > 1:
            typer.echo(format_table(report))
            sys.stdout.flush()  # each run's table as it ends, when the output is a file
    if runs == 1:
        publish(format_table(reports[0]), reports[0].to_dict(), out, typer.echo)
    else:
        summary = {
            "runs": [r.to_dict() for r in reports],
            "ok": all(r.ok for r in reports),
            "clean_runs": {
                name: sum(f.ok for f in runs) for name, runs in runs_by_fault(reports).items()
            },
        }
        publish(format_runs(reports), summary, out, typer.echo)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)

"""`tutorstream dlq replay`: send dead letters that pass the current normaliser back in."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer

from common.kafka import producer_config
from schemas.topics import LMS_EVENTS, LMS_EVENTS_DLQ
from tutorstream.settings import Settings

app = typer.Typer(no_args_is_help=True, help="The dead-letter topic of lms.events.v1.")


@app.command("replay")
def replay(
    reason: Annotated[
        str, typer.Option(help="Only dead letters whose error reason contains this text.")
    ],
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Progress file; an interrupted run resumes from it."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print partitions, offsets and counts only.")
    ] = False,
) -> None:
    """Re-normalise matching dead letters; produce those that now pass to lms.events.v1.

    The others stay on the DLQ. The pipeline drops event ids it has already stored, so
    running this twice over the same dead letters is harmless.
    """
    from confluent_kafka import Producer

    from streams.replay.checkpoint import Checkpoint
    from streams.replay.dlq import DlqReplay
    from streams.replay.exceptions import ReplayError
    from streams.replay.plan import Selection, describe
    from streams.replay.reader import Replay, run_sync
    from streams.settings import StreamSettings
    from tutorstream.stack import StackError, kafka_bootstrap

    try:
        bootstrap = kafka_bootstrap(Settings())
    except StackError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    stream = StreamSettings(kafka_bootstrap=bootstrap)
    key = stream.pseudonym_key.get_secret_value().encode()
    run = Replay(
        bootstrap=bootstrap,
        selection=Selection(topics=(stream.topic(LMS_EVENTS_DLQ.name),)),
        pseudonym_key=key,
        replay_id=f"dlq-{uuid.uuid4().hex[:12]}",
        checkpoint=Checkpoint(checkpoint),
        normalised=False,
    )
    try:
        if dry_run:
            for line in describe(run.ranges()):
                typer.echo(line)
            return
        output = DlqReplay(
            Producer(producer_config(bootstrap)),
            stream.topic(LMS_EVENTS.name),
            LMS_EVENTS.partitions,
            reason,
            key,
        )
        progress = run_sync(run, output)
    except ReplayError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    c = output.counts
    typer.echo(
        f"read {progress.records:,} dead letters: {c.matched:,} matched {reason!r}, "
        f"{c.passed:,} passed and were sent to {stream.topic(LMS_EVENTS.name)}, "
        f"{c.kept:,} still fail and stay on the DLQ; {c.other:,} other reasons, "
        f"{c.unreadable:,} unreadable"
    )


@app.command("payload")
def payload(
    sha256: Annotated[str, typer.Argument(help="The original_sha256 of a truncated dead letter.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; standard output if not.")
    ] = None,
) -> None:
    """Write the whole record of a dead letter that went out truncated (too large for the DLQ).

    The worker keeps such records in the store's ``dead_letter_payloads`` table, by SHA-256.
    """
    import sys

    import psycopg

    from streams.store.connection import search_path
    from streams.store.settings import StoreSettings
    from tutorstream.stack import StackError, database_url

    try:
        url = database_url(Settings())
    except StackError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(search_path(StoreSettings().db_schema))
        row = conn.execute(
            "SELECT payload FROM dead_letter_payloads WHERE sha256 = %s", (sha256.lower(),)
        ).fetchone()
    if row is None:
        typer.echo(f"error: no dead-letter payload with sha256 {sha256}", err=True)
        raise typer.Exit(1)
    data = bytes(row[0])
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        typer.echo(f"wrote {len(data):,} bytes to {output}", err=True)

"""`tutorstream produce`: send LMS events to ``lms.events.v1``, keyed by learner pseudonym."""

from __future__ import annotations

import functools
import itertools
import signal
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from schemas.topics import LMS_EVENTS
from tutorstream import kafka
from tutorstream.cohort import class_stream, generate_cohort
from tutorstream.producer import (
    OutgoingRecord,
    ProduceReport,
    ProgressLine,
    count_lines,
    produce_records,
    records_from_events,
    records_from_file,
)
from tutorstream.settings import Settings
from tutorstream.stack import StackError, kafka_bootstrap


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def produce(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="JSON Lines file of xAPI statements, Caliper envelopes or native events "
            "('-' reads standard input). Leave out with --cohort.",
            show_default=False,
        ),
    ] = None,
    cohort: Annotated[
        bool, typer.Option("--cohort", help="Send a generated class instead of a file.")
    ] = False,
    learners: Annotated[int, typer.Option(min=1, help="Learners in the generated class.")] = 30,
    events: Annotated[int, typer.Option(min=0, help="Events of the generated class.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated class.")] = 7,
    rate: Annotated[
        float,
        typer.Option(min=0.0, help="Records per second to aim for; 0 sends as fast as possible."),
    ] = 0.0,
    topic: Annotated[str, typer.Option(help="Topic to send to.")] = LMS_EVENTS.name,
    bootstrap: Annotated[
        str | None,
        typer.Option(help="Broker to use instead of TUTORSTREAM_KAFKA_BOOTSTRAP / the stack's."),
    ] = None,
    compression: Annotated[str, typer.Option(help="Compression: lz4 or none.")] = "lz4",
    pace: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="With --cohort: after the --events, keep the class working at this many "
            "events per second until stopped (Ctrl-C or kill); 0 stops after the --events.",
        ),
    ] = 0.0,
    send_invalid: Annotated[
        bool,
        typer.Option(
            "--send-invalid",
            help="Send records that fail validation (without a key) instead of refusing them, "
            "to exercise the dead-letter topic.",
        ),
    ] = False,
) -> None:
    """Send events with the idempotent producer, showing rate and ETA, then the final counts.

    Records are keyed by the learner's pseudonym (TUTORSTREAM_PSEUDONYM_KEY). Exits with 1 when
    a record failed (invalid or not delivered), after listing the first failures.
    """
    if (file is None) == (not cohort):
        _fail("give a FILE or --cohort (one of them)", 2)
    if pace and not cohort:
        _fail("--pace keeps a generated class working: give it with --cohort", 2)
    if compression not in ("lz4", "none"):
        _fail("--compression is lz4 or none", 2)
    if file is not None and str(file) != "-" and not file.is_file():
        _fail(f"no such file: {file}", 2)
    settings = Settings()
    try:
        target = bootstrap or kafka_bootstrap(settings)
        partitions = kafka.topic_partitions(target).get(topic)
    except (StackError, kafka.KafkaSetupError) as err:
        _fail(str(err))
    if not partitions:
        _fail(f"topic {topic} does not exist on {target}; run `tutorstream topics create`")

    records: Iterable[OutgoingRecord]
    stream: Iterator[dict[str, Any]] | None = None
    if file is not None:
        records, total = records_from_file(file), count_lines(file)
    elif pace:
        stream = class_stream(learners, seed, start=datetime.now(UTC))
        records, total = records_from_events(itertools.islice(stream, events), "cohort"), events
    else:
        records, total = (
            records_from_events(
                generate_cohort(learners, events, seed, start=datetime.now(UTC)), "cohort"
            ),
            events,
        )
    send = functools.partial(
        produce_records,
        bootstrap=target,
        topic=topic,
        key=settings.pseudonym_key_bytes(),
        send_invalid=send_invalid,
        compression=compression,
    )
    report = send(records, rate=rate or None, progress=ProgressLine(total))
    _report(report)
    if stream is not None and not report.failed:
        typer.echo(f"the class keeps working at {pace:g} events/s until stopped")
        stop = threading.Event()
        for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            # The sending loop ends after the record in hand; what was sent is then flushed.
            signal.signal(stop_signal, lambda signum, frame: stop.set())
        later = itertools.takewhile(lambda _: not stop.is_set(), stream)
        report = send(records_from_events(later, "cohort"), rate=pace, progress=ProgressLine(None))
        _report(report)
    if report.failed:
        raise typer.Exit(1)


def _report(report: ProduceReport) -> None:
    for failure in report.failures:
        typer.echo(f"failed: {failure}", err=True)
    if report.failed > len(report.failures):
        typer.echo(f"failed: ... and {report.failed - len(report.failures):,} more", err=True)
    typer.echo(report.summary())

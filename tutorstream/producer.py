"""The LMS producer: sends raw learning events to ``lms.events.v1``, keyed by learner.

Records go on the topic as the LMS sent them (xAPI statement, Caliper envelope or native event);
the key is the learner's keyed pseudonym, the same one the normaliser puts in
``LearningEvent.learner_id``, so all of a learner's events land on one partition in order. An
array of statements is sent as one record per statement and a Caliper envelope as one envelope
per event, because each may belong to another learner.

A record that does not normalise is counted as failed with its line, field path and reason and is
not sent, unless ``send_invalid`` is set (to exercise the dead-letter path): then it goes without
a key. Delivery is confirmed per record by the idempotent producer (``acks=all``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from common.kafka import producer_config
from schemas.events import UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, parse_json, pseudonymiser_for
from schemas.pseudonym import Pseudonymiser

MAX_REPORTED_FAILURES: Final = 20
"""Failures listed one by one in a report; the rest are only counted."""


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to send.

    Attributes:
        origin: where it comes from, for error messages (``events.jsonl:12``, ``cohort:40``).
        value: the JSON bytes that go on the topic.
        parsed: the parsed JSON, or ``None`` when ``value`` is not valid JSON.
        error: why the record cannot be read, when it cannot.
    """

    origin: str
    value: bytes
    parsed: Any = None
    error: InvalidEvent | None = None


@dataclass
class ProduceReport:
    """Counts of one produce run.

    Attributes:
        sent: records handed to the producer.
        delivered: records the broker acknowledged.
        invalid: records refused before sending (unreadable or failing validation).
        delivery_failed: records the broker did not acknowledge.
        elapsed_s: wall time of the run.
        failures: the first failures, as ``origin: reason``.
    """

    sent: int = 0
    delivered: int = 0
    invalid: int = 0
    delivery_failed: int = 0
    elapsed_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Records that did not reach the topic: invalid plus undelivered."""
        return self.invalid + self.delivery_failed

    @property
    def rate(self) -> float:
        """Records delivered per second."""
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def note_failure(self, message: str) -> None:
        """Keep ``message`` when fewer than :data:`MAX_REPORTED_FAILURES` are kept."""
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append(message)

    def summary(self) -> str:
        """Return the one-line final count."""
        return (
            f"sent {self.sent:,}, delivered {self.delivered:,}, failed {self.failed:,} "
            f"(invalid {self.invalid:,}, undelivered {self.delivery_failed:,}) "
            f"in {self.elapsed_s:,.1f} s ({self.rate:,.0f} records/s)"
        )


def _split(parsed: Any) -> list[Any] | None:
    """Return the single-learner parts of a batch record, or ``None`` when it is one already."""
    if type(parsed) is list and len(parsed) > 0:
        return parsed
    if type(parsed) is dict:
        data = parsed.get("data")
        if type(data) is list and len(data) > 1 and ("sensor" in parsed or "dataVersion" in parsed):
            return [{**parsed, "data": [event]} for event in data]
    return None


def records_from_lines(lines: Iterable[bytes], source: str) -> Iterator[OutgoingRecord]:
    """Read JSON Lines: one xAPI statement or array, Caliper envelope, or native event per line.

    Blank lines are skipped; an array or multi-event envelope becomes one record per part.
    """
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        origin = f"{source}:{number}"
        try:
            parsed = parse_json(stripped)
        except InvalidEvent as err:
            yield OutgoingRecord(origin, stripped, error=err)
            continue
        parts = _split(parsed)
        if parts is None:
            yield OutgoingRecord(origin, stripped, parsed)
        else:
            for index, part in enumerate(parts):
                yield OutgoingRecord(f"{origin}[{index}]", orjson.dumps(part), part)


def records_from_file(path: Path) -> Iterator[OutgoingRecord]:
    """Read a JSON Lines file (``-`` for standard input); see :func:`records_from_lines`."""
    if str(path) == "-":
        yield from records_from_lines(sys.stdin.buffer, "stdin")
        return
    with open(path, "rb") as lines:
        yield from records_from_lines(lines, path.name)


def count_lines(path: Path) -> int | None:
    """Return the number of non-blank lines of a file (for the ETA), ``None`` for stdin."""
    if str(path) == "-":
        return None
    with open(path, "rb") as lines:
        return sum(1 for line in lines if line.strip())


def records_from_events(events: Iterable[dict[str, Any]], source: str) -> Iterator[OutgoingRecord]:
    """Wrap already-built events (a generated cohort) as records."""
    for number, event in enumerate(events):
        yield OutgoingRecord(f"{source}:{number}", orjson.dumps(event), event)


def learner_key(record: OutgoingRecord, pseudonymiser: Pseudonymiser) -> bytes:
    """Return the record's key: the pseudonym its (first) event's learner normalises to.

    Raises:
        InvalidEvent: when the record does not normalise.
    """
    if record.error is not None:
        raise record.error
    unmodelled: list[UnmodelledEvent] = []
    events = normalise(record.parsed, pseudonymiser, unmodelled=unmodelled)
    # a valid statement the model does not use still goes to its learner's partition
    return (events[0] if events else unmodelled[0]).learner_id.encode()


class ProgressLine:
    """Prints ``produce: done/total (pct) rate/s, ETA; delivered, failed`` while sending.

    On a terminal the line is rewritten in place twice a second; otherwise a line is printed
    every ``every_s`` seconds so logs stay readable.
    """

    def __init__(
        self, total: int | None, stream: TextIO = sys.stderr, every_s: float = 5.0
    ) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = 0.5 if self.tty else every_s
        self.started = time.monotonic()
        self.last = self.started

    def update(self, report: ProduceReport, *, final: bool = False) -> None:
        """Print the line when it is due (always when ``final``)."""
        now = time.monotonic()
        if not final and now - self.last < self.every_s:
            return
        self.last = now
        done = report.sent + report.invalid
        elapsed = max(now - self.started, 1e-9)
        rate = report.sent / elapsed
        if self.total:
            left = max(self.total - done, 0)
            eta = f"ETA {left / rate:,.0f} s" if rate > 0 else "ETA ?"
            where = f"{done:,}/{self.total:,} ({100 * done / self.total:.1f}%)"
        else:
            eta, where = "", f"{done:,}"
        line = (
            f"produce: {where} {rate:,.0f} records/s{' ' + eta if eta else ''}; "
            f"delivered {report.delivered:,}, failed {report.failed:,}"
        )
        if self.tty:
            self.stream.write(f"\r\x1b[K{line}" + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def produce_records(
    records: Iterable[OutgoingRecord],
    *,
    bootstrap: str,
    topic: str,
    key: bytes | Pseudonymiser,
    rate: float | None = None,
    send_invalid: bool = False,
    compression: str = "lz4",
    progress: ProgressLine | None = None,
    flush_timeout: float = 60.0,
    config: dict[str, Any] | None = None,
) -> ProduceReport:
    """Send records to ``topic``, keyed by learner pseudonym, and wait for their delivery.

    Args:
        records: what to send (from :func:`records_from_file` or :func:`records_from_events`).
        bootstrap: the broker (``TUTORSTREAM_KAFKA_BOOTSTRAP`` or the embedded stack's).
        topic: where to send, normally ``lms.events.v1``.
        key: the pseudonym key (``TUTORSTREAM_PSEUDONYM_KEY``) or a ready pseudonymiser.
        rate: records per second to aim for; as fast as possible when ``None`` or 0.
        send_invalid: send records that do not normalise, without a key, instead of refusing.
        compression: ``lz4`` or ``none``.
        progress: where to report progress; silent when ``None``.
        flush_timeout: seconds to wait at the end for outstanding deliveries.
        config: extra producer settings.

    Returns:
        The counts; ``failed`` is 0 when every record reached the topic.
    """
    pseudonymiser = pseudonymiser_for(key)
    report = ProduceReport()
    producer = Producer(
        producer_config(bootstrap, **{"compression.type": compression, **(config or {})})
    )

    def delivered(err: KafkaError | None, message: Message) -> None:
        if err is None:
            report.delivered += 1
        else:
            report.delivery_failed += 1
            report.note_failure(f"delivery to {message.topic()}: {err.str()}")

    started = time.monotonic()
    interval = 1.0 / rate if rate else 0.0
    for record in records:
        try:
            record_key: bytes | None = learner_key(record, pseudonymiser)
        except InvalidEvent as err:
            if not send_invalid:
                report.invalid += 1
                report.note_failure(f"{record.origin}: {err}")
                continue
            record_key = None
        if interval:
            # Pace against the schedule, not the previous send, so short stalls catch up.
            due = started + report.sent * interval
            while (wait := due - time.monotonic()) > 0:
                producer.poll(min(wait, 0.05))
        _send(producer, topic, record, record_key, delivered, report)
        producer.poll(0)
        if progress is not None:
            progress.update(report)
    remaining = producer.flush(flush_timeout)
    if remaining:
        report.delivery_failed += remaining
        report.note_failure(f"{remaining} records not acknowledged within {flush_timeout:.0f} s")
    report.elapsed_s = time.monotonic() - started
    if progress is not None:
        progress.update(report, final=True)
    return report


def _send(
    producer: Producer,
    topic: str,
    record: OutgoingRecord,
    key: bytes | None,
    on_delivery: Callable[[KafkaError | None, Message], None],
    report: ProduceReport,
) -> None:
    while True:
        try:
            producer.produce(topic, value=record.value, key=key, on_delivery=on_delivery)
        except BufferError:
            # The local queue is full: serve delivery reports until there is room.
            producer.poll(0.05)
            continue
        except KafkaException as err:
            report.delivery_failed += 1
            report.note_failure(f"{record.origin}: {err.args[0].str()}")
            return
        report.sent += 1
        return

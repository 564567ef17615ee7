"""`tutorstream topics inspect`: offsets, consumer-group lag, rate and a pseudonymised sample."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
import typer
from confluent_kafka import Consumer, TopicPartition

from common.kafka import consumer_config
from schemas.events import UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from schemas.profiles import PROFILE_HEADER, ProfileError, ProfileSet, load_profiles
from schemas.profiles.compiled import CompiledProfile, compile_profiles
from schemas.pseudonym import Pseudonymiser
from schemas.records import DeadLetter
from schemas.topics import LMS_EVENTS, LMS_EVENTS_DLQ
from tutorstream import kafka
from tutorstream.settings import Settings


@dataclass(slots=True)
class TopicReport:
    """What ``inspect`` found on one topic.

    Attributes:
        topic: the topic.
        offsets: partition -> (low, high) watermarks.
        rate: records per second over the sampling interval (from the high watermarks).
        lag: consumer group -> records behind the high watermarks, over all partitions.
        sample: a few recent records, pseudonymised.
        modelled: of the records scanned on a raw events topic, learning events by type.
        unmodelled: of those records, valid statements the model does not use, by
            ``verb (profile)``.
        invalid: of those records, how many are invalid (dead letters for the worker).
    """

    topic: str
    offsets: dict[int, tuple[int, int]]
    rate: float
    lag: dict[str, int] = field(default_factory=dict)
    sample: list[str] = field(default_factory=list)
    modelled: dict[str, int] = field(default_factory=dict)
    unmodelled: dict[str, int] = field(default_factory=dict)
    invalid: int = 0


def _watermarks(consumer: Consumer, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    found = {}
    for p in range(partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        found[p] = (int(low), int(high))
    return found


def _groups(bootstrap: str, timeout: float) -> list[str]:
    # the admin client must outlive the future, or librdkafka cancels the request
    admin = kafka.admin_client(bootstrap)
    try:
        listed = admin.list_consumer_groups().result(timeout)
    except Exception:  # a broker without ListGroups: no lag to show, not a failure
        return []
    return sorted(g.group_id for g in listed.valid)


def _lag(bootstrap: str, group: str, topic: str, offsets: dict[int, tuple[int, int]]) -> int | None:
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in offsets], timeout=10)
    finally:
        consumer.close()
    positions = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
    if not positions:
        return None
    return sum(max(0, offsets[p][1] - o) for p, o in positions.items())


def _profile_of(message: Any) -> str:
    for name, value in message.headers() or ():
        if name == PROFILE_HEADER and value:
            return bytes(value).decode("utf-8", "replace")
    return ""


def _tally(
    report: TopicReport,
    messages: list[Any],
    pseudonymiser: Pseudonymiser,
    profiles: dict[str, CompiledProfile],
    default: str,
) -> None:
    """Count how the worker reads raw records: modelled, unmodelled (verb, profile), invalid."""
    for message in messages:
        profile = profiles.get(_profile_of(message) or default)
        if profile is None:
            report.invalid += 1  # names a profile that is not loaded: the worker dead-letters it
            continue
        unmodelled: list[UnmodelledEvent] = []
        try:
            events = normalise(
                message.value() or b"", pseudonymiser, profile=profile, unmodelled=unmodelled
            )
        except InvalidEvent:
            report.invalid += 1
            continue
        for event in events:
            name = event.event_type.value
            report.modelled[name] = report.modelled.get(name, 0) + 1
        for stored in unmodelled:
            name = f"{stored.verb} ({stored.profile})"
            report.unmodelled[name] = report.unmodelled.get(name, 0) + 1


def _shown(kind: str, value: bytes, pseudonymiser: Pseudonymiser) -> str:
    # Raw topics hold names and emails: show what the pipeline would make of a record.
    if kind == "events":
        unmodelled: list[UnmodelledEvent] = []
        try:
            events = normalise(value, pseudonymiser, unmodelled=unmodelled)
        except InvalidEvent as err:
            return f"(invalid: {err.path}: {err.reason})"
        return " ".join(
            [e.model_dump_json() for e in events]
            + [f"(unmodelled: {u.verb}: {u.reason})" for u in unmodelled]
        )
    if kind == "dlq":
        try:
            letter = DeadLetter.model_validate_json(value)
        except ValueError:
            return "(not a dead letter)"
        return orjson.dumps(
            letter.model_dump(mode="json", exclude={"original_b64", "key_b64"})
        ).decode()
    return value.decode(errors="replace")


def inspect_topic(
    bootstrap: str,
    topic: str,
    pseudonym_key: bytes,
    sample: int = 3,
    interval: float = 1.0,
    *,
    kind: str = "output",
    scan: int = 0,
    profiles: ProfileSet | None = None,
) -> TopicReport:
    """Return offsets, rate, lag per consumer group and a sample of ``topic``.

    Args:
        bootstrap: Kafka bootstrap servers.
        topic: the topic.
        pseudonym_key: the pipeline's pseudonym key (raw events are shown normalised).
        sample: how many recent records to show.
        interval: seconds between the two watermark readings the rate comes from.
        kind: ``events`` (raw learning events: shown normalised), ``dlq`` (dead letters:
            shown without their raw bytes) or ``output`` (already pseudonymised).
        scan: on an ``events`` topic, how many recent records per partition to read and
            count as modelled (by event type), unmodelled (by verb and profile) or invalid.
        profiles: the profiles records are read with (the built-in one when ``None``).
    """
    partitions = kafka.wait_for_topics(bootstrap, [topic], timeout=10)[topic]
    consumer = Consumer(consumer_config(bootstrap, f"inspect-{uuid.uuid4().hex[:8]}"))
    pseudonymiser = pseudonymiser_for(pseudonym_key)
    try:
        first = _watermarks(consumer, topic, partitions)
        time.sleep(interval)
        offsets = _watermarks(consumer, topic, partitions)
        rate = sum(offsets[p][1] - first[p][1] for p in offsets) / interval
        report = TopicReport(topic, offsets, rate)
        if sample:
            consumer.assign(
                [
                    TopicPartition(topic, p, max(low, high - sample))
                    for p, (low, high) in offsets.items()
                    if high > low
                ]
            )
            seen: list[Any] = []
            deadline = time.monotonic() + 2.0
            while len(seen) < sample and time.monotonic() < deadline:
                seen += [m for m in consumer.consume(100, 0.1) if m.error() is None]
            report.sample = [
                f"{m.partition()}:{m.offset()} {_shown(kind, m.value() or b'', pseudonymiser)}"
                for m in seen[:sample]
            ]
        if kind == "events" and scan:
            loaded = profiles or load_profiles()
            compiled = compile_profiles(loaded)
            wanted = {p: max(low, high - scan) for p, (low, high) in offsets.items() if high > low}
            consumer.assign([TopicPartition(topic, p, start) for p, start in wanted.items()])
            total = sum(offsets[p][1] - start for p, start in wanted.items())
            scanned: list[Any] = []
            deadline = time.monotonic() + 10.0
            while len(scanned) < total and time.monotonic() < deadline:
                scanned += [m for m in consumer.consume(500, 0.2) if m.error() is None]
            _tally(report, scanned, pseudonymiser, compiled, loaded.default)
    finally:
        consumer.close()
    for group in _groups(bootstrap, 10):
        lag = _lag(bootstrap, group, topic, offsets)
        if lag is not None:
            report.lag[group] = lag
    return report


def inspect(
    topic: Annotated[
        list[str] | None,
        typer.Option(help="Topic (repeatable); lms.events.v1 with the topic prefix."),
    ] = None,
    sample: Annotated[int, typer.Option(min=0, help="Records to show per topic.")] = 3,
    scan: Annotated[
        int,
        typer.Option(
            min=0,
            help="Recent records per partition of the raw events topic to count as modelled, "
            "unmodelled (by verb and profile) or invalid.",
        ),
    ] = 500,
) -> None:
    """Show partitions, offsets, lag per consumer group, rate and a pseudonymised sample."""
    from streams.settings import StreamSettings
    from tutorstream.stack import StackError, kafka_bootstrap

    try:
        bootstrap = kafka_bootstrap(Settings())
    except StackError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    stream = StreamSettings(kafka_bootstrap=bootstrap)
    key = stream.pseudonym_key.get_secret_value().encode()
    for name in topic or [stream.topic(LMS_EVENTS.name)]:
        try:
            kinds = {
                stream.topic(LMS_EVENTS.name): "events",
                stream.topic(LMS_EVENTS_DLQ.name): "dlq",
            }
            report = inspect_topic(
                bootstrap,
                name,
                key,
                sample,
                kind=kinds.get(name, "output"),
                scan=scan,
                profiles=stream.profiles.load(),
            )
        except (kafka.KafkaSetupError, ProfileError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{report.topic}  ({report.rate:,.0f} records/s now)")
        typer.echo(f"  {'partition':>9} {'low':>10} {'high':>10}")
        for p, (low, high) in report.offsets.items():
            typer.echo(f"  {p:>9} {low:>10} {high:>10}")
        for group, lag in report.lag.items():
            typer.echo(f"  lag of {group}: {lag:,}")
        if report.modelled or report.unmodelled or report.invalid:
            typer.echo(f"  of the last {scan:,} records per partition:")
            for event_type, count in sorted(report.modelled.items()):
                typer.echo(f"    modelled    {count:>8,}  {event_type}")
            for verb, count in sorted(report.unmodelled.items(), key=lambda kv: -kv[1]):
                typer.echo(f"    unmodelled  {count:>8,}  {verb}")
            typer.echo(f"    invalid     {report.invalid:>8,}")
        for line in report.sample:
            typer.echo(f"  {line}")

"""`tutorstream topics check`: does each topic keep the history the catalogue promises?

Replay rebuilds the store from ``lms.events.v1`` and re-drives ``lms.events.dlq.v1``, so those
topics must keep at least the catalogue's retention. The check reads every topic's live
configuration with ``DescribeConfigs`` and compares ``cleanup.policy`` and ``retention.ms``
with the catalogue (``schemas/topics.py``).

Brokers differ in what they report. Apache Kafka answers every key, with its broker default
when the topic does not set one. Tansu 0.6 answers only the keys set when the topic was
created (labelled as defaults), and nothing for a topic created without configuration. A key
the broker does not report cannot be confirmed, and the check says so and fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import typer
from confluent_kafka import KafkaException

# re-exported by confluent_kafka.admin without __all__, so mypy sees them as private
from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

from schemas.topics import CATALOGUE, DAY_MS, CleanupPolicy, TopicSpec
from tutorstream import kafka
from tutorstream.settings import Settings

RETENTION_KEYS = ("cleanup.policy", "retention.ms", "retention.bytes")


def duration(ms: int) -> str:
    """Return ``ms`` as days when whole, else as milliseconds; ``-1`` is forever."""
    if ms < 0:
        return "forever"
    if ms % DAY_MS == 0:
        return f"{ms // DAY_MS} days"
    return f"{ms / DAY_MS:.2f} days" if ms >= DAY_MS else f"{ms} ms"


@dataclass(slots=True)
class RetentionCheck:
    """What the broker reports for one catalogue topic, against the catalogue.

    Attributes:
        topic: the topic's name on the broker (with any prefix).
        spec: the catalogue entry.
        exists: whether the broker has the topic.
        reported: the retention keys the broker reported, with their values.
        problems: why the topic does not keep what the catalogue asks (empty when it does).
        notes: what is worth knowing but not wrong (a longer retention, a size limit).
    """

    topic: str
    spec: TopicSpec
    exists: bool = True
    reported: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the topic keeps at least what the catalogue asks."""
        return not self.problems


def _judge(check: RetentionCheck) -> None:
    spec, reported = check.spec, check.reported
    policy = reported.get("cleanup.policy")
    if policy is None:
        check.problems.append(
            f"broker did not report cleanup.policy (catalogue: {spec.cleanup_policy.value})"
        )
    elif {p.strip() for p in policy.split(",")} != {spec.cleanup_policy.value}:
        check.problems.append(
            f"cleanup.policy is {policy}, catalogue says {spec.cleanup_policy.value}"
        )
    if spec.cleanup_policy is CleanupPolicy.COMPACT:
        check.notes.append("compacted: keeps the latest record per key, not history")
    elif spec.retention_ms is not None:
        value = reported.get("retention.ms")
        wanted = duration(spec.retention_ms)
        if value is None:
            check.problems.append(
                f"broker did not report retention.ms; cannot confirm it keeps {wanted}"
            )
        else:
            kept = int(value)
            if 0 <= kept < spec.retention_ms:
                check.problems.append(
                    f"retention.ms keeps {duration(kept)}, catalogue needs at least {wanted}"
                )
            elif kept != spec.retention_ms:
                check.notes.append(f"keeps {duration(kept)}, longer than the catalogue's {wanted}")
    size = reported.get("retention.bytes")
    if size is not None and int(size) >= 0 and spec.cleanup_policy is CleanupPolicy.DELETE:
        check.notes.append(f"retention.bytes={size} may delete history before retention.ms does")


def check_retention(
    bootstrap: str,
    specs: tuple[TopicSpec, ...] = CATALOGUE,
    prefix: str = "",
    timeout: float = 10.0,
) -> list[RetentionCheck]:
    """Compare each topic's live retention settings with its catalogue entry.

    Args:
        bootstrap: Kafka bootstrap servers.
        specs: the catalogue entries to check.
        prefix: put before every catalogue name (``TUTORSTREAM_TOPIC_PREFIX``).
        timeout: seconds to wait for the broker.

    Raises:
        kafka.KafkaSetupError: when the broker does not answer, or refuses DescribeConfigs.
    """
    present = kafka.topic_partitions(bootstrap, timeout=timeout)
    checks = [RetentionCheck(prefix + spec.name, spec) for spec in specs]
    for check in checks:
        if check.topic not in present:
            check.exists = False
            check.problems.append("missing (run `tutorstream topics create`)")
    asked = [ConfigResource(ResourceType.TOPIC, c.topic) for c in checks if c.exists]
    if asked:
        # the admin client must outlive the futures, or librdkafka cancels the request
        admin = kafka.admin_client(bootstrap)
        futures = admin.describe_configs(asked, request_timeout=timeout)
        by_topic = {resource.name: future for resource, future in futures.items()}
        for check in checks:
            if not check.exists:
                continue
            try:
                entries = by_topic[check.topic].result(timeout)
            except KafkaException as err:
                raise kafka.KafkaSetupError(
                    f"broker at {bootstrap} refused DescribeConfigs for {check.topic}: "
                    f"{err.args[0]}"
                ) from err
            check.reported = {
                key: str(entry.value)
                for key, entry in entries.items()
                if key in RETENTION_KEYS and entry.value is not None
            }
            _judge(check)
    return checks


def check(
    bootstrap: Annotated[
        str | None,
        typer.Option(help="Broker to use instead of TUTORSTREAM_KAFKA_BOOTSTRAP / the stack's."),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="Topic name prefix; TUTORSTREAM_TOPIC_PREFIX when omitted."),
    ] = None,
) -> None:
    """Check that each topic keeps the history the catalogue asks; exits with 3 when not.

    Reads cleanup.policy and retention.ms from the broker (DescribeConfigs): the retention
    must be at least the catalogue's, since replay can only read what the topics still hold.
    """
    from streams.settings import StreamSettings
    from tutorstream.stack import StackError, kafka_bootstrap

    try:
        target = bootstrap or kafka_bootstrap(Settings())
        checks = check_retention(
            target, prefix=StreamSettings().topic_prefix if prefix is None else prefix
        )
    except (StackError, kafka.KafkaSetupError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    width = max(len(c.topic) for c in checks)
    typer.echo(f"{'topic':<{width}}  {'cleanup.policy':<22}  {'retention.ms':<24}  verdict")
    unreported = False
    for c in checks:
        wanted_policy = c.spec.cleanup_policy.value
        policy = f"{c.reported.get('cleanup.policy', '?')} ({wanted_policy})"
        if c.spec.retention_ms is None or c.spec.cleanup_policy is CleanupPolicy.COMPACT:
            wanted = "any"
        else:
            wanted = duration(c.spec.retention_ms)
        kept = c.reported.get("retention.ms")
        shown = "not reported" if kept is None else duration(int(kept))
        retention = f"{shown} ({wanted})"
        if not c.exists:
            policy = retention = "-"
        typer.echo(f"{c.topic:<{width}}  {policy:<22}  {retention:<24}  {'ok' if c.ok else 'FAIL'}")
        for line in c.problems:
            typer.echo(f"  problem: {line}")
            unreported = unreported or "did not report" in line
        for line in c.notes:
            typer.echo(f"  note: {line}")
    typer.echo("(in brackets: what the catalogue asks; retention is a minimum)")
    if unreported:
        typer.echo(
            "note: this broker reports only some topic settings (Tansu reports only those set "
            "when the topic was created); set them explicitly or check them on the broker."
        )
    if not all(c.ok for c in checks):
        raise typer.Exit(3)

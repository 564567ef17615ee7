"""Kafka clients for the wiring: topic administration and the read-rate baseline.

Works on any Kafka-protocol broker (Tansu here, Apache Kafka in production). The client settings
are :mod:`common.kafka`'s.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from common.kafka import admin_config, consumer_config
from schemas.topics import TopicSpec


class KafkaSetupError(RuntimeError):
    """Raised when topics cannot be created, listed or deleted on the broker."""


def admin_client(bootstrap: str) -> AdminClient:
    """Return an admin client for ``bootstrap`` (``host:port[,host:port...]``).

    It reaches the brokers with the ``TUTORSTREAM_KAFKA_SECURITY__*`` settings.
    """
    return AdminClient(admin_config(bootstrap))


class TopicOutcome(StrEnum):
    """What ``create_topics`` did with one topic."""

    CREATED = "created"
    EXISTS = "exists"


@dataclass(frozen=True, slots=True)
class TopicResult:
    """The outcome for one topic of :func:`create_topics`.

    Attributes:
        name: the topic.
        outcome: created now, or found already there.
        partitions: partitions the topic has on the broker.
        expected_partitions: partitions the spec asks for; differs from ``partitions`` when an
            existing topic was made with another count (it is left as it is: shrinking is not
            possible and growing would move learners between partitions).
    """

    name: str
    outcome: TopicOutcome
    partitions: int
    expected_partitions: int

    @property
    def matches(self) -> bool:
        """Whether the topic has the partition count its spec asks for."""
        return self.partitions == self.expected_partitions


def produce_waiting(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
    """Queue one record, serving delivery reports while the local queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)


def topic_partitions(bootstrap: str, timeout: float = 10.0) -> dict[str, int]:
    """Return every topic on the broker (internal ones excluded) with its partition count.

    Raises:
        KafkaSetupError: when the broker does not answer within ``timeout``.
    """
    try:
        metadata = admin_client(bootstrap).list_topics(timeout=timeout)
    except KafkaException as err:
        raise KafkaSetupError(f"broker at {bootstrap} did not answer: {err}") from err
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if not name.startswith("__") and topic.error is None
    }


def create_topics(
    bootstrap: str, specs: Iterable[TopicSpec], timeout: float = 30.0
) -> list[TopicResult]:
    """Create the topics of ``specs`` that do not exist yet; leave the others as they are.

    Idempotent: running it again reports every topic as ``exists``. Returns once every topic
    shows in the broker's metadata with its partitions, so producers can start right away.

    Raises:
        KafkaSetupError: when the broker refuses a topic or does not answer in time.
    """
    specs = list(specs)
    admin = admin_client(bootstrap)
    existing = topic_partitions(bootstrap, timeout=timeout)
    wanted = [spec for spec in specs if spec.name not in existing]
    created: set[str] = set()
    if wanted:
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor,
                    config=spec.config(),
                )
                for spec in wanted
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                created.add(name)
            except KafkaException as err:
                # Another process may have created it between our listing and our request.
                if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaSetupError(
                        f"cannot create topic {name}: {err.args[0].str()}"
                    ) from err
    partitions = wait_for_topics(bootstrap, [spec.name for spec in specs], timeout=timeout)
    return [
        TopicResult(
            name=spec.name,
            outcome=TopicOutcome.CREATED if spec.name in created else TopicOutcome.EXISTS,
            partitions=partitions[spec.name],
            expected_partitions=spec.partitions,
        )
        for spec in specs
    ]


def wait_for_topics(bootstrap: str, names: Iterable[str], timeout: float = 30.0) -> dict[str, int]:
    """Wait until every topic in ``names`` shows in the metadata; return their partition counts.

    Raises:
        KafkaSetupError: when a topic is still missing after ``timeout`` seconds.
    """
    names = list(names)
    deadline = time.monotonic() + timeout
    while True:
        found = topic_partitions(bootstrap, timeout=timeout)
        missing = [name for name in names if found.get(name, 0) == 0]
        if not missing:
            return {name: found[name] for name in names}
        if time.monotonic() > deadline:
            raise KafkaSetupError(f"topics not visible after {timeout:.0f}s: {', '.join(missing)}")
        time.sleep(0.1)


def delete_topics(bootstrap: str, names: Iterable[str], timeout: float = 30.0) -> None:
    """Delete topics; ones that do not exist are ignored.

    Raises:
        KafkaSetupError: when the broker refuses to delete one.
    """
    names = list(names)
    if not names:
        return
    # The client must outlive its futures: a collected client fails them with _DESTROY.
    admin = admin_client(bootstrap)
    futures = admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as err:
            if err.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaSetupError(f"cannot delete topic {name}: {err.args[0].str()}") from err


def read_rate(bootstrap: str, spec: TopicSpec, expected: int, timeout: float = 300.0) -> float:
    """Return how many records/s a plain consumer reads and JSON-decodes from ``spec``'s start.

    The baseline of the benchmarks: reading the topic is the least any pipeline over it costs.
    Stops after ``expected`` records or ``timeout`` seconds.
    """
    consumer = Consumer(consumer_config(bootstrap, f"bench-{uuid.uuid4().hex}"))
    consumer.assign([TopicPartition(spec.name, p, 0) for p in range(spec.partitions)])
    seen, started = 0, time.perf_counter()
    try:
        while seen < expected and time.perf_counter() - started < timeout:
            for message in consumer.consume(10_000, 0.05):
                if message.error() is None:
                    orjson.loads(message.value() or b"{}")
                    seen += 1
    finally:
        consumer.close()
    elapsed = time.perf_counter() - started
    return seen / elapsed if elapsed > 0 else 0.0

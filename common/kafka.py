"""The Kafka client settings every producer and consumer of tutorstream starts from.

Settings for librdkafka (``confluent_kafka``) clients. They work on any Kafka-protocol broker
(Tansu here, Apache Kafka in production) and carry what the embedded broker needs to be quick: a
short fetch wait and large fetch sizes, or a consumer polls in small slices and crawls. A caller
passes only what differs for its use as ``overrides``.
"""

from __future__ import annotations

from typing import Any


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Return settings for an idempotent, ordered producer (``acks=all``, lz4).

    Idempotence keeps retries from duplicating or reordering a learner's events on a partition.

    Args:
        bootstrap: the brokers, ``host:port[,host:port]``.
        **overrides: librdkafka settings that replace or add to the defaults.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        # Java's and aiokafka's partitioner (common.partitioning.partition_for): a learner's
        # records land on the partition whose stream worker holds that learner's state
        # (librdkafka's default hashes differently).
        "partitioner": "murmur2_random",
        "compression.type": "lz4",
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 200_000,
    }
    config.update(overrides)
    return config


def consumer_config(bootstrap: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Return consumer settings that read quickly from the start of the log, never auto-committing.

    Large fetch sizes and a short fetch wait: with the defaults a consumer on Tansu receives a
    few records per round trip.

    Args:
        bootstrap: the brokers, ``host:port[,host:port]``.
        group_id: the consumer group.
        **overrides: librdkafka settings that replace or add to the defaults.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 50,
        "fetch.min.bytes": 1,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "queued.max.messages.kbytes": 256 * 1024,
    }
    config.update(overrides)
    return config

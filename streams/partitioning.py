"""The learner → partition rule, shared by the worker and by replay.

A learner's state lives on the partition Kafka's default partitioner picks for its pseudonym,
so the worker (which forwards an event keyed otherwise) and a replay (which places events where
the live pipeline keeps them) must pick the same one.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: str, partitions: int) -> int:
    """Return the partition Kafka's default partitioner picks for ``key`` (murmur2)."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions

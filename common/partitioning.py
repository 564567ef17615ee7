"""The learner → partition rule: Kafka's default partitioner (murmur2), as Java and aiokafka.

A learner's records must land on the partition whose stream worker holds that learner's state.
The Faust worker's producer (aiokafka) and every librdkafka producer (``partitioner:
murmur2_random``, see :func:`common.kafka.producer_config`) pick partitions this way;
:func:`partition_for` computes the same choice where code needs it without producing, such as a
worker deciding whether it owns a learner, or a replay placing a record.
"""

from __future__ import annotations

import random
import struct
from typing import Final, TypeVar

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
_WORDS: Final = struct.Struct("<I")
_K = TypeVar("_K", str, bytes)


def murmur2(data: bytes) -> int:
    """Return Kafka's 32-bit murmur2 hash of ``data`` (unsigned; Java's ``Utils.murmur2``)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    aligned = length - length % 4
    for (k,) in _WORDS.iter_unpack(data[:aligned]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length - aligned
    if tail == 3:
        h ^= data[aligned + 2] << 16
    if tail >= 2:
        h ^= data[aligned + 1] << 8
    if tail >= 1:
        h ^= data[aligned]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: str, partitions: int) -> int:
    """Return the partition Kafka's default partitioner picks for ``key`` among ``partitions``.

    Args:
        key: the record key, a learner's pseudonym; hashed as UTF-8.
        partitions: how many partitions the topic has.

    Raises:
        ValueError: when ``partitions`` is not positive.
    """
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class PartitionCache:
    """:func:`partition_for`, remembered for the keys seen before.

    A class's few hundred learners are hashed once each rather than once per record (murmur2
    in Python costs more than the rest of placing a record). Forgets all past ``limit`` keys.
    """

    def __init__(self, partitions: int, limit: int = 65_536) -> None:
        self.partitions = partitions
        self._limit = limit
        self._found: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        """Return the partition of ``key``."""
        found = self._found.get(key)
        if found is None:
            found = _remember(self._found, self._limit, key, partition_for(key, self.partitions))
        return found


class CachedPartitioner:
    """aiokafka's default partitioner, with each key's murmur2 remembered.

    The worker's producer keys every intervention, prompt and recommendation by learner (see
    :class:`PartitionCache`).
    """

    def __init__(self, limit: int = 65_536) -> None:
        self._limit = limit
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        """Pick the partition of ``key`` as aiokafka's ``DefaultPartitioner`` does."""
        if key is None:  # as aiokafka: any partition, an available one if there is one
            return random.choice(available or all_partitions)
        hashed = self._hashes.get(key)
        if hashed is None:
            hashed = _remember(self._hashes, self._limit, key, murmur2(key) & 0x7FFFFFFF)
        return all_partitions[hashed % len(all_partitions)]


def _remember(found: dict[_K, int], limit: int, key: _K, value: int) -> int:
    """Keep ``value`` for ``key`` in ``found``, emptied first once it holds ``limit`` keys."""
    if len(found) >= limit:
        found.clear()
    found[key] = value
    return value

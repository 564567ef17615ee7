"""The learner → partition rule: Kafka's default partitioner (murmur2), as Java and aiokafka.

A learner's records must land on the partition whose stream worker holds that learner's state.
The Faust worker's producer (aiokafka) and every librdkafka producer (``partitioner:
murmur2_random``, see :func:`common.kafka.producer_config`) pick partitions this way;
:func:`partition_for` computes the same choice where code needs it without producing, such as a
worker deciding whether it owns a learner, or a replay placing a record.
"""

from __future__ import annotations

import struct
from typing import Final

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
_WORDS: Final = struct.Struct("<I")


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

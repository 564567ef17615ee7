from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from common.partitioning import CachedPartitioner, PartitionCache, murmur2, partition_for

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("key", "signed"),
    [
        # Apache Kafka's own expectations for Utils.murmur2 (UtilsTest), as Java ints
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ("abc", 479470107),
    ],
)
def test_murmur2_is_kafkas(key: str, signed: int) -> None:
    assert murmur2(key.encode()) == signed & 0xFFFFFFFF


@pytest.mark.parametrize(
    ("key", "on_12", "on_3"),
    [
        # pinned from the worker's rule before it moved here (aiokafka's murmur2)
        ("", 9, 0),
        ("a", 4, 1),
        ("ab", 2, 2),
        ("abc", 3, 0),
        ("abcd", 8, 2),
        ("learner-1", 7, 1),
        ("learner-42", 11, 2),
        ("7c9e6679f2d5d7a41c5b3e2a8f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6", 10, 1),
        ("élève-ü", 9, 0),
    ],
)
def test_learners_keep_their_partitions(key: str, on_12: int, on_3: int) -> None:
    assert partition_for(key, 12) == on_12
    assert partition_for(key, 3) == on_3


@given(st.text(max_size=80), st.integers(min_value=1, max_value=256))
def test_the_workers_producer_places_every_key_here(key: str, partitions: int) -> None:
    # the Faust worker's producer is aiokafka's: its partitioner must agree with ours
    expected = (aiokafka_murmur2(key.encode()) & 0x7FFFFFFF) % partitions
    assert partition_for(key, partitions) == expected


@pytest.mark.parametrize("partitions", [0, -1])
def test_a_topic_without_partitions_is_refused(partitions: int) -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for("learner-1", partitions)


def test_the_cached_partitioner_picks_as_aiokafka_does() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    cached, theirs = CachedPartitioner(limit=50), DefaultPartitioner()
    keys = [f"learner-{n}".encode() for n in range(200)] * 2  # past the limit, and again
    for partitions in ([0, 1, 2], list(range(12)), [3, 5, 8]):
        for key in keys:
            assert cached(key, partitions, partitions) == theirs(key, partitions, partitions)
    assert cached(None, [0, 1, 2], [1]) == 1  # no key: an available partition


def test_the_partition_cache_answers_as_partition_for_and_forgets_past_its_limit() -> None:
    placed = PartitionCache(12, limit=10)
    keys = [f"learner-{n}" for n in range(25)]
    assert [placed(k) for k in keys + keys] == [partition_for(k, 12) for k in keys + keys]
    assert len(placed._found) <= 10

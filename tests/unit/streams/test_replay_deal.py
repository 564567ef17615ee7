from __future__ import annotations

import pytest

from streams.replay.plan import Range
from streams.replay.pool import deal

pytestmark = pytest.mark.unit


def test_partitions_are_dealt_by_number_to_at_most_as_many_processes() -> None:
    ranges = [Range(t, p, 0, 10, False) for t in ("a", "b") for p in range(5)]

    shares = deal(ranges, 2)
    assert [sorted(owned) for owned, _ in shares] == [[0, 2, 4], [1, 3]]
    assert all({r.partition for r in share} == owned for owned, share in shares)
    assert sorted(r.key for _, share in shares for r in share) == sorted(r.key for r in ranges)
    assert len(deal(ranges, 9)) == 5

"""The worker's memory of the records it has dead-lettered (``streams.app.RecentRecords``)."""

from __future__ import annotations

import pytest

from streams.app import RecentRecords

pytestmark = pytest.mark.unit


def test_a_record_read_again_is_known_until_newer_ones_push_it_out() -> None:
    seen = RecentRecords(3)
    for offset in range(3):
        seen.add(("lms.events.v1", 0, offset))
    assert ("lms.events.v1", 0, 1) in seen
    assert ("lms.events.v1", 1, 1) not in seen, "another partition's offset 1 is another record"
    seen.add(("lms.events.v1", 0, 0))  # added again: the newest now
    seen.add(("lms.events.v1", 0, 3))
    assert len(seen) == 3
    assert ("lms.events.v1", 0, 1) not in seen, "the oldest went"
    assert ("lms.events.v1", 0, 0) in seen and ("lms.events.v1", 0, 3) in seen

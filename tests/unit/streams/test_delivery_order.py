"""The worker's check of the offsets Faust delivers: every skip is seen."""

from __future__ import annotations

import pytest

from streams.app import DeliveryOrder

pytestmark = pytest.mark.unit


def test_records_in_order_and_records_delivered_again_are_no_skip() -> None:
    order = DeliveryOrder()
    assert [order.check("p0", o, 10) for o in (10, 11, 12)] == [None] * 3
    # after a rebalance Faust seeks back to the commit: those come again
    assert [order.check("p0", o, 10) for o in (10, 11, 12, 13)] == [None] * 4


def test_a_skip_is_reported_from_its_first_missing_offset() -> None:
    order = DeliveryOrder()
    assert order.check("p0", 10, 10) is None
    assert order.check("p0", 17, 10) == 11, "11..16 were fetched and never delivered"
    assert order.check("p0", 18, 10) is None
    # read again from the commit after a rebalance: no new skip
    order.reset()
    assert [order.check("p0", o, 11) for o in range(11, 19)] == [None] * 8


def test_the_first_record_after_an_assignment_is_checked_against_the_commit() -> None:
    order = DeliveryOrder()
    assert order.check("p1", 4157, 4140) == 4140
    assert order.check("p2", 7, None) is None, "nothing committed: nothing to check"
    assert order.check("p3", 3, 3) is None, "partitions are apart"

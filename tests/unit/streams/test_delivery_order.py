"""The worker's check of the offsets Faust delivers: nothing processed past a hole."""

from __future__ import annotations

import pytest

from streams.app import DeliveryOrder

pytestmark = pytest.mark.unit

TAKE, DROP = DeliveryOrder.TAKE, DeliveryOrder.DROP


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_records_in_order_and_records_delivered_again_are_taken() -> None:
    order = DeliveryOrder()
    assert [order.check("p0", o, 10) for o in (10, 11, 12)] == [TAKE] * 3
    # after a rebalance Faust seeks back to the commit: those come again, and are taken
    assert [order.check("p0", o, 10) for o in (10, 11, 12, 13)] == [TAKE] * 4


def test_a_record_after_a_hole_is_dropped_and_the_hole_fetched_again() -> None:
    clock = Clock()
    order = DeliveryOrder(retry_s=1.0, clock=clock)
    assert order.check("p0", 10, 10) == TAKE
    # 11..16 were fetched and never delivered: 17 must wait for them
    assert order.check("p0", 17, 10) == 11
    # the rest of the fetch under way still comes: dropped, without seeking again
    assert order.check("p0", 18, 10) == DROP
    assert order.due() == [], "not due again yet"
    clock.now = 0.5
    assert order.check("p0", 19, 10) == DROP
    # the seek brought them back, in order
    assert [order.check("p0", o, 10) for o in range(11, 20)] == [TAKE] * 9
    clock.now = 5.0
    assert order.due() == [], "filled"


def test_a_hole_still_open_is_due_again_without_more_records() -> None:
    clock = Clock()
    order = DeliveryOrder(retry_s=1.0, clock=clock)
    order.check("p0", 5, 5)
    assert order.check("p0", 9, 5) == 6
    clock.now = 1.0
    assert order.due() == [("p0", 6)]
    assert order.due() == [], "its clock restarted"
    # the broker has nothing at 6..8: accepted, and 9 is the next record
    order.accept("p0", 9)
    assert order.check("p0", 12, 5) == DROP, "still waiting for 9, sought already"
    assert order.check("p0", 9, 5) == TAKE
    assert order.check("p0", 10, 5) == TAKE
    clock.now = 10.0
    assert order.due() == []


def test_the_first_record_after_an_assignment_is_checked_against_the_commit() -> None:
    order = DeliveryOrder()
    assert order.check("p1", 4157, 4140) == 4140
    order.reset()
    assert order.check("p1", 4140, 4140) == TAKE
    assert order.check("p2", 7, None) == TAKE, "nothing committed: nothing to check"
    assert order.check("p3", 3, 3) == TAKE, "partitions are apart"

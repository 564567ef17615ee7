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
    assert [order.check("p0", o, 10)[0] for o in (10, 11, 12)] == [TAKE] * 3
    # after a rebalance Faust seeks back to the commit: those come again, and are taken
    assert [order.check("p0", o, 10)[0] for o in (10, 11, 12, 13)] == [TAKE] * 4


def test_a_record_after_a_hole_is_dropped_and_the_hole_fetched_again() -> None:
    clock = Clock()
    order = DeliveryOrder(retry_s=1.0, clock=clock)
    assert order.check("p0", 10, 10) == (TAKE, None)
    # 11..16 were fetched and never delivered: 17 must wait for them
    assert order.check("p0", 17, 10) == (11, None)
    # the rest of the fetch under way still comes: dropped, without seeking again at once
    assert order.check("p0", 18, 10) == (DROP, None)
    clock.now = 0.5
    assert order.check("p0", 19, 10) == (DROP, None)
    # the seek brought them back, in order
    assert [order.check("p0", o, 10) for o in range(11, 20)] == [(TAKE, None)] * 9


def test_the_first_record_after_an_assignment_is_checked_against_the_commit() -> None:
    order = DeliveryOrder()
    assert order.check("p1", 4157, 4140) == (4140, None)
    order.reset()
    assert order.check("p1", 4140, 4140) == (TAKE, None)
    assert order.check("p1", 7, None) == (TAKE, None), "nothing committed: nothing to check"


def test_a_hole_the_broker_really_has_is_accepted_after_some_seeks() -> None:
    clock = Clock()
    order = DeliveryOrder(retry_s=1.0, max_probes=3, clock=clock)
    order.check("p0", 5, 5)
    answers = []
    for _ in range(4):
        answers.append(order.check("p0", 9, 5))
        clock.now += 1.0
    assert answers == [(6, None), (6, None), (6, None), (TAKE, 6)]
    assert order.check("p0", 10, 5) == (TAKE, None)
    assert order.check("p1", 3, 3) == (TAKE, None), "partitions are apart"

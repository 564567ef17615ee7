from __future__ import annotations

import asyncio
import time

import pytest

from api.feed import FeedItem, Subscription

pytestmark = pytest.mark.unit


class Item:
    """Stands in for a FeedItem: a subscription only reads its partition and offset."""

    partition = 0
    offset = 5


def item() -> FeedItem:
    return Item()  # type: ignore[return-value]


def test_next_waits_for_a_push_and_times_out_without_one():
    async def scenario() -> None:
        subscription = Subscription("c", 10)
        started = time.monotonic()
        assert await subscription.next(0.05) is None
        assert time.monotonic() - started >= 0.045
        assert await subscription.next(0) is None  # no wait at all
        pushed = item()
        waiting = asyncio.create_task(subscription.next(5))
        await asyncio.sleep(0)
        subscription.push(pushed)
        assert await asyncio.wait_for(waiting, 1) is pushed
        # every client of a class wakes on one push
        many = [Subscription("c", 10) for _ in range(50)]
        waits = [asyncio.create_task(s.next(5)) for s in many]
        await asyncio.sleep(0)
        for s in many:
            s.push(pushed)
        assert await asyncio.wait_for(asyncio.gather(*waits), 1) == [pushed] * 50

    asyncio.run(scenario())


def test_close_and_overflow_end_the_wait():
    async def scenario() -> None:
        subscription = Subscription("c", 1)
        waiting = asyncio.create_task(subscription.next(5))
        await asyncio.sleep(0)
        subscription.close()
        assert await asyncio.wait_for(waiting, 1) is None
        full = Subscription("c", 1)
        full.push(item())
        full.push(item())
        assert full.overflowed and full.pending() == 1

    asyncio.run(scenario())

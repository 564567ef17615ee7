from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.app import RecordQueue

pytestmark = pytest.mark.unit


def test_a_batch_takes_what_gathered_oldest_first_up_to_its_size() -> None:
    async def run() -> tuple[list[Any], list[Any], int]:
        queue = RecordQueue(limit=100)
        for n in range(7):
            await queue.put(n)
        first = queue.take(5)
        second = queue.take(5)
        return first, second, len(queue)

    first, second, left = asyncio.run(run())
    assert first == [0, 1, 2, 3, 4]
    assert second == [5, 6]
    assert left == 0


async def _let_others_run() -> None:
    """Give every ready task its turn: what could run now has run when this returns."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_put_waits_while_the_queue_is_full_and_resumes_when_a_batch_is_taken() -> None:
    async def run() -> tuple[bool, bool, list[Any]]:
        queue = RecordQueue(limit=3)
        for n in range(3):
            await queue.put(n)
        blocked = asyncio.ensure_future(queue.put(3))
        await _let_others_run()
        waited = not blocked.done()
        taken = queue.take(2)
        await asyncio.wait_for(blocked, 1.0)
        return waited, blocked.done(), taken + queue.take(10)

    waited, resumed, order = asyncio.run(run())
    assert waited and resumed
    assert order == [0, 1, 2, 3]


def test_waiting_for_records_returns_once_one_arrives() -> None:
    async def run() -> tuple[bool, list[Any]]:
        queue = RecordQueue(limit=10)
        waiting = asyncio.ensure_future(queue.wait_for_records())
        await _let_others_run()
        idle = not waiting.done()
        await queue.put("event")
        await asyncio.wait_for(waiting, 1.0)
        return idle, queue.take(10)

    idle, taken = asyncio.run(run())
    assert idle
    assert taken == ["event"]


def test_the_queue_says_when_it_is_full() -> None:
    async def run() -> list[bool]:
        queue = RecordQueue(limit=2)
        seen = [queue.full]
        for n in range(2):
            await queue.put(n)
            seen.append(queue.full)
        queue.take(1)
        seen.append(queue.full)
        return seen

    assert asyncio.run(run()) == [False, False, True, False]


def test_clearing_drops_every_record_and_lets_a_waiting_put_in() -> None:
    async def run() -> tuple[int, bool, list[Any]]:
        queue = RecordQueue(limit=2)
        for n in range(2):
            await queue.put(n)
        blocked = asyncio.ensure_future(queue.put(2))
        await _let_others_run()
        dropped = queue.clear()
        await _let_others_run()
        return dropped, blocked.done(), queue.take(10)

    dropped, resumed, left = asyncio.run(run())
    assert dropped == 2 and resumed and left == [2]


def test_waiting_for_records_gives_up_after_its_timeout_and_says_whether_any_came() -> None:
    async def run() -> tuple[bool, bool, bool]:
        queue = RecordQueue(limit=10)
        empty = await queue.wait_for_records(0.01)
        waiting = asyncio.ensure_future(queue.wait_for_records(5.0))
        await _let_others_run()
        await queue.put(1)
        return empty, await waiting, await queue.wait_for_records(0.0)

    empty, arrived, at_once = asyncio.run(run())
    assert not empty and arrived and at_once

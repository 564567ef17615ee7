"""Faust's per-record hand-over run eagerly: the same outcomes, without a task per record."""

from __future__ import annotations

import asyncio

import mode
import pytest
from faust.transport.consumer import Consumer

from streams import eager
from streams.eager import Resumed, deliver_eagerly, start

pytestmark = pytest.mark.unit


async def _ready(value: int) -> int:
    return value * 2


async def _after(waited: asyncio.Future[int], trail: list[str]) -> int:
    trail.append("before")
    try:
        got = await waited
    except asyncio.CancelledError:
        trail.append("cancelled")
        raise
    trail.append("after")
    return got + 1


def test_a_coroutine_that_never_waits_is_done_at_once() -> None:
    async def run() -> None:
        assert start(_ready(21)) == (True, 42)

    asyncio.run(run())


def test_a_coroutine_that_waits_goes_on_from_its_wait_once_awaited() -> None:
    async def run() -> None:
        waited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        trail: list[str] = []
        done, rest = start(_after(waited, trail))
        assert not done and isinstance(rest, Resumed)
        assert trail == ["before"]
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        assert not task.done()
        waited.set_result(9)
        assert await task == 10
        assert trail == ["before", "after"]  # the code before the wait ran once

    asyncio.run(run())


def test_cancelling_what_is_left_cancels_the_coroutine_at_its_wait() -> None:
    async def run() -> None:
        waited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        trail: list[str] = []
        _, rest = start(_after(waited, trail))
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert trail == ["before", "cancelled"]
        assert waited.cancelled()

    asyncio.run(run())


def test_errors_propagate_before_and_after_the_wait() -> None:
    async def run() -> None:
        async def fails_at_once() -> None:
            raise ValueError("at once")

        async def fails_later(waited: asyncio.Future[None]) -> None:
            await waited
            raise KeyError("later")

        with pytest.raises(ValueError, match="at once"):
            start(fails_at_once())
        waited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        _, rest = start(fails_later(waited))
        task = asyncio.ensure_future(rest)
        waited.set_result(None)
        with pytest.raises(KeyError, match="later"):
            await task

    asyncio.run(run())


class _Fetching(mode.Service):
    """Stands in for Faust's consumer: a service given the consumer's ``wait_first``."""


@pytest.fixture
def fetching() -> type[_Fetching]:
    deliver_eagerly()
    _Fetching.wait_first = Consumer.wait_first  # type: ignore[method-assign]
    return _Fetching


def test_a_record_with_room_is_handed_over_without_a_task(fetching: type[_Fetching]) -> None:
    async def run() -> None:
        service = fetching()
        suspend = asyncio.Event()
        room: asyncio.Queue[int] = asyncio.Queue(maxsize=4)
        tasks = len(asyncio.all_tasks())

        async def callback(record: int) -> None:
            await room.put(record)

        for record in range(3):
            await service.wait_first(callback(record), suspend.wait())
            assert len(asyncio.all_tasks()) == tasks  # no task made, none left behind
        assert [room.get_nowait() for _ in range(3)] == [0, 1, 2]

    asyncio.run(run())


def test_a_record_waiting_for_room_is_abandoned_when_the_flow_is_suspended(
    fetching: type[_Fetching],
) -> None:
    """A rebalance suspends the flow: a hand-over stuck on a full buffer must give up."""

    async def run() -> None:
        service = fetching()
        suspend = asyncio.Event()
        room: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        room.put_nowait(0)
        handed: list[int] = []

        async def callback(record: int) -> None:
            await room.put(record)
            handed.append(record)

        waiting = asyncio.ensure_future(service.wait_first(callback(1), suspend.wait()))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        suspend.set()
        result = await asyncio.wait_for(waiting, 5)
        assert not result.stopped and len(result.done) == 1
        assert handed == [] and room.qsize() == 1  # the record was not handed over

    asyncio.run(run())


def test_a_record_waiting_for_room_goes_in_once_there_is_room(fetching: type[_Fetching]) -> None:
    async def run() -> None:
        service = fetching()
        suspend = asyncio.Event()
        room: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        room.put_nowait(0)

        async def callback(record: int) -> None:
            await room.put(record)

        waiting = asyncio.ensure_future(service.wait_first(callback(1), suspend.wait()))
        await asyncio.sleep(0.01)
        assert eager.waiting() == 1, "counted while it waits (a stall's log line says so)"
        assert room.get_nowait() == 0
        await asyncio.wait_for(waiting, 5)
        assert room.get_nowait() == 1
        assert eager.waiting() == 0

    asyncio.run(run())

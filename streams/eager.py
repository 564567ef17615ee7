"""Faust's per-record hand-over to the streams, without four tasks per record.

Faust's fetch loop hands every record to its streams with
``wait_first(callback(message), suspend_flow.wait())``, so that a rebalance can abandon a
callback that waits for room in a full stream buffer. ``wait_first`` makes a task of each
argument and of the service's stopped and crashed events, waits for the first to finish and
cancels the other three: some ten turns of the event loop per record, while the callback
nearly always finishes without waiting at all. Measured with py-spy on `tutorstream bench
pipeline`, that machinery was the largest single share of the worker's main thread.

:func:`deliver_eagerly` runs the callback at once, up to its first wait. Most records end
there. One that must wait goes on from that very point inside the same ``wait_first`` as
before, so a rebalance still abandons it.

The callback of the worker's source partitions is its own (:mod:`streams.handover`): it puts
the record in the batch queue, and waits only while that queue is full or the flow is
suspended.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

_ORIGINAL = "_tutorstream_wait_first"
_WAITING = [0]  # hand-overs waiting now (for room in a stream buffer, or for the flow)


def waiting() -> int:
    """How many records' hand-overs are waiting now (0 or 1: the fetch loop is one task)."""
    return _WAITING[0]


class Resumed:
    """A coroutine stopped at its first wait, as an awaitable that goes on from there.

    The future it yielded is yielded again to the task that awaits this, and what the task
    sends or throws back (a result, a cancellation) goes to the coroutine, as ``await``
    would have done had the task started it.
    """

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, None, Any]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation, or an error thrown in by the task
                try:
                    waiting = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                waiting = coro.send(None)
            except StopIteration as stop:
                return stop.value


def start(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``coro`` up to its first wait: ``(True, result)``, or ``(False, what is left)``.

    What is left is a :class:`Resumed` to await (or to make a task of) in its place. An
    exception the coroutine raises before waiting propagates.
    """
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, Resumed(coro, waiting)


def deliver_eagerly() -> None:
    """Make Faust's consumer run each record's callback at once (see the module docstring).

    Patches ``wait_first`` of Faust's consumer class, whose only caller is the fetch loop's
    per-record hand-over; any other call shape goes to the original unchanged.
    """
    from faust.transport.consumer import Consumer
    from mode.services import WaitResults

    original = getattr(Consumer, _ORIGINAL, None) or Consumer.wait_first

    async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
        if timeout is None and len(coros) == 2 and inspect.iscoroutine(coros[0]):
            first, other = coros
            try:
                done, outcome = start(first)
            except BaseException:
                _close(other)
                raise
            if done:
                _close(other)
                return WaitResults([first], [outcome], False)
            coros = (outcome, other)
            _WAITING[0] += 1
            try:
                return await original(self, *coros)
            finally:
                _WAITING[0] -= 1
        return await original(self, *coros, timeout=timeout)

    setattr(Consumer, _ORIGINAL, original)
    setattr(Consumer, "wait_first", wait_first)  # noqa: B010


def _close(other: Awaitable[Any] | Any) -> None:
    # the suspend-flow wait was never started: close it rather than leave it unawaited
    if inspect.iscoroutine(other):
        other.close()

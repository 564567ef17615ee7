"""The source partitions' records go from Faust's conductor to the worker's handler as they are."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.types import TP, Message

from streams.handover import deliver_directly

pytestmark = pytest.mark.unit


def _message(topic: str, offset: int) -> Message:
    return Message(topic, 0, offset, 0.0, 0, None, b"k", b"v", None, tp=TP(topic, 0))


def test_the_named_topics_records_reach_the_handler_and_the_others_keep_fausts() -> None:
    async def run() -> tuple[list[Message], int]:
        # never connects: no credentials, no TLS
        app = faust.App(
            "handover-test",
            broker="kafka://127.0.0.1:1",
            broker_credentials=None,
            ssl_context=None,
            store="memory://",
        )
        source, other = app.topic("source"), app.topic("other", value_serializer="raw")
        received: list[Message] = []

        async def handler(message: Any) -> None:
            received.append(message)

        deliver_directly(app.topics, {"source"}, handler)
        app.flow_control.resume()  # suspended until a worker's first assignment
        conductor: Any = app.topics
        for topic in (source, other):
            conductor.add(topic)
        # what Faust does at each assignment: one handler per partition
        await conductor.on_partitions_assigned({TP("source", 0), TP("other", 0)})
        assert conductor._tp_to_callback[TP("source", 0)] is handler
        assert conductor._tp_to_callback[TP("other", 0)] is not handler
        first, second = _message("source", 7), _message("source", 8)
        await conductor.on_message(first)
        await conductor.on_message(second)
        # the other topic's record went to its channel, as Faust delivers it
        await asyncio.wait_for(conductor.on_message(_message("other", 3)), 10)
        return received, other.queue.qsize()

    received, queued_elsewhere = asyncio.run(run())
    assert [m.offset for m in received] == [7, 8], "each record once, in order, as Faust made it"
    assert all(isinstance(m, Message) for m in received)
    assert queued_elsewhere == 1

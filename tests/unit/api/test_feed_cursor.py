from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.exceptions import BadRequest
from api.feed import FeedItem, Subscription, encode_cursor, parse_cursor
from schemas.records import BehaviouralState, Intervention

pytestmark = pytest.mark.unit

positions = st.dictionaries(st.integers(0, 1000), st.integers(0, 2**62), max_size=40)


@given(positions)
def test_a_cursor_reads_back_as_the_position_it_encodes(position):
    if not position:
        return
    assert parse_cursor(encode_cursor(position)) == position


@pytest.mark.parametrize("text", ["", "0", "a:1", "0:1,", "0:-1", "0:1;1:2", "1:2 3:4", "9" * 5000])
def test_malformed_cursors_are_refused_with_the_field(text):
    with pytest.raises(BadRequest) as refused:
        parse_cursor(text, "header.Last-Event-ID")
    assert refused.value.path == "header.Last-Event-ID"


def item(partition: int, offset: int) -> FeedItem:
    record = Intervention.create(
        learner_id="l" * 64,
        event_id=f"e-{partition}-{offset}",
        state=BehaviouralState.GAMING,
        confidence=0.9,
        prompt="p",
        model_name="m",
        model_version="1",
        created_at=datetime(2024, 3, 1, tzinfo=UTC),
        class_id="7b",
    )
    cursor = encode_cursor({partition: offset + 1})
    return FeedItem(partition, offset, cursor, record, record.model_dump_json().encode())


def test_a_subscription_hands_items_over_in_order_and_skips_what_the_client_has():
    async def scenario() -> None:
        subscription = Subscription("7b", max_queue=10, floor={0: 5})
        for offset in (3, 5, 6):
            subscription.push(item(0, offset))
        subscription.push(item(1, 0))
        got = [await subscription.next(0.1) for _ in range(3)]
        assert [(i.partition, i.offset) for i in got if i] == [(0, 5), (0, 6), (1, 0)]
        assert await subscription.next(0.05) is None
        # the cursor sent never goes back behind what the client already had
        assert parse_cursor(subscription.cursor_for(item(1, 0)) or "") == {0: 5, 1: 1}

    asyncio.run(scenario())


def test_a_slow_client_is_cut_off_rather_than_held_in_memory():
    async def scenario() -> None:
        subscription = Subscription("7b", max_queue=2)
        for offset in range(5):
            subscription.push(item(0, offset))
        assert subscription.overflowed and subscription.pending() == 2

    asyncio.run(scenario())


def test_an_sse_frame_is_one_event_with_the_cursor_as_id():
    frame = item(2, 41).sse()
    lines = frame.decode().split("\n")
    assert lines[0] == "id: 2:42" and lines[1] == "event: intervention"
    assert lines[2].startswith("data: {") and frame.endswith(b"\n\n")

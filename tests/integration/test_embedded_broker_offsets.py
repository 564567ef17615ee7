"""What the embedded broker (Tansu 0.6) says about a partition's end, which the worker works around.

Apache Kafka answers ListOffsets(latest) with the log end offset. Tansu 0.6 answers with the
last record batch's base offset plus one, short of the end by the rest of that batch; the
fetch response's high watermark is right. Faust's table recovery takes the ListOffsets answer
for the changelog's high watermark, and its consistency check then failed on a worker that had
applied the whole batch before (``recovery_consistency_check`` is off in ``streams.app``). If
an upgrade fixes the broker, the first assertion below fails: the workaround can go.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.kafka import aiokafka_config

pytestmark = pytest.mark.integration

BATCHES, PER_BATCH = 4, 50


async def _produce_and_read(bootstrap: str, topic: str) -> tuple[int, int, list[int]]:
    producer = AIOKafkaProducer(
        **aiokafka_config(bootstrap), linger_ms=50, acks=-1, compression_type="lz4"
    )
    await producer.start()
    try:
        for _ in range(BATCHES):
            sent = [
                await producer.send(topic, b"v", key=b"k", partition=0) for _ in range(PER_BATCH)
            ]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(**aiokafka_config(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        offsets: list[int] = []
        for _ in range(50):
            batch = await consumer.getmany(tp, timeout_ms=200)
            offsets += [r.offset for r in batch.get(tp, [])]
            if len(offsets) >= BATCHES * PER_BATCH:
                break
        listed = (await consumer.end_offsets([tp]))[tp]
        return listed, int(consumer.highwater(tp) or 0), offsets
    finally:
        await consumer.stop()


def test_list_offsets_latest_stops_at_the_last_batch_base(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    topic = topic_factory("ends", partitions=1)
    listed, fetched_high, offsets = asyncio.run(_produce_and_read(kafka_bootstrap, topic))
    total = BATCHES * PER_BATCH
    assert offsets == list(range(total)), "every record is there and fetched in order"
    assert fetched_high == total, "the fetch response's high watermark is the end"
    # the last batch holds offsets 150..199: ListOffsets says 151
    assert total - PER_BATCH < listed < total, f"ListOffsets(latest) said {listed}"


async def _snapshot_ends(bootstrap: str, topic: str) -> tuple[int, int]:
    """Send 40 records at once, then one alone (as a snapshot does); the listed end each time."""
    producer = AIOKafkaProducer(**aiokafka_config(bootstrap), linger_ms=5, acks=-1)
    consumer = AIOKafkaConsumer(**aiokafka_config(bootstrap), enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        together = [await producer.send(topic, b"v", key=b"k", partition=0) for _ in range(40)]
        await asyncio.gather(*together)
        after_together = (await consumer.end_offsets([tp]))[tp]
        await (await producer.send(topic, b"last", key=b"k", partition=0))
        after_alone = (await consumer.end_offsets([tp]))[tp]
        return after_together, after_alone
    finally:
        await consumer.stop()
        await producer.stop()


def test_a_last_record_sent_alone_makes_the_listed_end_true(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    """Why a snapshot sends each changelog partition's last record alone (``last_alone``).

    Faust's recovery reads a changelog to the end ListOffsets gives. Records sent together
    land in one batch and the broker lists the end as that batch's first offset plus one: a
    replacement would miss the rest of the batch. One record sent once the rest is confirmed
    is a batch of its own, and the end listed is the true end.
    """
    topic = topic_factory("snapshot-ends", partitions=1)
    after_together, after_alone = asyncio.run(_snapshot_ends(kafka_bootstrap, topic))
    assert after_together < 40, f"the batch of 40 listed as ending at {after_together}"
    assert after_alone == 41


GROUP_RECORDS = 12_000


async def _group_member(
    bootstrap: str,
    topic: str,
    group: str,
    seen: dict[int, set[int]],
    holes: list[Any],
    leave: asyncio.Event,
) -> None:
    """Consume in ``group`` until ``leave``; note every offset and every jump in a partition."""
    consumer = AIOKafkaConsumer(
        topic,
        **aiokafka_config(bootstrap),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4 << 20,
        session_timeout_ms=15_000,
        heartbeat_interval_ms=3_000,
    )
    await consumer.start()
    expected: dict[TopicPartition, int] = {}
    try:
        while not leave.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            assigned = consumer.assignment()
            for tp in list(expected):
                if tp not in assigned:
                    del expected[tp]  # another member has it now: it starts from the commit
            for tp, records in batch.items():
                for record in records:
                    if tp not in expected:
                        expected[tp] = (await consumer.committed(tp)) or 0
                    if record.offset > expected[tp]:
                        holes.append((tp.partition, expected[tp], record.offset))
                    expected[tp] = max(expected[tp], record.offset + 1)
                    seen[tp.partition].add(record.offset)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()


async def _join_and_leave(bootstrap: str, topic: str) -> tuple[dict[int, set[int]], list[Any]]:
    seen: dict[int, set[int]] = {p: set() for p in range(12)}
    holes: list[Any] = []
    first_leaves, second_leaves = asyncio.Event(), asyncio.Event()
    group = f"{topic}-group"
    first = asyncio.ensure_future(_group_member(bootstrap, topic, group, seen, holes, first_leaves))
    second: asyncio.Future[None] | None = None
    producer = AIOKafkaProducer(**aiokafka_config(bootstrap), linger_ms=5, acks=-1)
    await producer.start()
    try:
        pending = []
        for n in range(GROUP_RECORDS):
            pending.append(await producer.send(topic, b"v" * 200, key=str(n % 997).encode()))
            if len(pending) == 500:
                await asyncio.gather(*pending)
                pending = []
            if n == GROUP_RECORDS // 3:
                second = asyncio.ensure_future(
                    _group_member(bootstrap, topic, group, seen, holes, second_leaves)
                )
            if n == 2 * GROUP_RECORDS // 3:
                first_leaves.set()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while loop.time() < deadline and sum(map(len, seen.values())) < GROUP_RECORDS:
        await asyncio.sleep(0.5)
    second_leaves.set()
    await asyncio.gather(first, *(t for t in [second] if t is not None))
    return seen, holes


def test_group_members_joining_and_leaving_get_every_offset_in_order(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    """The broker is not why a Faust worker skipped records or stalled around a rebalance.

    Plain aiokafka members of one group, a second joining and the first leaving mid-stream,
    get every offset of every partition, each partition in order from its commit: no hole, no
    partition left undelivered. The worker's holes came from Faust's fetch loop and commit rule
    (``streams.app``).
    """
    topic = topic_factory("group", partitions=12)
    seen, holes = asyncio.run(_join_and_leave(kafka_bootstrap, topic))
    assert sum(map(len, seen.values())) == GROUP_RECORDS
    for partition, offsets in seen.items():
        assert offsets == set(range(len(offsets))), partition
    assert holes == []

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

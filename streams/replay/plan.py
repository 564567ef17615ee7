"""What a replay reads: a selection of topics and bounds, resolved into per-partition ranges.

A replay reads partitions it assigns itself, under a consumer group of its own that it never
commits, so the live workers' offsets never move. :func:`plan` captures where each partition
ends when it is called, so a replay stops there and finishes while new events keep arriving.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from common.kafka import consumer_config
from common.settings import KafkaSecurity
from schemas.events import LearningEvent
from streams.replay.exceptions import ReplayError


class Mode(StrEnum):
    """What a replay does with the events it reads."""

    EXPORT = "export"
    REBUILD = "rebuild"
    RESCORE = "rescore"


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a selection: offsets (all partitions, or per partition) or a moment.

    Attributes:
        offset: the same offset on every partition.
        offsets: offsets per partition; partitions not named are not bounded.
        moment: the first record at or after this time (``offsets_for_times``).
    """

    offset: int | None = None
    offsets: dict[int, int] = field(default_factory=dict)
    moment: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> Bound:
        """Parse ``123``, ``0:10,1:20`` (partition:offset) or an ISO 8601 timestamp."""
        text = text.strip()
        if re.fullmatch(r"\d+", text):
            return cls(offset=int(text))
        if re.fullmatch(r"\d+:\d+(,\d+:\d+)*", text):
            pairs = (p.split(":") for p in text.split(","))
            return cls(offsets={int(p): int(o) for p, o in pairs})
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ReplayError(
                f"{text!r} is neither an offset, partition:offset pairs nor an ISO timestamp"
            ) from None
        if moment.tzinfo is None:
            raise ReplayError(f"timestamp {text!r} needs a time zone (e.g. Z or +00:00)")
        return cls(moment=moment)


@dataclass(slots=True)
class Range:
    """What a replay reads from one partition: ``[start, end)``.

    Attributes:
        topic: the topic.
        partition: the partition.
        start: first offset to read.
        end: offset to stop before.
        exact: True when ``end`` was given by the selection; False when it is the high
            watermark captured at the start (see :mod:`streams.replay.reader` on Tansu).
    """

    topic: str
    partition: int
    start: int
    end: int
    exact: bool

    @property
    def key(self) -> str:
        """``topic:partition``, the range's name in checkpoints."""
        return f"{self.topic}:{self.partition}"

    @property
    def count(self) -> int:
        """Records in the range as the watermarks tell (at least this many when not exact)."""
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class Selection:
    """What to replay.

    Attributes:
        topics: topic names (with any deployment prefix).
        start: where to begin; the earliest record when ``None``.
        stop: where to stop (exclusive); the end captured at the start when ``None``.
        class_id: only events of this class.
        learners: only events of these pseudonymous learners.
    """

    topics: tuple[str, ...]
    start: Bound | None = None
    stop: Bound | None = None
    class_id: str | None = None
    learners: frozenset[str] = frozenset()

    def keeps(self, event: LearningEvent) -> bool:
        """Tell whether ``event`` passes the class and learner filters."""
        if self.class_id is not None and event.class_id != self.class_id:
            return False
        return not self.learners or event.learner_id in self.learners


def consumer_settings(
    bootstrap: str, replay_id: str, security: KafkaSecurity | None = None
) -> dict[str, Any]:
    """Return consumer settings for a replay: its own group, never committed, short fetch wait.

    Args:
        bootstrap: the brokers.
        replay_id: names the replay's consumer group.
        security: TLS and SASL settings; ``None`` reads ``TUTORSTREAM_KAFKA_SECURITY__*``.
    """
    return consumer_config(
        bootstrap,
        f"tutorstream-replay-{replay_id}",
        security=security,
        **{"enable.auto.offset.store": False, "fetch.wait.max.ms": 20},
    )


def plan(
    bootstrap: str, consumer: Consumer, selection: Selection, timeout: float = 10.0
) -> list[Range]:
    """Resolve ``selection`` into per-partition ranges, capturing the end offsets now."""
    ranges: list[Range] = []
    for topic in selection.topics:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise ReplayError(f"topic {topic} does not exist")
        for partition in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            start = _resolve(
                bootstrap, consumer, topic, partition, selection.start, low, high, timeout
            )
            end, exact = high, False
            if selection.stop is not None:
                stop = _resolve(
                    bootstrap, consumer, topic, partition, selection.stop, None, high, timeout
                )
                if stop is not None and stop < high:
                    end, exact = stop, True
                elif stop is not None:
                    # a moment past the last record: the scan found the true end, which the
                    # watermark may understate
                    end = max(high, stop)
            ranges.append(Range(topic, partition, max(start or low, low), end, exact))
    return ranges


def _resolve(
    bootstrap: str,
    consumer: Consumer,
    topic: str,
    partition: int,
    bound: Bound | None,
    default: int | None,
    high: int,
    timeout: float,
) -> int | None:
    if bound is None:
        return default
    if bound.offset is not None:
        return bound.offset
    if bound.moment is not None:
        moment_ms = int(bound.moment.timestamp() * 1000)
        wanted = TopicPartition(topic, partition, moment_ms)
        found = consumer.offsets_for_times([wanted], timeout=timeout)[0]
        # -1: no record at or after the moment, so the bound is the end of the partition
        guess = high if found.offset < 0 else int(found.offset)
        return _first_at_or_after(bootstrap, topic, partition, guess, moment_ms)
    return bound.offsets.get(partition, default)


def _first_at_or_after(
    bootstrap: str, topic: str, partition: int, guess: int, moment_ms: int, settle_s: float = 0.5
) -> int:
    """Return the first offset from ``guess`` on whose record is at or after ``moment_ms``.

    Some brokers (Tansu 0.6) answer ``offsets_for_times`` with the partition's first offset
    whatever the time, so the answer is checked by reading from it: a broker that answers right
    costs one record.
    """
    consumer = Consumer(consumer_settings(bootstrap, f"seek-{uuid.uuid4().hex[:8]}"))
    position = guess
    try:
        consumer.assign([TopicPartition(topic, partition, guess)])
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle_s:
            messages = consumer.consume(1000, 0.05)
            if messages:
                quiet_since = time.monotonic()
            for message in messages:
                offset = message.offset()
                if message.error() is not None or offset is None:
                    continue
                if message.timestamp()[1] >= moment_ms:
                    return offset
                position = offset + 1
    finally:
        consumer.close()
    return position


def describe(ranges: Sequence[Range]) -> list[str]:
    """Lines for a dry run: partitions, offsets and message counts."""
    lines = [f"{'partition':<48} {'from':>10} {'to':>10} {'records':>10}"]
    for r in ranges:
        note = "" if r.exact else " (at least)"
        lines.append(f"{r.key:<48} {r.start:>10} {r.end:>10} {r.count:>10}{note}")
    lines.append(f"{'total':<48} {'':>10} {'':>10} {sum(r.count for r in ranges):>10}")
    return lines

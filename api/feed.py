"""The live feed: interventions from ``tutor.interventions.v1`` fanned out to tutors per class.

Each API instance runs one consumer of its own (group ``tutorstream-api-<instance id>``, every
partition assigned), so every instance sees every intervention, and hands each record to the
live-feed clients of the intervention's class.

The cursor of the feed is a position on the topic: for every partition, the next offset the
client has not been given. After each intervention a client receives the cursor that covers
it, and a heartbeat on a caught-up connection carries the instance's current position, so a
client's last cursor always means "every intervention of my class before these offsets has
reached me". A client that reconnects with it (``Last-Event-ID`` or ``?cursor=``) is first
registered for live records, then given what it missed, read back from the topic between its
cursor and the position the live consumer had reached at that moment; live records follow
without gap or repeat. Offsets are the topic's, not an instance's, so a client can resume on any
instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition
from pydantic import ValidationError

from api.exceptions import BadRequest, Unavailable
from common.kafka import consumer_config
from common.settings import KafkaSecurity
from schemas.records import Intervention

log = logging.getLogger(__name__)

Position = dict[int, int]
_CURSOR_RE: Final = re.compile(r"^(?:\d{1,6}:\d{1,19})(?:,\d{1,6}:\d{1,19})*$")
_MAX_CURSOR_LENGTH: Final = 4096
_METADATA_REFRESH_S: Final = 30.0

CONSUMER_OVERRIDES: Final[dict[str, Any]] = {
    # Interventions are small and must reach tutors quickly: answer fetches at once.
    "fetch.wait.max.ms": 10,
    "enable.partition.eof": False,
    # A process holds the live consumer and one per reconnecting client's replay: librdkafka's
    # own pre-fetch bound, not the larger one a bulk reader takes.
    "queued.max.messages.kbytes": 64 * 1024,
}
"""Where the live feed's consumers differ from :func:`common.kafka.consumer_config`."""


def encode_cursor(position: Position) -> str:
    """Return the text form of a position: ``partition:offset`` pairs joined by commas."""
    return ",".join(f"{partition}:{offset}" for partition, offset in sorted(position.items()))


def parse_cursor(text: str, path: str = "cursor") -> Position:
    """Read a cursor given by a client.

    Raises:
        BadRequest: when it is not a list of ``partition:offset`` pairs.
    """
    text = text.strip()
    if len(text) > _MAX_CURSOR_LENGTH or not _CURSOR_RE.fullmatch(text):
        raise BadRequest(
            "is not a feed cursor (partition:offset pairs joined by commas, as the feed sends)",
            path,
        )
    position: Position = {}
    for pair in text.split(","):
        partition, _, offset = pair.partition(":")
        position[int(partition)] = int(offset)
    return position


class FeedItem:
    """One intervention on its way to the clients of its class, serialised once for all."""

    __slots__ = (
        "_ws",
        "class_id",
        "cursor",
        "frame",
        "intervention_id",
        "offset",
        "partition",
        "value",
    )

    def __init__(
        self, partition: int, offset: int, cursor: str, intervention: Intervention, value: bytes
    ) -> None:
        self.partition = partition
        self.offset = offset
        self.cursor = cursor
        self.class_id = intervention.class_id
        self.intervention_id = intervention.intervention_id
        self.value = value
        self.frame = b"id: %s\nevent: intervention\ndata: %s\n\n" % (cursor.encode(), value)
        self._ws: str | None = None

    def sse(self, cursor: str | None = None) -> bytes:
        """Return the server-sent event; ``cursor`` replaces the shared one when given."""
        if cursor is None:
            return self.frame
        return b"id: %s\nevent: intervention\ndata: %s\n\n" % (cursor.encode(), self.value)

    def websocket(self, cursor: str | None = None) -> str:
        """Return the WebSocket message: ``{"type": "intervention", "cursor", "intervention"}``."""
        if cursor is None and self._ws is not None:
            return self._ws
        text = (
            b'{"type":"intervention","cursor":"%s","intervention":%s}'
            % ((cursor or self.cursor).encode(), self.value)
        ).decode()
        if cursor is None:
            self._ws = text
        return text


class Subscription:
    """One live-feed connection: the interventions of its class waiting to be sent.

    Attributes:
        class_id: the class it follows.
        floor: offsets the client already has beyond this instance's position when it
            connected (it resumed a cursor from a faster instance); records below are skipped.
        overflowed: set when the client fell too far behind; the connection then ends and the
            client resumes from its cursor.
    """

    def __init__(self, class_id: str, max_queue: int, floor: Position | None = None) -> None:
        self.class_id = class_id
        self.floor: Position = floor or {}
        self.overflowed = False
        self.caught_up = False
        self._items: deque[FeedItem] = deque()
        self._max = max_queue
        self._waiter: asyncio.Future[None] | None = None

    def push(self, item: FeedItem) -> None:
        """Queue an item (called by the feed, on the event loop)."""
        if self.floor and item.offset < self.floor.get(item.partition, -1):
            return
        if len(self._items) >= self._max:
            self.overflowed = True
        else:
            self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """End the connection: its next wait returns at once and the stream stops."""
        self.overflowed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def cursor_for(self, item: FeedItem) -> str | None:
        """Return the cursor this client gets with ``item``: ``None`` for the shared one."""
        if not self.floor:
            return None
        return encode_cursor(_merge(parse_cursor(item.cursor), self.floor))

    def pending(self) -> int:
        """Return how many items wait to be sent."""
        return len(self._items)

    async def next(self, timeout: float) -> FeedItem | None:
        """Return the next item, or ``None`` when none came within ``timeout`` seconds."""
        if not self._items and not self.overflowed and timeout > 0:
            # A bare future and a timer handle: asyncio.wait_for costs several times more, and
            # with a whole class following one feed every intervention wakes every client.
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            self._waiter = waiter
            timer = loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return self._items.popleft() if self._items else None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _merge(position: Position, floor: Position) -> Position:
    merged = dict(position)
    for partition, offset in floor.items():
        if offset > merged.get(partition, -1):
            merged[partition] = offset
    return merged


class InterventionFeed:
    """The instance's consumer of ``tutor.interventions.v1`` and its live-feed subscriptions.

    Args:
        bootstrap: the broker (``TUTORSTREAM_KAFKA_BOOTSTRAP``).
        topic: the interventions topic, prefix included.
        instance_id: names the consumer group (``TUTORSTREAM_API__INSTANCE_ID``).
        queue_max: most items held for one client before it is disconnected.
        replay_timeout_s: longest wait for the broker while replaying a reconnect's gap.
        on_record: called with the record's age in seconds for each intervention read (metrics).
        security: TLS and SASL (``TUTORSTREAM_KAFKA_SECURITY__*``); ``None`` reads the
            environment.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        instance_id: str,
        *,
        queue_max: int = 10_000,
        replay_timeout_s: float = 15.0,
        on_record: Callable[[float], None] | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.topic = topic
        self.group_id = f"tutorstream-api-{instance_id}"
        self.queue_max = queue_max
        self.replay_timeout_s = replay_timeout_s
        self.position: Position = {}
        self.assigned = False
        self.subscriptions: dict[str, set[Subscription]] = {}
        self._on_record = on_record
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._thread: threading.Thread | None = None

    def _config(self, group_id: str) -> dict[str, Any]:
        return consumer_config(
            self.bootstrap, group_id, security=self.security, **CONSUMER_OVERRIDES
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start consuming in a thread of its own; live records flow once partitions are known."""
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._thread = threading.Thread(target=self._consume, name="api-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the consumer thread and end every subscription."""
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for subscriptions in self.subscriptions.values():
            for subscription in subscriptions:
                subscription.close()

    @property
    def ready(self) -> bool:
        """Whether the consumer has its partitions and is reading."""
        return self.assigned and self._running

    def _consume(self) -> None:
        consumer = Consumer(self._config(self.group_id))
        known: Position = {}
        checked = 0.0
        try:
            while self._running:
                now = time.monotonic()
                if now - checked > (_METADATA_REFRESH_S if known else 1.0):
                    checked = now
                    added = self._new_partitions(consumer, known)
                    if added:
                        known.update(added)
                        self._call(self._assigned, dict(added))
                if not known:
                    time.sleep(0.2)
                    continue
                messages = _drain(consumer, 0.1)
                if messages:
                    self._call(self._dispatch, messages)
        except Exception:  # the thread must log why the feed stopped, whatever it was
            log.exception("the live-feed consumer stopped")
            self._call(self._unassigned)
        finally:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()

    def _new_partitions(self, consumer: Consumer, known: Position) -> Position:
        """Assign partitions not yet assigned: at their end at start-up, later from the start."""
        try:
            metadata = consumer.list_topics(self.topic, timeout=5.0)
        except KafkaException as err:
            log.warning("cannot read the metadata of %s: %s", self.topic, err.args[0].str())
            return {}
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return {}
        fresh = sorted(set(topic.partitions) - set(known))
        if not fresh:
            return {}
        added: Position = {}
        for partition in fresh:
            if known:
                # A partition added while running holds only records no client has seen.
                added[partition] = 0
                continue
            try:
                _, high = consumer.get_watermark_offsets(
                    KafkaPartition(self.topic, partition), timeout=5.0
                )
            except KafkaException as err:
                log.warning("cannot read the end of %s[%d]: %s", self.topic, partition, err)
                return {}
            added[partition] = max(high, 0)
        consumer.incremental_assign(
            [KafkaPartition(self.topic, partition, offset) for partition, offset in added.items()]
        )
        return added

    def _call(self, function: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(function, *args)

    def _assigned(self, added: Position) -> None:
        for partition, offset in added.items():
            self.position.setdefault(partition, offset)
        self.assigned = True

    def _unassigned(self) -> None:
        self.assigned = False

    # ------------------------------------------------------------------ fan-out

    def _dispatch(self, messages: list[Message]) -> None:
        position = self.position
        subscriptions = self.subscriptions
        now = time.time()
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("live-feed consumer: %s", error.str())
                continue
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None:
                continue
            position[partition] = offset + 1
            value = message.value() or b""
            _, produced_ms = message.timestamp()
            if self._on_record is not None and produced_ms > 0:
                self._on_record(max(0.0, now - produced_ms / 1000))
            followers = None
            try:
                intervention = Intervention.model_validate_json(value)
            except ValidationError as err:
                # Never log the value: it names a learner, even if only by pseudonym.
                log.warning(
                    "skipped %s[%d]@%d: not an Intervention (%d errors)",
                    self.topic,
                    partition,
                    offset,
                    err.error_count(),
                )
                continue
            if intervention.class_id is not None:
                followers = subscriptions.get(intervention.class_id)
            if not followers:
                continue
            item = FeedItem(
                partition, offset, encode_cursor(position), intervention, _one_line(value)
            )
            for subscription in followers:
                subscription.push(item)

    def subscribe(self, class_id: str, since: Position | None) -> tuple[Subscription, Position]:
        """Register a client of ``class_id`` for live records.

        Args:
            class_id: the class it follows.
            since: the client's cursor, or ``None`` for a fresh start (live records only).

        Returns:
            The subscription, and the position where replay must stop (the live position
            now); replay from ``since`` up to it with :meth:`replay`.
        """
        upto = dict(self.position)
        floor = None
        if since:
            ahead = {p: o for p, o in since.items() if o > upto.get(p, 0) and p in upto}
            floor = ahead or None
        subscription = Subscription(class_id, self.queue_max, floor)
        self.subscriptions.setdefault(class_id, set()).add(subscription)
        return subscription, upto

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a client."""
        followers = self.subscriptions.get(subscription.class_id)
        if followers is not None:
            followers.discard(subscription)
            if not followers:
                del self.subscriptions[subscription.class_id]

    def heartbeat_cursor(self, subscription: Subscription) -> str | None:
        """Return the cursor a heartbeat may carry, or ``None`` while items are still queued."""
        if subscription.pending() or not subscription.caught_up or not self.position:
            return None
        return encode_cursor(_merge(self.position, subscription.floor))

    async def replay(self, class_id: str, since: Position, upto: Position) -> list[FeedItem]:
        """Read back the class's interventions between ``since`` and ``upto`` from the topic.

        Partitions absent from ``since`` (added after the client's cursor was made) are read
        from their start.

        Raises:
            Unavailable: when the broker does not hand the records over in time.
        """
        start = {partition: since.get(partition, 0) for partition in upto}
        wanted = {p: (s, upto[p]) for p, s in start.items() if s < upto[p]}
        if not wanted:
            return []
        return await asyncio.to_thread(self._replay, class_id, start, wanted)

    def _replay(
        self, class_id: str, start: Position, wanted: dict[int, tuple[int, int]]
    ) -> list[FeedItem]:
        consumer = Consumer(self._config(f"{self.group_id}-replay-{uuid.uuid4().hex[:8]}"))
        items: list[FeedItem] = []
        position = dict(start)
        left = dict(wanted)
        try:
            consumer.assign(
                [
                    KafkaPartition(self.topic, p, s if s > 0 else OFFSET_BEGINNING)
                    for p, (s, _) in wanted.items()
                ]
            )
            deadline = time.monotonic() + self.replay_timeout_s
            while left:
                if time.monotonic() > deadline:
                    raise Unavailable("the broker did not hand back the missed interventions")
                for message in _drain(consumer, 0.2):
                    if message.error() is not None:
                        continue
                    partition, offset = message.partition(), message.offset()
                    if partition is None or offset is None:
                        continue
                    if partition not in left or offset >= left[partition][1]:
                        continue
                    position[partition] = offset + 1
                    if offset + 1 >= left[partition][1]:
                        del left[partition]
                    value = message.value() or b""
                    try:
                        intervention = Intervention.model_validate_json(value)
                    except ValidationError:
                        continue
                    if intervention.class_id == class_id:
                        items.append(
                            FeedItem(
                                partition,
                                offset,
                                encode_cursor(position),
                                intervention,
                                _one_line(value),
                            )
                        )
                # Offsets may skip (a broker's control records): the consumer's own position
                # tells when a partition is read up to where replay stops.
                for done in consumer.position([KafkaPartition(self.topic, p) for p in left]):
                    if done.offset >= left[done.partition][1]:
                        position[done.partition] = left[done.partition][1]
                        del left[done.partition]
        finally:
            consumer.close()
        return items


def _drain(consumer: Consumer, timeout: float) -> list[Message]:
    """Wait up to ``timeout`` for a record, then take whatever else is already fetched.

    ``consume(n, timeout)`` alone waits for ``n`` records or the whole timeout, which would add
    up to ``timeout`` to every intervention's way to the tutors.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=999, timeout=0)]


def _one_line(value: bytes) -> bytes:
    """Return compact JSON: a server-sent event's data must not hold a line break."""
    if b"\n" in value or b"\r" in value:
        return orjson.dumps(orjson.loads(value))
    return value

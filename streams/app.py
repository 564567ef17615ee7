"""The Faust worker: one agent per partition set, acking a micro-batch only once it is durable.

Records gather in a bounded queue while the previous batch is processed, and the next batch
takes them all (up to ``max_batch``), so batches grow with the load. Flow of one micro-batch:

1. ingest: normalise raw records (bad ones become dead letters), forward events whose learner
   lives on another partition, dedupe by event id, update per-learner features;
2. score the decision points with the ONNX model, off the event loop;
3. apply the intervention policy and the next-item policy;
4. write events, features, predictions, interventions and recommendations to the store in one
   transaction (retrying while the database is down);
5. send dead letters, forwards, new interventions, learner prompts and recommendations, and
   hold the touched learner and item state for the next snapshot;
6. settle, while the next batch is computed: wait for the broker to confirm every send and
   mark the interventions published;
7. every ``snapshot_interval_s``, between two batches: write the state held since the last
   snapshot to the tables' changelogs, one record per changed key, and once the broker has
   them ack the records of every settled batch (:mod:`streams.snapshots`). A committed offset
   never runs ahead of durable results nor of the changelog.

Records reach the batch queue straight from Faust's fetch loop (:mod:`streams.handover`), and the
worker acks each itself once it is durable. Nothing in the loop may raise past a batch: bad
records are dead-lettered, and infrastructure failures are retried until they succeed; an agent
restarted all the same reads again from the commit.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import concurrent.futures
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
import orjson
import psycopg
from faust.types import Message
from faust.types.auth import CredentialsT

from common.kafka import admin_config, consumer_config, ssl_context
from common.partitioning import CachedPartitioner, PartitionCache
from common.settings import KafkaSecurity
from inference.runtime import LearnerModel
from schemas.exceptions import InvalidEvent
from schemas.profiles import PROFILE_HEADER
from schemas.profiles.compiled import compile_profiles
from schemas.records import Intervention
from schemas.topics import (
    LEARNER_PROMPTS,
    LMS_EVENTS,
    LMS_EVENTS_DLQ,
    TUTOR_INTERVENTIONS,
    TUTOR_RECOMMENDATIONS,
)
from streams import eager, handover, metrics, outbound
from streams.annotations import GrafanaAnnotations
from streams.carried import CarriedModel
from streams.policy import InterventionPolicy
from streams.processor import (
    WINDOW_FALLBACK,
    BatchResult,
    DeadLetterOut,
    EventProcessor,
    InboundRecord,
    StateView,
)
from streams.settings import StreamSettings
from streams.snapshots import HeldWrites, SnapshotClock, last_alone
from streams.store import status as store_status
from streams.store.exceptions import RejectedBatch, StoreError, StoreUnavailable
from streams.store.maintenance import maintain
from streams.store.sink import DeadLetterPayload, StoreBatch, StoreSink, WriteResult

logger = logging.getLogger(__name__)

_YOUNG_COLLECTION = 50_000
"""Allocations (net) between collections of the youngest generation while the agent runs."""


def _cap_fetch_wait(max_wait_ms: int) -> None:
    """Make Faust's consumer wait at most ``max_wait_ms`` for a fetch to fill.

    Faust hard-codes 1.5 s. Apache Kafka answers a fetch as soon as one byte is there, so the
    wait only bounds an idle poll; a broker that holds every fetch for the full wait (Tansu
    does) adds it to every event's latency.
    """
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    original = getattr(thread, "_tutorstream_original", None) or thread._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms  # read when the consumer starts its fetcher
        return consumer

    # the driver offers no setting for it; patch the one method that builds the consumer
    setattr(thread, "_tutorstream_original", original)  # noqa: B010
    setattr(thread, "_create_worker_consumer", create)  # noqa: B010


def _keep_gaps_unacked() -> None:
    """Stop Faust from counting offsets it never delivered as acknowledged.

    Faust takes a jump in the offsets it delivers for a gap in the log (compaction,
    transaction markers) and commits past it. On the stream's topics there are no such gaps:
    a jump means fetched records were dropped (a fetch cut short by a rebalance, a stream
    buffer cleared), and committing past them lost them for good. Without the gap the commit
    stays before them, and they are read again from it.
    """
    from faust.transport.consumer import Consumer

    async def add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        return None

    setattr(Consumer, "_add_gap", add_gap)  # noqa: B010


DELIVERY_START_ATTRIBUTE = "_tutorstream_delivery_start"
"""Attribute of Faust's consumer holding where each source partition's delivery starts, learnt
at every assignment: the group's committed offset, or the log's first offset where the group
has none. Faust's own committed offsets are filled only once it seeks to them."""


def _next_to_read(consumer: Any, tp: Any) -> int | None:
    """Return the first offset of ``tp`` not yet durable.

    That is the committed offset, or, before Faust knows it, where the partition's delivery
    started (:data:`DELIVERY_START_ATTRIBUTE`).
    """
    committed: int | None = consumer._committed_offset.get(tp)  # no public face
    if committed is None:
        committed = getattr(consumer, DELIVERY_START_ATTRIBUTE, {}).get(tp)
    return committed


def _commit_only_from_the_committed_offset() -> None:
    """Stop Faust from committing past a record it never acknowledged.

    Faust commits the first run of consecutive acked offsets unless that run starts more than
    one past the committed offset (``min(acked) - committed > 1``): a run starting exactly one
    past it commits over the record at the committed offset, acked or not; and where the
    group has no commit yet, any first run is committed, over whatever came before it. Records
    skipped right there (a fetch cut short, a buffer cleared) were committed over and lost.
    Here the run must start at the committed offset, the next record to read, or, before
    Faust knows it, where the partition's delivery starts (:data:`DELIVERY_START_ATTRIBUTE`).
    """
    from faust.transport.consumer import Consumer
    from faust.utils.functional import consecutive_numbers

    def new_offset(self: Any, tp: Any) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        acked.sort()
        committed = _next_to_read(self, tp)
        if committed is None and hasattr(self, DELIVERY_START_ATTRIBUTE):
            return None  # not known yet: commit later rather than past a hole
        if committed is not None:
            # acks from before a seek forward (a rebalance took the commit further) are moot
            stale = bisect.bisect_left(acked, committed)
            if stale:
                self._acked_index[tp].difference_update(acked[:stale])
                del acked[:stale]
            if not acked or acked[0] != committed:
                return None
        run = next(consecutive_numbers(acked))
        del acked[: len(run)]
        self._acked_index[tp].difference_update(run)
        return int(run[-1]) + 1

    setattr(Consumer, "_new_offset", new_offset)  # noqa: B010


class DeliveryOrder:
    """Per source partition, the next offset expected: says when Faust skipped records.

    Faust's gaps are not counted as acknowledged (:func:`_keep_gaps_unacked`), so a commit
    never passes a record that was skipped; the worker then seeks back to the commit at once
    (:meth:`Worker._keep_partitions_flowing`), and the skipped records are read again. This
    finds the holes, and counts deliveries per partition for the stall check.
    """

    def __init__(self) -> None:
        self._next: dict[Any, int] = {}
        self.delivered: collections.Counter[Any] = collections.Counter()

    def reset(self) -> None:
        """Forget every partition's position (after a seek back to the commit)."""
        self._next.clear()

    def check(self, tp: Any, offset: int, committed: int | None) -> int | None:
        """Record the delivery of ``offset`` of ``tp``; return the first skipped offset, if any.

        Args:
            tp: the record's topic partition.
            offset: its offset.
            committed: the group's committed offset of ``tp`` (the next one to read), if any.
        """
        self.delivered[tp] += 1
        expected = self._next.get(tp, committed)
        if expected is not None and offset < expected:
            return None  # delivered again after a seek back
        self._next[tp] = offset + 1
        return expected if expected is not None and offset > expected else None


@dataclass(frozen=True, slots=True)
class _Seen:
    committed: int
    end: int
    delivered: int


class StallWatch:
    """Finds source partitions that hold records past the commit and deliver none of them.

    Checked every ``TUTORSTREAM_STALL_CHECK_S``: a partition is stalled when, over a whole
    interval in which the worker held no record at all (idle at both checks, nothing delivered
    in between), its committed offset did not move while records were already there past it.
    A busy worker is never judged: under a backlog the client hands out one partition's
    records before the next one's, so a partition can rightly wait minutes for its turn. Seen
    with Faust: a fetch cut short by a rebalance can leave a partition's tail undelivered, with
    no later record to show the hole, and nothing reads it again before the next rebalance.
    """

    def __init__(self) -> None:
        self._seen: dict[Any, _Seen] = {}
        self._idle = False

    def forget(self) -> None:
        """Start afresh (after a rebalance, a seek, or while the worker holds its input)."""
        self._seen.clear()
        self._idle = False

    def stalled(
        self,
        ends: dict[Any, int | None],
        committed: dict[Any, int | None],
        delivered: collections.Counter[Any],
        idle: bool,
    ) -> set[Any]:
        """Record one check; return the partitions stalled since the previous one.

        Args:
            ends: each assigned source partition's end offset, as the broker reports it.
            committed: its committed offset (the next one to read; ``None``: none yet).
            delivered: records delivered per partition so far.
            idle: whether the worker holds no record (nothing queued, processing, settling).
        """
        previous, was_idle = self._seen, self._idle
        self._seen = {
            tp: _Seen(committed.get(tp) or 0, end, delivered[tp])
            for tp, end in ends.items()
            if end is not None
        }
        self._idle = idle
        quiet = all(delivered[tp] == seen.delivered for tp, seen in previous.items() if tp in ends)
        if not (idle and was_idle and quiet):
            return set()  # busy, or busy in between: a partition may be waiting its turn
        return {
            tp
            for tp, now in self._seen.items()
            if (seen := previous.get(tp)) is not None
            and seen.end > seen.committed
            and now.committed == seen.committed
        }


def _fetched_end(consumer: Any, tp: Any) -> int | None:
    """The high watermark of ``tp``'s last fetch response (``None``: none yet)."""
    try:
        end = consumer.highwater(tp)  # the client keeps it from each fetch response
    except Exception:  # not assigned to the client (any more)
        return None
    return end if isinstance(end, int) and end >= 0 else None


def _fetch_state(consumer: Any, stalled: set[Any]) -> str:
    """Where Faust's fetching stands for ``stalled``, for the log line of a stall."""
    try:
        active = consumer._active_partitions or set()
        resume = getattr(consumer, "can_resume_flow", None)
        return (
            f"; flow {'active' if consumer.flow_active else 'stopped'}"
            f" ({len(getattr(resume, '_waiters', None) or ())} waiting to resume),"
            f" hand-overs waiting {eager.waiting()},"
            f" not fetched {len(stalled - active)} of {len(stalled)},"
            f" paused {len(stalled & consumer._paused_partitions)},"
            f" buffer full {len(stalled & consumer._buffered_partitions)},"
            f" positions {_positions(consumer, stalled)}"
        )
    except Exception as err:  # Faust internals moved: the seek matters, not this line
        return f"; fetch state unknown ({type(err).__name__})"


def _positions(consumer: Any, tps: set[Any]) -> str:
    client = consumer._thread._ensure_consumer()
    found = []
    for tp in sorted(tps):
        try:
            state = client._subscription.subscription.assignment.state_value(tp)
            committed = consumer._committed_offset.get(tp)
            found.append(f"{tp.partition}: {state.position} (commit {committed})")
        except Exception:
            found.append(f"{tp.partition}: ?")
    return " ".join(found)


def _known_end(listed: int | None, fetched: int | None) -> int | None:
    """A partition's end: the greater of what the broker lists and what its fetches said.

    The embedded broker lists a partition's end as its last record batch's first offset plus
    one, short by the rest of that batch; its fetch responses give the true end. A partition
    whose undelivered tail lies in that last batch looked, by the listed end alone, as if it
    held nothing past the commit, and a stall there went unseen.
    """
    known = [end for end in (listed, fetched) if end is not None]
    return max(known) if known else None


class RecordQueue:
    """Records delivered by Faust and not yet in a batch; ``put`` waits while it is full."""

    def __init__(self, limit: int) -> None:
        self._records: collections.deque[Message] = collections.deque()
        self._limit = limit
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._records)

    async def put(self, record: Message) -> None:
        """Add a record; wait first while the queue holds ``limit`` records (backpressure)."""
        while len(self._records) >= self._limit:
            self._room.clear()
            await self._room.wait()
        self._records.append(record)
        self._arrived.set()

    @property
    def full(self) -> bool:
        """Whether Faust's delivery waits for room (the worker holds its input back)."""
        return len(self._records) >= self._limit

    async def wait_for_records(self, timeout: float | None = None) -> bool:
        """Return whether the queue holds a record, waiting up to ``timeout`` s for one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._records:
            self._arrived.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return bool(self._records)
        return True

    def clear(self) -> int:
        """Drop every record; return how many there were."""
        dropped = len(self._records)
        self._records.clear()
        self._room.set()
        return dropped

    def take(self, most: int) -> list[Message]:
        """Remove and return up to ``most`` records, oldest first."""
        records = self._records
        batch = [records.popleft() for _ in range(min(most, len(records)))]
        if len(records) < self._limit:
            self._room.set()
        return batch


DEAD_LETTER_LIMIT = 900_000
"""Largest dead letter (JSON bytes, about) sent whole: the producer refuses requests over
1,000,000 bytes (Faust's ``producer_max_request_size``), and a record batch adds its header."""
DEAD_LETTER_HEAD = 64 * 1024
"""Bytes of a record a truncated dead letter keeps."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to send, kept until the broker confirms it, so it can be sent again."""

    topic: Any
    key: bytes | None
    value: bytes
    headers: Any = None
    partition: int | None = None


@dataclass(slots=True)
class Sending:
    """What one batch sends: records awaiting confirmation, interventions, dead letters."""

    pending: list[tuple[Outgoing, Awaitable[Any]]] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    dead_letter_kinds: collections.Counter[str] = field(default_factory=collections.Counter)

    def take(self) -> list[tuple[Outgoing, Awaitable[Any]]]:
        """Return the pending sends and forget them."""
        pending, self.pending = self.pending, []
        return pending


class RecentRecords:
    """The last ``limit`` record coordinates ``(topic, partition, offset)`` added; oldest out."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: collections.OrderedDict[tuple[str, int, int], None] = collections.OrderedDict()

    def __contains__(self, where: object) -> bool:
        return where in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, where: tuple[str, int, int]) -> None:
        """Remember ``where``; forget the oldest past the limit."""
        self._seen[where] = None
        self._seen.move_to_end(where)
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)


Letter = tuple[str, bytes, tuple[str, int, int]]
"""A dead letter as sent: metric label, JSON, and the record's ``(topic, partition, offset)``."""
LETTERED_MAX = 100_000
"""Records a worker remembers having dead-lettered (about 10 MB at most)."""

ORIGIN_HEADER = "tutorstream-origin"
"""Header of a forwarded event: ``topic/partition@offset`` of the record it came in."""


def _profile_header(headers: Any) -> str:
    """Return the profile a raw record's producer names (``""``: the worker's default)."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    for name, value in pairs:
        if name == PROFILE_HEADER and value:
            return bytes(value).decode("utf-8", "replace")
    return ""


def _origin(headers: Any) -> tuple[str, int]:
    """Return a forwarded record's origin and origin offset (``("", -1)``: none given)."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    for name, value in pairs:
        if name == ORIGIN_HEADER and value:
            source, _, offset = bytes(value).decode().rpartition("@")
            if source and offset.isdigit():
                return source, int(offset)
    return "", -1


def _brokers(bootstrap: str) -> list[str]:
    return [f"kafka://{b.strip()}" for b in bootstrap.split(",") if b.strip()]


def broker_credentials(security: KafkaSecurity) -> CredentialsT | None:
    """Return Faust's ``broker_credentials`` for ``security``; ``None`` for plaintext.

    Faust hands them to every aiokafka client it makes (consumer, producer, admin), with the
    TLS context of :func:`common.kafka.ssl_context` for the TLS protocols.

    Args:
        security: the worker's ``TUTORSTREAM_KAFKA_SECURITY__*`` settings.
    """
    context = ssl_context(security)
    if security.uses_sasl:
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=None if security.sasl_password is None
            else security.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=security.sasl_mechanism.value,
        )  # fmt: skip
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class Worker:
    """The stream worker: Faust app, tables, model, sink and the batch loop.

    Args:
        settings: the worker's settings (``TUTORSTREAM_*``).
        model: a loaded model; loaded from the registry when omitted.
    """

    def __init__(self, settings: StreamSettings, model: LearnerModel | None = None) -> None:
        self.settings = settings
        s = settings
        _cap_fetch_wait(s.fetch_max_wait_ms)
        _keep_gaps_unacked()
        _commit_only_from_the_committed_offset()
        eager.deliver_eagerly()
        self.order = DeliveryOrder()
        self.watch = StallWatch()
        self._hole_seen = asyncio.Event()
        self._queue = RecordQueue(limit=4 * s.max_batch)
        self._runs = 0  # starts of the agent: a restarted one reads again from the commit
        self._processing = False
        self._learning: asyncio.Future[None] | None = None
        Path(s.data_dir).mkdir(parents=True, exist_ok=True)
        credentials = broker_credentials(s.kafka_security)
        self.app = faust.App(
            s.app_id,
            broker=_brokers(s.kafka_bootstrap),
            broker_credentials=credentials,
            ssl_context=ssl_context(s.kafka_security),
            store="memory://",
            datadir=s.data_dir,
            web_port=s.web_port,
            web_host="0.0.0.0",
            topic_partitions=LMS_EVENTS.partitions,
            topic_replication_factor=s.replication_factor,
            consumer_auto_offset_reset="earliest",
            consumer_group_instance_id=s.worker_id,
            broker_commit_interval=1.0,
            # a killed worker's partitions move on after this, not Faust's default minute
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=max(1.0, s.session_timeout_s / 5),
            consumer_max_fetch_size=4 * 1024 * 1024,
            producer_acks=-1,
            producer_linger_ms=1,
            producer_partitioner=CachedPartitioner(),
            # The learner table's changelog carries each touched learner's state every batch.
            # aiokafka writes lz4 at level 9 (LZ4-HC): 123 us of CPU per 9 KB learner record
            # here, zstd 49 us, snappy 13 us (to 0.41, 0.36 and 0.45 of the size).
            producer_compression_type=None if s.compression == "none" else s.compression,
            stream_buffer_maxsize=4 * s.max_batch,
            table_cleanup_interval=60.0,
            # The batch queue holds records Faust never sees acked until a snapshot; waiting
            # for them before a rebalance or shutdown would stall it. Not waiting is safe: only
            # durable batches are acked, and a batch redelivered after a rebalance is idempotent.
            stream_wait_empty=False,
            # Tansu 0.6 reports a partition's high watermark as its last batch's base offset
            # plus one, short of the true end by the rest of that batch. Faust's check that a
            # table partition's applied changelog offset is not past the high watermark then
            # fails on a worker that held the partition before a rebalance (320 > 316 seen),
            # and the crashed recovery leaves the worker assigned and never fetching.
            recovery_consistency_check=False,
            logging_config=None,
        )
        self._seek_reason = "hole"
        self.model = model or LearnerModel.load(
            s.model,
            registry_roots=[] if s.model_dir is None else [Path(s.model_dir)],
            intra_op_threads=s.model_threads,
        )
        window = self.model.window or WINDOW_FALLBACK
        self.raw_topic = self.app.topic(
            s.topic(LMS_EVENTS.name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=LMS_EVENTS.partitions,
        )
        self.rekeyed_topic = self.app.topic(
            f"{s.app_id}-events-rekeyed",
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=LMS_EVENTS.partitions,
            internal=True,
        )
        self.dlq_topic = self.app.topic(s.topic(LMS_EVENTS_DLQ.name), value_serializer="raw")
        self.interventions_topic = self.app.topic(
            s.topic(TUTOR_INTERVENTIONS.name), value_serializer="raw"
        )
        self.recommendations_topic = self.app.topic(
            s.topic(TUTOR_RECOMMENDATIONS.name), value_serializer="raw"
        )
        self.prompts_topic = self.app.topic(s.topic(LEARNER_PROMPTS.name), value_serializer="raw")
        table_options: dict[str, Any] = {
            "schema": faust.Schema(
                key_type=str, value_type=bytes, key_serializer="json", value_serializer="raw"
            ),
            # the table's own types pick the changelog's serializers: without bytes here it
            # reads values back as JSON, and a recovered learner record is binary
            "key_type": str,
            "value_type": bytes,
            "partitions": LMS_EVENTS.partitions,
        }
        self.learners = self.app.Table("learners", **table_options)
        self.items = self.app.Table("item-norms", **table_options)
        self.catalogues = self.app.Table("class-items", **table_options)
        self._tables = (self.learners, self.items, self.catalogues)
        self.held = HeldWrites(len(self._tables))
        self.state = StateView(self.learners, self.items, self.catalogues, window, self.held)
        self.snapshots = SnapshotClock(s.snapshot_interval_s, s.snapshot_max_records)
        # settled batches' records, acked by the next snapshot; ``_generation`` counts
        # revocations, which drop what was held (see ``revoked``)
        self._covered: list[list[Message]] = []
        self._generation = 0
        # a profile file with an error stops the worker here, naming file, line and field
        profiles = s.profiles.load()
        placed = PartitionCache(LMS_EVENTS.partitions)
        self.processor = EventProcessor(
            profiles=compile_profiles(profiles),
            default_profile=profiles.default,
            pseudonym_key=s.pseudonym_key.get_secret_value().encode(),
            owns=lambda learner, record: placed(learner) == record.partition,
            policy=InterventionPolicy(s.policy),
            dedupe_window_s=s.dedupe_window_s,
            dedupe_max_ids=s.dedupe_max_ids,
            carried=CarriedModel.of(self.model),
        )
        self.sink = StoreSink(s.database_url, s.store)
        # onnxruntime releases the GIL; one thread keeps batches in order.
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model")
        spec = self.model.spec
        metrics.MODEL_INFO.labels(spec.name, spec.version, self.model.provider).set(1)
        channel = self.app.topic(
            s.topic(LMS_EVENTS.name),
            self.rekeyed_topic.get_topic_name(),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self._settling: asyncio.Future[None] | None = None
        self._snapshotting: asyncio.Future[None] | None = None
        self._deciding_s = 0.0  # the last batch's model and decision time, which its store overlaps
        self._retention_due = 0.0  # monotonic time of the next maintenance that applies retention
        # a record read again (a seek back to the commit after a hole or a stall) that has
        # its dead letter already is not dead-lettered twice
        self._lettered = RecentRecords(LETTERED_MAX)

        def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            self.order.reset()  # Faust seeks every partition back to its committed offset
            self.watch.forget()
            self._learning = asyncio.ensure_future(self._learn_delivery_starts())

        def revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            # Every partition goes back to its commit, here or on another worker, and what
            # batches held since the last snapshot is taken again from there: a value held
            # now could shadow a newer one the next owner writes before this one gets it back.
            # Records fetched before the rebalance are dropped too: they come again from the
            # commit, and taken now they would meet a state without what was held.
            self._generation += 1
            self.held.clear()
            self._covered.clear()
            self.snapshots.taken()
            metrics.AWAITING_SNAPSHOT.set(0)
            self._queue.clear()

        self.app.on_partitions_assigned.connect(assigned)
        self.app.on_partitions_revoked.connect(revoked)
        self.agent = self.app.agent(channel, name="process-events", concurrency=1)(self._run)
        # the agent's stream subscribes the topics; their records skip it (streams.handover)
        handover.deliver_directly(
            self.app.topics,
            {self.raw_topic.get_topic_name(), self.rekeyed_topic.get_topic_name()},
            self._deliver,
        )
        self.app.page("/metrics")(_metrics_view)
        self.app.page("/healthz")(_healthz_view)
        worker = self

        async def readyz(view: Any, request: Any) -> Any:
            checks = await worker.readiness()
            return view.json(
                {"status": "ok" if all(checks.values()) else "unavailable", "checks": checks},
                status=200 if all(checks.values()) else 503,
            )

        self.app.page("/readyz")(readyz)
        interval = s.store.maintenance_interval.total_seconds()
        self.app.timer(interval, on_leader=True)(self._maintain)
        self.app.timer(s.outbox_grace_s / 2)(self._sweep_outbox)
        self.app.task(self._keep_partitions_flowing)
        # Grafana marks only what tutors are told live; a rebuild replay annotates nothing.
        self.annotations: GrafanaAnnotations | None = None
        if s.grafana.url and s.publish_live:
            self.annotations = GrafanaAnnotations(s.grafana)
            self.app.task(self.annotations.run)

    def _published_since(self, since: float, timeout: float = 10.0) -> set[str]:
        """Return the ids of interventions on the topic since ``since`` (epoch seconds)."""
        from confluent_kafka import Consumer, TopicPartition

        topic = self.interventions_topic.get_topic_name()
        consumer = Consumer(
            consumer_config(
                self.settings.kafka_bootstrap,
                f"{self.settings.app_id}-outbox",
                security=self.settings.kafka_security,
            )
        )
        found: set[str] = set()
        try:
            meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
            wanted = [TopicPartition(topic, p, int(since * 1000)) for p in meta.partitions]
            starts = consumer.offsets_for_times(wanted, timeout=timeout)
            ends = {}
            for tp in starts:
                _, high = consumer.get_watermark_offsets(tp, timeout=timeout)
                ends[tp.partition] = high
            live = [tp for tp in starts if tp.offset >= 0 and tp.offset < ends[tp.partition]]
            if not live:
                return found
            consumer.assign(live)
            remaining = {tp.partition for tp in live}
            deadline = time.monotonic() + timeout
            while remaining and time.monotonic() < deadline:
                for message in consumer.consume(1000, 0.2):
                    value, offset, partition = (
                        message.value(),
                        message.offset(),
                        message.partition(),
                    )
                    if message.error() is not None or offset is None or partition is None:
                        continue
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        found.add(orjson.loads(value or b"{}")["intervention_id"])
                    if offset + 1 >= ends[partition]:
                        remaining.discard(partition)
        finally:
            consumer.close()
        return found

    def prepare(self, timeout: float = 30.0) -> None:
        """Create the worker's internal rekey topic with the partitions of the raw topic.

        Faust would let the first producer auto-create it with the broker's default partition
        count, which breaks the co-partitioning the tables rely on.
        """
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient(
            admin_config(self.settings.kafka_bootstrap, security=self.settings.kafka_security)
        )
        name = self.rekeyed_topic.get_topic_name()
        topic = NewTopic(
            name,
            num_partitions=LMS_EVENTS.partitions,
            replication_factor=self.settings.replication_factor,
            config={"retention.ms": str(7 * 24 * 3600 * 1000)},
        )
        for future in admin.create_topics([topic], operation_timeout=timeout).values():
            try:
                future.result(timeout)
            except KafkaException as err:
                if "TOPIC_ALREADY_EXISTS" not in str(err) and "already exists" not in str(err):
                    raise
        store = store_status(self.settings.database_url, schema=self.settings.store.db_schema)
        if not store.migrated:
            raise RuntimeError(
                f"the store at schema {self.settings.store.db_schema!r} is not migrated: "
                "run `tutorstream db migrate` first"
            )
        found = admin.list_topics(name, timeout=timeout).topics.get(name)
        if found is None or len(found.partitions) != LMS_EVENTS.partitions:
            partitions = None if found is None else len(found.partitions)
            raise RuntimeError(
                f"topic {name} has {partitions} partitions, the stream needs "
                f"{LMS_EVENTS.partitions}: delete it and start the worker again"
            )

    async def readiness(self) -> dict[str, bool]:
        """Return the readiness checks: partitions of the stream assigned, the store reachable.

        ``partitions`` is false while a rebalance or the recovery of the tables runs, and when
        the group gave this worker none of the stream's partitions. ``database`` is a fresh
        connection's ``SELECT 1`` within two seconds, so a batch the sink holds through an
        outage does not make the probe wait for it.
        """
        sources = {self.raw_topic.get_topic_name(), self.rekeyed_topic.get_topic_name()}
        try:
            assigned = any(tp.topic in sources for tp in self.app.consumer.assignment())
        except Exception:  # no consumer yet: not started, so not ready
            assigned = False
        partitions = assigned and not self.app.rebalancing
        try:
            async with await psycopg.AsyncConnection.connect(
                self.settings.database_url, connect_timeout=2, autocommit=True
            ) as conn:
                await asyncio.wait_for(conn.execute("SELECT 1"), 2.0)
            database = True
        except (OSError, psycopg.Error, TimeoutError):
            database = False
        return {"partitions": partitions, "database": database}

    async def _maintain(self) -> None:
        # Refreshes the fallback's aggregates and applies its retention (TimescaleDB's own job
        # scheduler does both when it runs); one worker, the leader, does it for all.
        store = self.settings.store
        due = time.monotonic() >= self._retention_due
        try:
            await asyncio.to_thread(
                maintain, self.settings.database_url, schema=store.db_schema, retention=due
            )
            if due:
                self._retention_due = time.monotonic() + store.retention_interval.total_seconds()
        except Exception:
            logger.exception("store maintenance failed; retrying at the next interval")

    async def _keep_partitions_flowing(self) -> None:
        """Read skipped and stalled partitions again from their committed offsets.

        A hole in a partition's delivery (:class:`DeliveryOrder`) holds its commit back until
        the skipped records come again, which without a seek is the next rebalance; a stalled
        partition (:class:`StallWatch`) delivers nothing until then. Both are met the way a
        rebalance meets them: every source partition seeks back to its committed offset, and
        what comes again and is durable already is skipped by the redelivery guard.
        """
        interval = self.settings.stall_check_s
        stalled_before: set[Any] = set()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hole_seen.wait(), interval)
            try:
                if self._hole_seen.is_set():
                    self._hole_seen.clear()
                    reason, self._seek_reason = self._seek_reason, "hole"
                    await self._seek_to_committed(reason, set())
                    continue
                stalled = await self._stalled_partitions()
                if not stalled:
                    stalled_before = set()
                    continue
                if stalled & stalled_before:
                    # a seek did not move it: have the group assign the partitions afresh
                    await self._rejoin(stalled & stalled_before)
                    stalled_before = set()
                else:
                    await self._seek_to_committed("stall", stalled)
                    stalled_before = stalled
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the partition check failed; checking again in %.0fs", interval)

    async def _learn_delivery_starts(self) -> None:
        """Learn where each source partition's delivery starts.

        That is the group's commit, or the log's first offset where the group has none. Faust
        fills its own committed offsets only when it seeks to them, after records may already
        flow; until then this is what the commit and the hole check start from.
        """
        consumer = cast(Any, self.app.consumer)
        starts = getattr(consumer, DELIVERY_START_ATTRIBUTE, None)
        if starts is None:
            starts = {}
            setattr(consumer, DELIVERY_START_ATTRIBUTE, starts)
        starts.clear()  # a previous assignment's are stale
        thread = consumer._thread

        async def committed(tps: list[Any]) -> dict[Any, int | None]:
            # aiokafka lives on the consumer thread's loop; the group's commit, from the broker
            client = thread._ensure_consumer()
            return {tp: await client.committed(tp) for tp in tps}

        delay = 0.5
        while True:
            tps = self._source_partitions()
            try:
                if tps:
                    first = await consumer.earliest_offsets(*tps)
                    group = await thread.call_thread(committed, tps)
                    for tp in tps:
                        found = group.get(tp)
                        start = first.get(tp) if found is None else found
                        if start is not None:
                            starts[tp] = start
                        _report_expired(tp, found, first.get(tp))
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the broker is away: commits wait, nothing is lost
                logger.warning("could not read where the partitions start (%s); retrying", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _source_partitions(self) -> list[Any]:
        sources = {self.raw_topic.get_topic_name(), self.rekeyed_topic.get_topic_name()}
        try:
            return [tp for tp in self.app.consumer.assignment() if tp.topic in sources]
        except Exception:  # no consumer yet
            return []

    def _idle(self) -> bool:
        return (
            not self._processing
            and not self.snapshots.records
            and not len(self._queue)
            and all(task is None or task.done() for task in (self._settling, self._snapshotting))
        )

    async def _stalled_partitions(self) -> set[Any]:
        app, consumer = self.app, cast(Any, self.app.consumer)
        tps = self._source_partitions()
        queue = self._queue
        if app.rebalancing or getattr(app, "in_recovery", False) or not tps or queue.full:
            # a partition that delivers nothing while the worker's own queue is full waits
            # for room (a store outage, a backlog), not for a fetch
            self.watch.forget()
            return set()
        listed = await consumer.highwaters(*tps)
        ends = {tp: _known_end(listed.get(tp), _fetched_end(consumer, tp)) for tp in tps}
        committed = {tp: consumer._committed_offset.get(tp) for tp in tps}
        return self.watch.stalled(ends, committed, self.order.delivered, self._idle())

    async def _seek_to_committed(self, reason: str, stalled: set[Any]) -> None:
        """Seek every source partition back to its committed offset, as a rebalance does."""
        app, consumer = self.app, cast(Any, self.app.consumer)
        if app.rebalancing:
            return  # the rebalance seeks back to the commit itself
        logger.warning(
            "reading every partition again from its committed offset (%s%s)%s",
            reason,
            ": " + ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(stalled))
            if stalled
            else "",
            _fetch_state(consumer, stalled) if stalled else "",
        )
        metrics.PARTITION_SEEKS.labels(reason).inc()
        # Faust drops the records of a fetch it is iterating when the flow stops, and what
        # waits in the batch queue is dropped once sought: all of them come again from the
        # commit, in order.
        generation = app.consumer_generation_id
        app.flow_control.suspend()
        consumer.stop_flow()
        try:
            await self._fetch_parked(consumer)
            if app.rebalancing or app.consumer_generation_id != generation:
                return  # a rebalance began meanwhile: it seeks, and resumes the flow, itself
            if stalled:
                consumer.resume_partitions(stalled)  # in case Faust left them paused
            await consumer.perform_seek()
            starts = getattr(consumer, DELIVERY_START_ATTRIBUTE, {})
            for tp in self._source_partitions():
                if consumer._committed_offset.get(tp) is None and tp in starts:
                    # no commit to seek to: Faust's seek leaves the position where it was
                    await consumer.seek(tp, starts[tp])
            self._queue.clear()
            self.order.reset()
            self.watch.forget()
        finally:
            if not app.rebalancing and app.consumer_generation_id == generation:
                app.flow_control.resume()
                consumer.resume_flow()

    @staticmethod
    async def _fetch_parked(consumer: Any, timeout: float = 5.0) -> None:
        # Faust's fetch loop parks on ``can_resume_flow`` once it sees the flow stopped; a
        # fetch in flight finishes first (at most its one-second timeout). Seeking before it
        # parks would let that fetch's records overtake the seek.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not getattr(
            consumer.can_resume_flow, "_waiters", None
        ):
            await asyncio.sleep(0.05)

    async def _rejoin(self, stalled: set[Any]) -> None:
        logger.error(
            "partitions still stalled after a seek (%s): rejoining the group",
            ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(stalled)),
        )
        metrics.PARTITION_SEEKS.labels("rejoin").inc()
        thread = cast(Any, self.app.consumer)._thread

        async def request() -> None:
            # aiokafka's coordinator lives on the consumer thread's loop; no public call
            thread._ensure_consumer()._coordinator.request_rejoin()

        await thread.call_thread(request)
        self.watch.forget()

    async def _run(self, stream: Any) -> None:
        """Take the delivered records in batches until the agent stops.

        Records gather while a batch is being processed, and the next batch takes all of them
        (up to ``max_batch``): under load batches grow and their fixed costs (a commit, a
        changelog write per touched learner, two model calls) are shared by more records;
        when the stream is quiet a record waits at most ``max_delay_ms`` for company. The
        records come from :meth:`_deliver`, not through ``stream``, which only subscribes the
        agent's topics (:mod:`streams.handover`).
        """
        self._runs += 1
        if self._runs > 1:
            # a restarted agent: the batch that failed is unacked and behind what is queued
            self._queue.clear()
            self._seek_reason = "restart"
            self._hole_seen.set()
        # Faust's Monitor keeps statistics per record and per event for Faust's own web views,
        # which the worker does not serve (its metrics are its own): out of the sensors, it
        # costs no calls per record.
        with contextlib.suppress(KeyError):
            self.app.sensors.remove(self.app.monitor)
        # A restarted agent redoes the batch that failed: nothing it changed in place counts.
        self.state.forget()
        # A batch's events and rows outlive the youngest generation; at the default threshold
        # they were promoted and rescanned with everything loaded at start (the model, Faust)
        # in full collections. Start-up objects leave the collector, and it runs less often.
        gc.freeze()
        gc.set_threshold(max(gc.get_threshold()[0], _YOUNG_COLLECTION), *gc.get_threshold()[1:])
        try:
            await self._batches(self._queue)
        finally:
            with contextlib.suppress(Exception):
                await self._settle_previous()
                await self._snapshot_previous()
                if self.snapshots.records:  # a graceful stop leaves nothing to take again
                    await asyncio.wait_for(self._snapshot(wait=True), 10.0)

    async def _deliver(self, message: Message) -> None:
        """Take one record from Faust's fetch loop into the batch queue, checking its order."""
        flow = self.app.flow_control
        if not flow.is_active():
            await flow.acquire()  # a rebalance or a seek: the fetch loop abandons this wait
        tp = message.tp
        skipped = self.order.check(tp, message.offset, _next_to_read(self.app.consumer, tp))
        if skipped is not None:
            # the commit stays before them; the worker seeks back to it at once
            self._hole_seen.set()
            logger.warning(
                "%s delivered offset %d after %d: offsets %d..%d were skipped; "
                "reading again from the committed offset",
                tp,
                message.offset,
                skipped - 1,
                skipped,
                message.offset - 1,
            )
            metrics.DELIVERY_HOLES.inc()
        await self._queue.put(message)

    async def _batches(self, queue: RecordQueue) -> None:
        max_batch, linger = self.settings.max_batch, self.settings.max_delay_ms / 1000.0
        while True:
            # Records that came while the last batch was processed make the next one at once;
            # only a record that finds the worker idle waits ``linger`` for company.
            idle = not len(queue)
            await queue.wait_for_records(self.snapshots.wait_s())
            if self.snapshots.due():
                await self._snapshot()
            if not len(queue):
                continue
            if idle and len(queue) < max_batch and linger > 0:
                await asyncio.sleep(linger)  # a burst that is arriving joins this batch
            self._processing = True
            try:
                await self.process(queue.take(max_batch))
            finally:
                self._processing = False

    async def process(self, messages: list[Message]) -> None:
        """Process one micro-batch, then hand its confirmation and acks to a settle task.

        Waiting for the broker to confirm a batch's records is the slowest step and needs no
        CPU here, so it overlaps the next batch's compute and store: :meth:`_settle` waits
        for the sends, marks the interventions published and acks the records, one batch at
        a time and in order. A batch is never acked before its records are confirmed.

        Nothing a record holds can make this raise: a batch that fails is taken again one
        record at a time, and a record that fails alone becomes a dead letter with the error.
        """
        # A record fetched before the last rebalance comes again from the commit; taken now,
        # it would meet a state that no longer holds what the batches before it held.
        current = self.app.consumer_generation_id
        messages = [m for m in messages if m.generation_id == current]
        if not messages:
            return
        metrics.BATCH_SIZE.observe(len(messages))
        # A revocation from here on drops what the batch held; its records are then not acked
        # but read again from the commit, and skipped where the held state shows them durable.
        generation = self._generation
        rekeyed = self.rekeyed_topic.get_topic_name()
        records = []
        for message in messages:
            forwarded = message.topic == rekeyed
            origin, origin_offset = _origin(message.headers) if forwarded else ("", -1)
            records.append(
                InboundRecord(
                    value=bytes(message.value or b""),
                    key=None if message.key is None else bytes(message.key),
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    timestamp=(message.timestamp or time.time() * 1000) / 1000.0,
                    normalised=forwarded,
                    origin=origin,
                    origin_offset=origin_offset,
                    profile="" if forwarded else _profile_header(message.headers),
                )
            )
        sending = Sending()
        try:
            await self._step(records, sending)
        except Exception as err:
            if len(records) == 1:
                await self._reject(records, err, sending)
            else:
                # One record's content (or a bug it meets) must not cost the others: take them
                # again one by one, so only the record that fails is dead-lettered.
                logger.warning(
                    "batch of %d records failed (%s: %s); taking its records one by one",
                    len(records),
                    type(err).__name__,
                    err,
                )
                for record in records:
                    if self._generation != generation:
                        break  # revoked: the rest come again from the commit, to a fresh state
                    try:
                        await self._step([record], sending)
                    except Exception as alone:
                        await self._reject([record], alone, sending)
        self.snapshots.add(len(messages))
        metrics.AWAITING_SNAPSHOT.set(self.snapshots.records)
        await self._settle_previous()
        self._settling = asyncio.ensure_future(self._settle(messages, sending, generation))

    async def _step(self, records: list[InboundRecord], sending: Sending) -> None:
        """Compute, store, send and write the state of ``records``; raise before any send."""
        deciding: asyncio.Future[StoreBatch] | None = None
        try:
            result = await self._take(records)
            # The model runs on its own thread while the database takes the batch's events
            # and features, in the transaction its decisions then join.
            deciding = asyncio.ensure_future(self._decide(result))
            written = await self._store(result, deciding)
            letters = await self._dead_letters(result)
            with metrics.stage("publish"):
                await self._publish(result, letters, written.new_interventions, sending)
                if self.annotations is not None:
                    self.annotations.offer(result.interventions, written.new_interventions)
                self.state.write_back(result)
        except BaseException:
            if deciding is not None and not deciding.done():
                deciding.cancel()
                await asyncio.gather(deciding, return_exceptions=True)
            self.state.forget()  # the records were changed in place and are not written
            raise

    async def _reject(
        self, records: list[InboundRecord], err: BaseException, sending: Sending
    ) -> None:
        if isinstance(err, RejectedBatch):
            # The database refused the rows themselves: keep the records on the DLQ with the
            # reason rather than retrying forever or dropping them.
            logger.error("store rejected %d records: %s", len(records), err)
            reason = f"store rejected the batch: {err}"
        else:
            # A bug must not crash the worker (Faust would ack the batch and lose it): park
            # the records on the DLQ, with the error, for a fix and `tutorstream dlq replay`.
            logger.error(
                "%d records failed (%s: %s); sending them to the DLQ",
                len(records),
                type(err).__name__,
                err,
                exc_info=err,
            )
            reason = f"internal error: {type(err).__name__}: {err}"
        result = BatchResult()
        for record in records:
            result.dead_letters.append(
                DeadLetterOut(record, InvalidEvent("", reason, None), "pipeline")
            )
        letters = await self._dead_letters(result)
        with metrics.stage("publish"):
            await self._publish(result, letters, (), sending)

    async def _settle(self, messages: list[Message], sending: Sending, generation: int) -> None:
        with metrics.stage("confirm"):
            await self._confirm(sending)
            if sending.published:
                try:
                    await self.sink.mark_published(sending.published)
                except Exception:
                    # the sweep finds them unmarked and publishes them again: a duplicate a
                    # consumer drops by intervention id, never a loss
                    logger.warning(
                        "could not mark %d interventions published", len(sending.published)
                    )
        if generation == self._generation:
            self._covered.append(messages)  # acked by the next snapshot
        self._observe_lag(messages)

    async def _snapshot(self, *, wait: bool = False) -> None:
        """Write the state held since the last snapshot to the changelogs; then ack.

        Runs between batches, once the last batch has settled, so what is written is exactly
        the state of the batches it acks. Waiting for the broker to confirm the values, then
        acking, is left to a task (:meth:`_write_snapshot`) that the batches after it overlap,
        as :meth:`_settle` is; the next snapshot waits for it, so acks stay in order. Nothing
        is acked before the broker has every value.

        Args:
            wait: return only once the values are confirmed and the records acked.
        """
        await self._settle_previous()
        await self._snapshot_previous()
        owned = {tp.partition for tp in self._source_partitions()}
        if not owned:
            return  # no assignment known (starting or stopping): all of it waits
        generation, covered, self._covered = self._generation, self._covered, []
        taken = self.held.take(owned.__contains__)
        self.snapshots.taken()
        metrics.AWAITING_SNAPSHOT.set(0)
        with metrics.stage("snapshot"):
            for table, values in zip(self._tables, taken, strict=True):
                data = table.data
                for key, value, _ in values:
                    data[key] = value  # what the table reads once nothing is held for it
        self._snapshotting = asyncio.ensure_future(
            self._write_snapshot(taken, covered, owned, generation)
        )
        if wait:
            await self._snapshot_previous()

    async def _write_snapshot(
        self,
        taken: list[list[tuple[Any, bytes, int]]],
        covered: list[list[Message]],
        owned: set[int],
        generation: int,
    ) -> None:
        sending = Sending()
        with metrics.stage("changelog"):
            # each partition's last record alone, after the rest (see last_alone)
            firsts, lasts = zip(*(last_alone(values) for values in taken), strict=True)
            for wave in (firsts, lasts):
                for table, values in zip(self._tables, wave, strict=True):
                    topic = table.changelog_topic
                    for key, value, partition in values:
                        out = Outgoing(topic, orjson.dumps(key), value, partition=partition)
                        sending.pending.append((out, await self._send_guarded(out)))
                await self._confirm(sending)
        metrics.SNAPSHOTS.inc()
        metrics.SNAPSHOT_RECORDS.inc(sum(len(values) for values in taken))
        if generation != self._generation:
            return  # revoked meanwhile: the records come again from the commit
        consumer = self.app.consumer
        for messages in covered:
            for message in messages:
                # a record's learner state is written to the partition it came from
                if message.partition in owned:
                    message.ack(consumer)

    async def _snapshot_previous(self) -> None:
        # A failure raises here, in the agent, as it did before it left the batches' path:
        # the records stay unacked and are read again from the commit.
        snapshotting, self._snapshotting = self._snapshotting, None
        if snapshotting is not None:
            await snapshotting

    async def _confirm(self, sending: Sending) -> None:
        """Wait until the broker has every record of ``sending``; send again what failed.

        A send fails for the broker's sake (down, a leader moving): it is sent again, with
        backoff, as long as it takes, and the batch stays unacked meanwhile. Records that
        fit by construction (dead letters are fitted, the rest are small) never fail for
        their content, so this cannot spin on one record.
        """
        delay = 0.5
        pending = sending.take()
        while True:
            outcomes = await _waiting_loudly(
                asyncio.gather(*(f for _, f in pending), return_exceptions=True),
                f"the broker's confirmation of {len(pending)} records",
            )
            failed = [
                (out, err)
                for (out, _), err in zip(pending, outcomes, strict=True)
                if isinstance(err, BaseException)
            ]
            if not failed:
                break
            logger.warning(
                "broker did not take %d records (%s); sending them again in %.1fs",
                len(failed),
                failed[0][1],
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            pending = []
            for out, _ in failed:
                pending.append((out, await self._send_guarded(out)))
        with contextlib.suppress(Exception):
            await _waiting_loudly(self.app.producer.flush(), "the producer's flush")
        for kind, count in sending.dead_letter_kinds.items():
            # counted once the topic has them, so the metric is what the topic holds
            metrics.DLQ.labels(kind).inc(count)

    async def _settle_previous(self) -> None:
        # A failed confirmation raises here, in the agent, as it did before it moved off the
        # batch's path: the batch stays unacked and is redelivered.
        settling, self._settling = self._settling, None
        if settling is not None:
            await settling

    async def _take(self, records: list[InboundRecord]) -> BatchResult:
        """Parse, deduplicate and featurise ``records`` against the learners' state."""
        processor = self.processor
        result = BatchResult()
        parsed = processor.parse(records, result)
        doubtful = processor.doubtful(parsed, self.state)
        stored = await self._stored_events(doubtful) if doubtful else set()
        processor.ingest_parsed(parsed, self.state, result, stored)
        return result

    async def _decide(self, result: BatchResult) -> StoreBatch:
        """Score the batch's decision points and decide; return the rows of the decisions."""
        began = time.perf_counter()
        self._deciding_s = 0.0
        if result.for_model:
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            with metrics.stage("inference"):
                prediction = await loop.run_in_executor(
                    self.executor, self.processor.score, result, self.model
                )
            metrics.INFERENCE_LATENCY.observe(time.perf_counter() - started)
            if result.scored:
                self.processor.decide_with(result, self.state, prediction, self.model)
        self._deciding_s = time.perf_counter() - began
        return outbound.decided_rows(result, self.model.spec)

    async def _stored_events(self, event_ids: list[str]) -> set[str]:
        # Which of the records the learner state seems to have passed are really stored: only
        # those may be skipped. Asked again while the store cannot answer, as a write is.
        while True:
            try:
                return await self.sink.stored_events(event_ids)
            except (psycopg.Error, StoreError) as err:
                logger.error("store not readable, holding the batch: %s", err)
                await asyncio.sleep(1.0)

    async def _store(
        self, result: BatchResult, deciding: asyncio.Future[StoreBatch]
    ) -> WriteResult:
        started = time.perf_counter()
        batch = outbound.taken_rows(result)
        while True:
            try:
                written = await self.sink.write(batch, deciding)
                break
            except RejectedBatch:
                raise
            except (StoreError, StoreUnavailable) as err:
                # The store is there but not usable (not migrated, or down past the sink's
                # deadline): hold the batch, unacked, until an operator fixes it.
                logger.error("store not writable, holding the batch: %s", err)
                await asyncio.sleep(5.0)
        elapsed = time.perf_counter() - started
        # the model's time, spent meanwhile, is the inference and decision stages' own
        metrics.STAGE_SECONDS.labels("sink").inc(max(0.0, elapsed - self._deciding_s))
        metrics.SINK_LATENCY.observe(elapsed)
        return written

    async def _dead_letters(self, result: BatchResult) -> list[Letter]:
        """Return the batch's dead letters as sent: ``(metric label, JSON, record)`` each.

        A dead letter too large for its topic goes out truncated (the record's head, size and
        SHA-256); the whole record is committed to the store first, so the hash in the
        truncated letter always finds it.
        """
        letters: list[Letter] = []
        payloads = []
        for letter in result.dead_letters:
            where = (letter.record.topic, letter.record.partition, letter.record.offset)
            if where in self._lettered:
                metrics.DLQ_AGAIN.inc()
                continue
            whole = outbound.dead_letter(letter)
            fitted = whole.fitted(DEAD_LETTER_LIMIT, DEAD_LETTER_HEAD)
            letters.append((letter.kind, fitted.model_dump_json().encode(), where))
            if fitted is whole:
                continue
            record = letter.record
            assert fitted.original_sha256 is not None  # set on every truncated letter
            payloads.append(
                DeadLetterPayload(
                    sha256=fitted.original_sha256,
                    payload=record.value,
                    key=record.key,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    reason=letter.error.reason,
                )
            )
        while payloads:
            try:
                await self.sink.keep_payloads(payloads)
                break
            except (psycopg.Error, StoreError) as err:
                logger.error("store not writable, holding %d dead letters: %s", len(payloads), err)
                await asyncio.sleep(1.0)
        return letters

    async def _send_guarded(self, out: Outgoing) -> Awaitable[Any]:
        """Send ``out``; a send that raises at once comes back as a failed future."""
        try:
            # the producer itself, not the topic's send: the bytes are final, and the topic
            # wraps each record in a future message, sensor calls and a callback of its own
            sent: Awaitable[Any] = await self.app.producer.send(
                out.topic.get_topic_name(),
                out.key,
                out.value,
                partition=out.partition,
                timestamp=None,
                headers=out.headers,
            )
            return sent
        except Exception as err:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(err)
            return failed

    async def _publish(
        self,
        result: BatchResult,
        letters: list[Letter],
        new_interventions: Iterable[str],
        sending: Sending,
    ) -> None:
        """Send the batch's records; add their delivery futures to ``sending``."""

        async def send(topic: Any, key: bytes | None, value: bytes, headers: Any = None) -> None:
            out = Outgoing(topic, key, value, headers)
            sending.pending.append((out, await self._send_guarded(out)))

        for kind, letter, where in letters:
            if where in self._lettered:  # a batch taken again record by record after a failure
                continue
            await send(self.dlq_topic, None, letter)
            sending.dead_letter_kinds[kind] += 1
            # once sent it is confirmed, however long the broker takes (see _confirm)
            self._lettered.add(where)
        for learner_id, value, arrived in result.forwards:
            source, offset = arrived.source
            await send(
                self.rekeyed_topic,
                learner_id.encode(),
                value,
                [(ORIGIN_HEADER, f"{source}@{offset}".encode())],
            )
        if self.settings.publish_live:
            fresh = set(new_interventions)
            now = time.time()
            for item in result.interventions:
                if item.decision.intervention_id not in fresh:
                    continue  # already stored: a replay or a retry found it again
                record = outbound.intervention(item, self.model.spec)
                sending.published.append(record.intervention_id)
                key = item.event.learner_id.encode()
                await send(self.interventions_topic, key, record.model_dump_json().encode())
                if item.decision.status.value == "sent":
                    prompt = outbound.learner_prompt(record)
                    await send(self.prompts_topic, key, prompt.model_dump_json().encode())
                # from the record's arrival on Kafka, not the event's own time: producers may
                # send history, and a replay must not count as latency
                metrics.EVENT_TO_INTERVENTION.observe(max(0.0, now - item.record_timestamp))
            for rec in result.recommendations:
                value = outbound.recommendation(rec, self.model.spec).model_dump_json().encode()
                await send(self.recommendations_topic, rec.event.learner_id.encode(), value)

    async def _sweep_outbox(self) -> None:
        # Interventions a killed worker stored but never confirmed on their topic.
        if not self.settings.publish_live:
            return
        try:
            async with self.sink.claim_unpublished(self.settings.outbox_grace_s) as rows:
                if not rows:
                    return
                # A worker killed between publishing and marking left these on the topic
                # already: look there first, so a sweep never duplicates an intervention.
                oldest = min(r["created_at"] for r in rows).timestamp()
                on_topic = await asyncio.to_thread(
                    self._published_since, oldest - self.settings.outbox_grace_s
                )
                futures = []
                for row in rows:
                    if row["intervention_id"] in on_topic:
                        continue
                    record = Intervention.from_row(row)
                    futures.append(
                        await self.interventions_topic.send(
                            key=record.learner_id.encode(),
                            value=record.model_dump_json().encode(),
                        )
                    )
                if futures:
                    await asyncio.gather(*futures)
                    await self.app.producer.flush()
                    logger.info("outbox: published %d interventions left unconfirmed", len(rows))
        except Exception:
            logger.exception("outbox sweep failed; retrying at the next interval")

    def _observe_lag(self, messages: list[Message]) -> None:
        last: dict[Any, int] = {}
        for message in messages:
            last[message.tp] = max(last.get(message.tp, -1), message.offset)
        for tp, offset in last.items():
            try:
                high = self.app.consumer.highwater(tp)
            except Exception:  # lag is best effort; never fail a batch for it
                continue
            if high is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                    max(0, high - offset - 1)
                )


def _report_expired(tp: Any, committed: int | None, first: int | None) -> None:
    """Say so when the log's retention deleted records the group had not yet processed.

    The client then starts from the log's first offset and nothing else would show the loss:
    the records are gone from the broker, so a replay from the topic cannot bring them back.
    """
    if committed is None or first is None or first <= committed:
        return
    lost = first - committed
    metrics.EXPIRED.labels(tp.topic, str(tp.partition)).inc(lost)
    logger.error(
        "%d records of %s[%d] (offsets %d to %d) were deleted by the topic's retention before "
        "this group processed them; raise the retention or add workers (see operations.md)",
        lost,
        tp.topic,
        tp.partition,
        committed,
        first - 1,
    )


async def _waiting_loudly(step: Awaitable[Any], what: str, every_s: float = 30.0) -> Any:
    """Await ``step``, logging every ``every_s`` while it has not finished.

    A worker that waits on the broker says so in its log, rather than only going quiet.
    """
    task = asyncio.ensure_future(step)
    waited = 0.0
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every_s)
            if done:
                return task.result()
            waited += every_s
            logger.warning("still waiting for %s after %.0fs", what, waited)
    except asyncio.CancelledError:
        task.cancel()
        raise


async def _healthz_view(self: Any, request: Any) -> Any:
    # liveness: the process and its event loop answer; dependencies are /readyz's business,
    # so an outage of the broker or the database never gets a healthy worker restarted
    return self.json({"status": "ok"})


async def _metrics_view(self: Any, request: Any) -> Any:
    from prometheus_client import generate_latest

    # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway
    return self.bytes(generate_latest(metrics.REGISTRY), content_type="text/plain; version=0.0.4")

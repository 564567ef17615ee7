"""Replay a slice of a topic's history: export it, rebuild the store, rescore, or re-drive DLQ.

Outputs: :class:`JsonlExport` and :class:`ParquetExport` (normalised events, pseudonyms
only), :class:`Rebuild` (the pipeline into a store with nothing published: the live tables, or
a shadow schema for a rescore with another model, see :func:`shadow_schema`) and
:class:`DlqReplay` (dead letters that pass the current normaliser go back to the events topic).

A replay reads partitions it assigns itself, under a consumer group of its own that it never
commits, so the live workers' offsets never move. It captures where each partition ends when
it starts and stops there, so it finishes while new events keep arriving.

Tansu reports a high watermark that is the last batch's base offset plus one, so records of
that last batch can lie past it: past the captured end a replay keeps reading only records
written before it started, until the partition is quiet for ``settle_s``.

A checkpoint file holds, per partition, the next offset to read and the end captured at the
start; it is written only after a batch's output is durable, so a replay stopped at any point
(Ctrl-C) resumes without losing or repeating output.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from confluent_kafka import Consumer, Message, TopicPartition

from inference.runtime import LearnerModel, Prediction
from schemas.events import LearningEvent, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from schemas.profiles import BUILTIN_ID, PROFILE_HEADER, load_profiles
from schemas.profiles.compiled import CompiledProfile, compile_profiles
from schemas.pseudonym import Pseudonymiser
from schemas.records import DeadLetter
from streams import outbound
from streams.app import WINDOW_FALLBACK, partition_for
from streams.policy import InterventionPolicy
from streams.processor import EventProcessor, InboundRecord, StateView
from streams.store.sink import StoreBatch, StoreSink


class ReplayError(RuntimeError):
    """A replay that cannot start: a bad selection, a missing topic, a foreign checkpoint."""


class Mode(StrEnum):
    """What a replay does with the events it reads."""

    EXPORT = "export"
    REBUILD = "rebuild"
    RESCORE = "rescore"


def shadow_schema(model_ref: str) -> str:
    """Return the schema a rescore with ``model_ref`` (a resolved ``name@version``) writes into.

    A rescore never writes to the live tables: its rows go to ``shadow_<name>_<version>``
    beside them (lower-cased; anything but letters, digits and ``_`` becomes ``_``).
    """
    return "shadow_" + re.sub(r"[^a-z0-9_]", "_", model_ref.lower())[:55]


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
            watermark captured at the start (see the module's note on Tansu).
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


@dataclass(slots=True)
class Progress:
    """How far a replay has come.

    Attributes:
        records: records read so far in this run.
        events: events that passed the filters.
        invalid: records that do not normalise (they are on the DLQ already; skipped).
        expected: records the watermarks announce for this run.
        batches: batches made durable in this run.
        started: ``time.monotonic()`` at the start.
    """

    records: int = 0
    events: int = 0
    invalid: int = 0
    expected: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Records per second so far."""
        elapsed = time.monotonic() - self.started
        return self.records / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate, when it is known.

        Unknown once the records read pass the watermarks' count (Tansu's watermarks can fall
        short by a batch).
        """
        rate = self.rate
        if rate <= 0 or self.records >= self.expected:
            return None
        return (self.expected - self.records) / rate

    def line(self) -> str:
        """One line for a terminal."""
        tail = f"{self.events:,} events, {self.invalid:,} invalid, {self.rate:,.0f} rec/s"
        if self.expected and self.records > self.expected:
            # a broker whose watermark stops at its last batch's start (Tansu) undercounts
            return (
                f"{self.records:,} records ({self.expected:,} announced by the watermarks; "
                f"now reading the partitions' last batches), {tail}"
            )
        eta = "?" if self.eta_s is None else f"{self.eta_s:.0f}s"
        share = 100.0 * self.records / self.expected if self.expected else 100.0
        return f"{self.records:,}/{self.expected:,} records ({share:.0f}%), {tail}, ETA {eta}"


def consumer_settings(bootstrap: str, replay_id: str) -> dict[str, Any]:
    """Return consumer settings for a replay: its own group, never committed, short fetch wait."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"tutorstream-replay-{replay_id}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 20,
        "fetch.min.bytes": 1,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "queued.max.messages.kbytes": 256 * 1024,
    }


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


class Checkpoint:
    """Next offset and captured end per partition, saved atomically after durable batches.

    Args:
        path: the checkpoint file; ``None`` keeps nothing.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> tuple[dict[str, dict[str, int]], float, int] | None:
        """Return the saved partitions, start time and output mark, if saved.

        Partitions map ``topic:partition`` to ``{"next", "end", "exact"}``; the start time
        (epoch ms) bounds what a resumed run reads past a captured end; the output mark is
        where the output stood after the last durable batch (see :meth:`Output.mark`).
        """
        if self.path is None or not self.path.exists():
            return None
        body = json.loads(self.path.read_text())
        return body["partitions"], float(body["began_ms"]), int(body.get("output_mark", 0))

    def save(
        self, ranges: Iterable[Range], done: dict[str, int], began_ms: float, mark: int = 0
    ) -> None:
        """Write the checkpoint: ``done`` maps ``topic:partition`` to the next offset."""
        if self.path is None:
            return
        body = {
            "began_ms": began_ms,
            "output_mark": mark,
            "partitions": {
                r.key: {"next": done.get(r.key, r.start), "end": r.end, "exact": int(r.exact)}
                for r in ranges
            },
        }
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w") as out:
            json.dump(body, out)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)


def resume(ranges: list[Range], saved: dict[str, dict[str, int]]) -> list[Range]:
    """Return ``ranges`` continued from a checkpoint: its next offsets and its captured ends."""
    keys = {r.key for r in ranges}
    if set(saved) != keys:
        raise ReplayError(
            "the checkpoint belongs to another selection (partitions "
            f"{sorted(saved)} vs {sorted(keys)}); remove it or pick another"
        )
    return [
        Range(
            r.topic,
            r.partition,
            saved[r.key]["next"],
            saved[r.key]["end"],
            bool(saved[r.key]["exact"]),
        )
        for r in ranges
    ]


Batch = list[tuple[InboundRecord, list[LearningEvent]]]
"""Records of one batch with the events each normalised into (after filtering)."""


class Output:
    """Where the events of a replay go; ``write`` returns once the batch is durable.

    A replay splits ``write`` in two so that a batch's computing overlaps the storing of the
    one before: :meth:`prepare` (in batch order, on a worker thread) and :meth:`store`
    (on the event loop, one batch at a time). Outputs with nothing to compute keep both
    defaults and implement ``write``.
    """

    async def write(self, batch: Batch) -> None:
        """Make ``batch``'s output durable."""
        raise NotImplementedError

    def prepare(self, batch: Batch) -> Any:
        """Compute what :meth:`store` makes durable; by default the batch itself."""
        return batch

    async def store(self, prepared: Any) -> None:
        """Make the output of :meth:`prepare` durable; by default :meth:`write` it."""
        await self.write(prepared)

    async def close(self) -> None:
        """Release what the output holds."""

    def mark(self) -> int:
        """Return where the output stands after its last durable batch (kept in checkpoints)."""
        return 0

    def restore(self, mark: int) -> None:
        """Drop output written after ``mark`` (a batch cut off before its checkpoint)."""

    #: Whether a batch's output depends on the batches before it (learner state): a resumed
    #: run then reads what was done before again, to rebuild that state, storing nothing.
    carries_state = False


class _WarmUp(Output):
    """Runs an output's computing over batches already done, keeping only its state."""

    def __init__(self, output: Output) -> None:
        self.output = output

    def prepare(self, batch: Batch) -> Any:
        self.output.prepare(batch)
        return None

    async def store(self, prepared: Any) -> None:
        return None


class JsonlExport(Output):
    """Normalised events as JSON lines (pseudonyms only), appended and fsynced per batch.

    Args:
        path: the file; appended to, so a resumed export continues it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("ab")

    async def write(self, batch: Batch) -> None:
        """Append the batch's events and fsync."""
        lines = [e.model_dump_json().encode() + b"\n" for _, events in batch for e in events]
        self._file.write(b"".join(lines))
        self._file.flush()
        os.fsync(self._file.fileno())

    async def close(self) -> None:
        """Close the file."""
        self._file.close()

    def mark(self) -> int:
        """Return the file's length."""
        return self._file.tell()

    def restore(self, mark: int) -> None:
        """Cut the file back to ``mark`` bytes, dropping lines of an unfinished batch."""
        self._file.truncate(mark)
        self._file.seek(mark)


def event_arrow_schema() -> Any:
    """Return the Arrow schema of an exported :class:`LearningEvent` (one column per field).

    Times are ``timestamp[us, UTC]``; the closed vocabularies (event type, source, resource
    relation) are dictionary-encoded strings, so readers see their text and files stay small.

    Raises:
        ReplayError: when pyarrow is not installed.
    """
    pa = _pyarrow()
    vocabulary = pa.dictionary(pa.int8(), pa.string())
    return pa.schema(
        [
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("learner_id", pa.string(), nullable=False),
            pa.field("class_id", pa.string()),
            pa.field("session_id", pa.string()),
            pa.field("item_id", pa.string()),
            pa.field("skill_ids", pa.list_(pa.string()), nullable=False),
            pa.field("event_type", vocabulary, nullable=False),
            pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("correct", pa.bool_()),
            pa.field("response_hash", pa.string()),
            pa.field("attempt", pa.int32()),
            pa.field("duration_s", pa.float64()),
            pa.field("hint_level", pa.int32()),
            pa.field("hint_count", pa.int32()),
            pa.field("item_difficulty", pa.float64()),
            pa.field("resource_relation", vocabulary),
            pa.field("score_scaled", pa.float64()),
            pa.field("source", vocabulary, nullable=False),
        ]
    )


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ReplayError(
            "Parquet export needs pyarrow: pip install 'tutorstream[parquet]'"
        ) from None
    return pyarrow


class ParquetExport(Output):
    """Normalised events as Parquet (pseudonyms only): a directory of part files.

    Each durable batch becomes one part file, ``part-000000.parquet``, ``part-000001.parquet``
    and so on, written under a temporary name, fsynced and renamed, so a file of the directory
    is always whole. A Parquet file is readable only once its footer is written, which rules
    out appending to one file batch by batch the way the JSON lines export does: part files
    make each batch durable on its own, and a resumed export deletes any part numbered at or
    past the checkpoint's mark (written after the last checkpoint) before it continues. Read
    the directory as one dataset (``pyarrow.dataset.dataset(path)``, pandas, DuckDB, Spark);
    a larger ``--batch-size`` makes fewer, larger files.

    Args:
        path: the directory; created when missing, continued when it holds parts.
        row_group_rows: most rows per row group inside a part.
        compression: the Parquet codec.

    Raises:
        ReplayError: when pyarrow is not installed, or ``path`` is a file.
    """

    def __init__(
        self, path: Path, *, row_group_rows: int = 64 * 1024, compression: str = "zstd"
    ) -> None:
        self._pa = _pyarrow()
        import pyarrow.parquet

        self._pq = pyarrow.parquet
        self.schema = event_arrow_schema()
        if path.exists() and not path.is_dir():
            raise ReplayError(f"{path} is a file; a Parquet export writes a directory of parts")
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.row_group_rows = row_group_rows
        self.compression = compression
        self._next = max((n + 1 for n, _ in self._parts()), default=0)

    def _parts(self) -> list[tuple[int, Path]]:
        found = []
        for part in self.path.glob("part-*.parquet"):
            number = part.name.removeprefix("part-").removesuffix(".parquet")
            if number.isdigit():
                found.append((int(number), part))
        return sorted(found)

    def part(self, number: int) -> Path:
        """Return the path of part ``number``."""
        return self.path / f"part-{number:06d}.parquet"

    async def write(self, batch: Batch) -> None:
        """Write the batch's events as the next part file, durably."""
        rows = [e.model_dump() for _, events in batch for e in events]
        if not rows:
            return
        table = self._pa.Table.from_pylist(rows, schema=self.schema)
        final = self.part(self._next)
        tmp = final.with_name(final.name + ".tmp")
        with tmp.open("wb") as sink:
            self._pq.write_table(
                table, sink, row_group_size=self.row_group_rows, compression=self.compression
            )
            sink.flush()
            os.fsync(sink.fileno())
        tmp.replace(final)
        _fsync_dir(self.path)
        self._next += 1

    def mark(self) -> int:
        """Return the number of the next part (all parts before it are durable)."""
        return self._next

    def restore(self, mark: int) -> None:
        """Delete parts numbered ``mark`` or more, and any unfinished part."""
        for number, part in self._parts():
            if number >= mark:
                part.unlink()
        for unfinished in self.path.glob("part-*.parquet.tmp"):
            unfinished.unlink()
        _fsync_dir(self.path)
        self._next = mark


def _fsync_dir(path: Path) -> None:
    # a rename is durable only once the directory entry is
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Rebuild(Output):
    """Run the pipeline over the events into the store, publishing nothing.

    Learner and item state start empty and live in memory for the run; each event is placed on
    the partition its learner's state lives on in the live pipeline, so item norms keyed by
    partition match the live ones. The sinks skip rows already stored, so replaying history
    the live workers processed changes no row.

    Events arrive already normalised (the replay filters them), so they skip the live path's
    parsing; the model scores a batch in chunks on a thread of its own while the rest is
    featurised, and the batch's rows are stored while the replay prepares the next one.

    Args:
        model: the model to score with.
        sink: the store to write to.
        policy: the intervention policy.
        partitions: partitions of the events topic (where learners' state lives).
        dedupe_window_s: how long an event id is remembered per learner.
        dedupe_max_ids: most ids remembered per learner.
        inference_chunk: decision points per model call; the model scores one chunk on a
            thread of its own while the next is featurised, so a model with one intra-op
            thread (``LearnerModel(intra_op_threads=1)``) spends the least CPU per event.
        owned: the partitions whose learners this rebuild holds, when other processes hold
            the rest (:mod:`streams.replay_pool`); ``None``: all of them.

    Raises:
        ReplayError: from :meth:`prepare`, on an event of a learner whose state another
            process holds (a topic not keyed by learner pseudonym cannot be split).
    """

    carries_state = True

    def __init__(
        self,
        model: LearnerModel,
        sink: StoreSink,
        policy: InterventionPolicy,
        partitions: int,
        *,
        dedupe_window_s: float = 3600.0,
        dedupe_max_ids: int = 2048,
        inference_chunk: int = 1024,
        owned: frozenset[int] | None = None,
    ) -> None:
        self.model = model
        self.owned = owned
        self.sink = sink
        self.partitions = partitions
        self.inference_chunk = inference_chunk
        self._inference = ThreadPoolExecutor(1, thread_name_prefix="replay-inference")
        self._partitions: dict[str, int] = {}
        self.state = StateView({}, {}, {}, model.window or WINDOW_FALLBACK)
        self.processor = EventProcessor(
            # only normalised events reach the processor, so the key is never used
            pseudonym_key=b"unused",
            owns=lambda _learner, _record: True,
            policy=policy,
            dedupe_window_s=dedupe_window_s,
            dedupe_max_ids=dedupe_max_ids,
        )

    async def write(self, batch: Batch) -> None:
        """Process the batch and write its rows; returns once they are committed."""
        await self.store(self.prepare(batch))

    def prepare(self, batch: Batch) -> StoreBatch | None:
        """Run the pipeline over the batch's events; return their rows (``None``: no events).

        Learner and item state move on here, before the rows are stored: that state lives
        only in this run, and a batch that fails to store ends the run.
        """
        pairs: list[tuple[LearningEvent, InboundRecord]] = []
        for record, events in batch:
            for event in events:
                # the partition the learner's state lives on in the live pipeline, so item
                # norms and catalogues (keyed by partition) match the live ones
                pairs.append((event, self._placed(record, event.learner_id)))
        if not pairs:
            return None
        scoring: list[Future[Prediction]] = []

        def ready(
            events: npt.NDArray[np.float32],
            mask: npt.NDArray[np.bool_],
            query: npt.NDArray[np.float32],
        ) -> None:
            # onnxruntime releases the GIL: the model scores these while the next events
            # are featurised
            scoring.append(self._inference.submit(self.model.predict, events, mask, query))

        result = self.processor.ingest_events(
            pairs, self.state, ready=ready, chunk=self.inference_chunk
        )
        if scoring:
            parts = [future.result() for future in scoring]
            prediction = Prediction(
                state_probs=np.concatenate([p.state_probs for p in parts]),
                p_correct=np.concatenate([p.p_correct for p in parts]),
                state=np.concatenate([p.state for p in parts]),
            )
            self.processor.decide(result, self.state, prediction, self.model.score_candidates)
        rows = outbound.store_batch(result, self.model.spec)
        self.state.write_back(result)
        return rows

    async def store(self, prepared: StoreBatch | None) -> None:
        """Write the rows of a prepared batch; returns once they are committed."""
        if prepared is not None:
            await self.sink.write(prepared)

    def _placed(self, record: InboundRecord, learner: str) -> InboundRecord:
        partition = self._partition(learner)
        if partition == record.partition:
            return record  # keyed by the learner's pseudonym, as producers should
        source, offset = record.source
        if self.owned is not None and partition not in self.owned:
            raise ReplayError(
                f"{record.topic}:{record.partition}@{record.offset} holds an event of learner "
                f"{learner}, whose state lives on partition {partition}, held by another "
                "process: a topic whose records are not keyed by learner pseudonym (on "
                f"{self.partitions} partitions) cannot be rebuilt in parallel; use one process"
            )
        return InboundRecord(
            value=record.value,
            key=record.key,
            topic=record.topic,
            partition=partition,
            offset=record.offset,
            timestamp=record.timestamp,
            normalised=record.normalised,
            origin=source,
            origin_offset=offset,
        )

    def _partition(self, learner: str) -> int:
        # murmur2 in pure Python costs more than the rest of building a record; a class has
        # few learners, each seen many times
        found = self._partitions.get(learner)
        if found is None:
            found = self._partitions[learner] = partition_for(learner, self.partitions)
        return found

    async def close(self) -> None:
        """Close the sink and stop the inference thread."""
        self._inference.shutdown(wait=True)
        await self.sink.close()


@dataclass(slots=True)
class Replay:
    """One replay run.

    Args:
        bootstrap: Kafka bootstrap servers.
        selection: what to read.
        pseudonym_key: HMAC key for learner pseudonyms (the live pipeline's).
        replay_id: names the replay's own consumer group.
        checkpoint: where progress is kept; resumes from it when it exists.
        batch_size: records per batch (one checkpoint per batch).
        settle_s: how long a partition must be quiet past its captured end to be finished.
        max_batches: stop after this many batches (a checkpointed stop, like Ctrl-C).
        on_progress: called after every batch.
        normalised: normalise and filter each record into events; off for topics that do not
            hold raw learning events (the DLQ), whose outputs read the records themselves.
        assigned: ranges and start time (epoch ms) handed over by a replay that planned them
            (a process of a :mod:`streams.replay_pool` rebuild); the run reads exactly these,
            neither planning nor loading a checkpoint.
        before: with ``assigned``, what a resumed run read before its checkpoint (see
            :attr:`Output.carries_state`).
        profile_files: statement profile files beside the built-in one
            (``TUTORSTREAM_PROFILES__FILES``): each record is read with the profile its
            ``tutorstream-profile`` header names, as the live worker read it.
        default_profile: the profile of records that name none (``TUTORSTREAM_PROFILES__DEFAULT``).
    """

    bootstrap: str
    selection: Selection
    pseudonym_key: bytes
    replay_id: str
    checkpoint: Checkpoint = field(default_factory=lambda: Checkpoint(None))
    batch_size: int = 2000
    settle_s: float = 1.0
    max_batches: int | None = None
    on_progress: Callable[[Progress], None] | None = None
    normalised: bool = True
    assigned: tuple[list[Range], float] | None = None
    before: list[Range] = field(default_factory=list)
    profile_files: tuple[str, ...] = ()
    default_profile: str = BUILTIN_ID

    def ranges(self) -> list[Range]:
        """Return what this run would read (the dry run), continued from any checkpoint."""
        return self.begin()[0]

    def begin(self) -> tuple[list[Range], float, int | None, list[Range]]:
        """Plan the run: ranges, start time (epoch ms), output mark, and what came before.

        The last is what a resumed run read before its checkpoint. The ranges are the
        selection's with the end offsets captured now, continued from the checkpoint when
        there is one (whose start time and mark then come back too).
        """
        if self.assigned is not None:
            return self.assigned[0], self.assigned[1], None, self.before
        consumer = Consumer(consumer_settings(self.bootstrap, self.replay_id))
        try:
            found = plan(self.bootstrap, consumer, self.selection)
        finally:
            consumer.close()
        saved = self.checkpoint.load()
        if saved is None:
            return found, time.time() * 1000, None, []
        continued = resume(found, saved[0])
        before = [
            Range(r.topic, r.partition, r.start, c.start, True)
            for r, c in zip(found, continued, strict=True)
            if c.start > r.start
        ]
        return continued, saved[1], saved[2], before

    async def run(self, output: Output) -> Progress:
        """Read the ranges, hand each batch to ``output``, checkpoint after each one.

        Reading and preparing a batch (on a worker thread) overlaps storing the one before
        (on the event loop); one batch is stored at a time, in order, and the checkpoint
        moves past a batch only once it is durable.
        """
        ranges, began_ms, mark, before = self.begin()
        if mark is not None:
            output.restore(mark)
        if before and output.carries_state:
            # Learner and item state live only in the run: a resumed rebuild or rescore
            # first reads what it did before its checkpoint again, computing and storing
            # nothing, so the batches after it see the state an uninterrupted run would.
            again = dataclasses.replace(
                self,
                checkpoint=Checkpoint(None),
                max_batches=None,
                assigned=(before, began_ms),
                before=[],
            )
            await again.run(_WarmUp(output))
        progress = Progress(expected=sum(r.count for r in ranges))
        pseudonymiser = pseudonymiser_for(self.pseudonym_key)
        done = {r.key: r.start for r in ranges}
        self.checkpoint.save(ranges, done, began_ms, output.mark())
        # an exact range that is empty has nothing to read; past a watermark there may be
        open_ranges = {(r.topic, r.partition): r for r in ranges if not r.exact or r.count}
        consumer = Consumer(consumer_settings(self.bootstrap, self.replay_id))
        last_seen = {key: time.monotonic() for key in open_ranges}
        # the batch being stored, with the offsets to checkpoint once it is durable
        storing: tuple[asyncio.Future[None], dict[str, int]] | None = None
        begun = 0
        loop = asyncio.get_running_loop()
        # one reader thread: the consumer is never used by two threads at once, and the
        # output prepares batches in their order
        reader = ThreadPoolExecutor(1, thread_name_prefix="replay-read")

        async def settle() -> None:
            nonlocal storing
            if storing is None:
                return
            task, offsets = storing
            await task
            storing = None
            progress.batches += 1
            self.checkpoint.save(ranges, offsets, began_ms, output.mark())
            if self.on_progress is not None:
                self.on_progress(progress)

        def read_and_prepare() -> tuple[Batch, Any, list[tuple[str, int]]]:
            batch, finished = self._read(
                consumer, open_ranges, done, last_seen, began_ms, pseudonymiser, progress
            )
            return batch, (output.prepare(batch) if batch else None), finished

        try:
            with _few_collections():
                if open_ranges:
                    consumer.assign(
                        [TopicPartition(t, p, r.start) for (t, p), r in open_ranges.items()]
                    )
                while open_ranges:
                    batch, prepared, finished = await loop.run_in_executor(reader, read_and_prepare)
                    for key in finished:
                        if open_ranges.pop(key, None) is not None:
                            consumer.pause([TopicPartition(*key)])
                    if batch:
                        await settle()
                        storing = (asyncio.ensure_future(output.store(prepared)), dict(done))
                        begun += 1
                    if self.max_batches is not None and begun >= self.max_batches:
                        break
                await settle()
        finally:
            if storing is not None:
                # stopped or failed with a batch in flight: it is not checkpointed, so a resumed
                # replay reads it again (and the idempotent outputs make that harmless)
                storing[0].cancel()
                with contextlib.suppress(BaseException):
                    await storing[0]
            # a cancelled run may leave the reader inside the consumer: let it finish first
            reader.shutdown(wait=True)
            consumer.close()
        return progress

    def _read(
        self,
        consumer: Consumer,
        open_ranges: dict[tuple[str, int], Range],
        done: dict[str, int],
        last_seen: dict[tuple[str, int], float],
        began_ms: float,
        pseudonymiser: Pseudonymiser,
        progress: Progress,
    ) -> tuple[Batch, list[tuple[str, int]]]:
        """Consume and normalise the next batch; return it and the ranges it finished."""
        messages = consumer.consume(self.batch_size, 0.1)
        batch: Batch = []
        finished: list[tuple[str, int]] = []
        for message in messages:
            record = self._accept(message, open_ranges, began_ms)
            if record is None:
                continue
            key = (record.topic, record.partition)
            last_seen[key] = time.monotonic()
            done[f"{record.topic}:{record.partition}"] = record.offset + 1
            progress.records += 1
            batch.append((record, self._events(record, pseudonymiser, progress)))
            r = open_ranges[key]
            if r.exact and record.offset + 1 >= r.end:
                finished.append(key)
        now = time.monotonic()
        for key, r in open_ranges.items():
            position = done[f"{r.topic}:{r.partition}"]
            if not r.exact and position >= r.end and now - last_seen[key] > self.settle_s:
                finished.append(key)
        return batch, finished

    def _accept(
        self,
        message: Message,
        open_ranges: dict[tuple[str, int], Range],
        began_ms: float,
    ) -> InboundRecord | None:
        error = message.error()
        if error is not None:
            if error.code() == -191:  # _PARTITION_EOF: informational
                return None
            raise ReplayError(f"consumer error: {error}")
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            return None
        r = open_ranges.get((topic, partition))
        if r is None or offset < r.start:
            return None
        _, stamp = message.timestamp()
        if offset >= r.end and (r.exact or stamp > began_ms):
            # past the selection, or written after the replay started
            return None
        key = message.key()
        return InboundRecord(
            value=message.value() or b"",
            key=None if key is None else bytes(key),
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp=stamp / 1000.0,
            profile=_profile_header(message.headers()),
        )

    def _events(
        self, record: InboundRecord, pseudonymiser: Pseudonymiser, progress: Progress
    ) -> list[LearningEvent]:
        if not self.normalised:
            return []
        profiles = _compiled_profiles(self.profile_files, self.default_profile)
        profile = profiles.get(record.profile or self.default_profile)
        if profile is None:  # the live worker dead-lettered it too
            progress.invalid += 1
            return []
        try:
            events = normalise(record.value, pseudonymiser, profile=profile)
        except InvalidEvent:
            progress.invalid += 1
            return []
        kept = [e for e in events if self.selection.keeps(e)]
        progress.events += len(kept)
        return kept


def _profile_header(headers: Any) -> str:
    """Return the profile a record's producer named in its headers (``""``: none)."""
    for name, value in headers or ():
        if name == PROFILE_HEADER and value:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return ""


@functools.cache
def _compiled_profiles(files: tuple[str, ...], default: str) -> dict[str, CompiledProfile]:
    """Load and compile the profiles once per process (a pool's processes each do it)."""
    return compile_profiles(load_profiles(files, default))


@contextlib.contextmanager
def _few_collections(young: int = 200_000) -> Iterator[None]:
    """Collect cycles less often while a replay runs.

    A batch's events and rows live until it is stored, long enough to outlive the youngest
    generation: with the default thresholds they were promoted and rescanned, together with
    everything the process held before (a model, a cohort), in full collections that took a
    fifth of a rebuild's CPU. Objects that exist before the replay are frozen out of the
    collector for its duration, and the youngest generation is collected once ``young``
    more objects have been made than freed (more than a batch of the default size makes);
    the previous settings come back afterwards.
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(before[0], young), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def run_sync(replay: Replay, output: Output) -> Progress:
    """Run ``replay`` into ``output`` and close the output, from synchronous code."""

    async def go() -> Progress:
        try:
            return await replay.run(output)
        finally:
            await output.close()

    return asyncio.run(go())


def describe(ranges: Sequence[Range]) -> list[str]:
    """Lines for a dry run: partitions, offsets and message counts."""
    lines = [f"{'partition':<48} {'from':>10} {'to':>10} {'records':>10}"]
    for r in ranges:
        note = "" if r.exact else " (at least)"
        lines.append(f"{r.key:<48} {r.start:>10} {r.end:>10} {r.count:>10}{note}")
    lines.append(f"{'total':<48} {'':>10} {'':>10} {sum(r.count for r in ranges):>10}")
    return lines


@dataclass(slots=True)
class DlqCounts:
    """What a DLQ replay did with the dead letters it read.

    Attributes:
        matched: dead letters whose reason contains the text.
        passed: matched ones that now normalise; produced back to the events topic.
        kept: matched ones that still fail; they stay on the DLQ.
        other: dead letters with another reason (left alone).
        unreadable: records of the DLQ topic that are not dead letters.
    """

    matched: int = 0
    passed: int = 0
    kept: int = 0
    other: int = 0
    unreadable: int = 0


class DlqReplay(Output):
    """Re-normalise dead letters with the current code; produce the ones that pass.

    A passing record goes back to the events topic as it was first received, keyed by its
    learner's pseudonym and on that learner's partition, so the worker that holds the
    learner's state reads it without a forward. Replaying a dead letter twice is harmless:
    the pipeline drops an event id it has stored.

    Args:
        producer: a confluent-kafka producer (idempotent, ``acks=all``).
        target: the events topic.
        partitions: partitions of the events topic.
        reason: only dead letters whose ``error_reason`` contains this text.
        pseudonym_key: the live pipeline's pseudonym key.
        normaliser: the normaliser to apply (the current one unless a test swaps it).
    """

    def __init__(
        self,
        producer: Any,
        target: str,
        partitions: int,
        reason: str,
        pseudonym_key: bytes,
        normaliser: Callable[[bytes, Pseudonymiser], list[LearningEvent]] = normalise,
    ) -> None:
        self.producer = producer
        self.target = target
        self.partitions = partitions
        self.reason = reason
        self.pseudonymiser = pseudonymiser_for(pseudonym_key)
        self.normaliser = normaliser
        self.counts = DlqCounts()
        self._failures: list[str] = []

    async def write(self, batch: Batch) -> None:
        """Produce the passing records of the batch and wait until the broker has them all."""
        for record, _ in batch:
            try:
                letter = DeadLetter.model_validate_json(record.value)
            except ValueError:
                self.counts.unreadable += 1
                continue
            if self.reason not in letter.error_reason:
                self.counts.other += 1
                continue
            self.counts.matched += 1
            original = letter.original()
            try:
                events = self.normaliser(original, self.pseudonymiser)
            except InvalidEvent:
                self.counts.kept += 1
                continue
            if events:
                learner = events[0].learner_id
            else:
                # valid and unmodelled (an unknown verb dead-lettered by an older release):
                # it goes back to be stored and counted, on its learner's partition
                unmodelled: list[UnmodelledEvent] = []
                normalise(original, self.pseudonymiser, unmodelled=unmodelled)
                if not unmodelled:
                    self.counts.kept += 1
                    continue
                learner = unmodelled[0].learner_id
            self.producer.produce(
                self.target,
                key=learner.encode(),
                value=original,
                partition=partition_for(learner, self.partitions),
                on_delivery=self._delivered,
            )
            self.producer.poll(0)
            self.counts.passed += 1
        remaining = await asyncio.to_thread(self.producer.flush, 60.0)
        if remaining or self._failures:
            raise ReplayError(
                f"the broker did not take {remaining or len(self._failures)} records: "
                f"{self._failures[:3]}"
            )

    def _delivered(self, err: Any, _message: Any) -> None:
        if err is not None:
            self._failures.append(str(err))

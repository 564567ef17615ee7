"""Read a replay's ranges in batches, hand them to an output, checkpoint after each one.

Tansu reports a high watermark that is the last batch's base offset plus one, so records of
that last batch can lie past it: past the captured end a replay keeps reading only records
written before it started, until the partition is quiet for ``settle_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from schemas.events import LearningEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from schemas.profiles import BUILTIN_ID, PROFILE_HEADER, load_profiles
from schemas.profiles.compiled import CompiledProfile, compile_profiles
from schemas.pseudonym import Pseudonymiser
from streams.processor import InboundRecord
from streams.replay.checkpoint import Checkpoint, resume
from streams.replay.exceptions import ReplayError
from streams.replay.outputs import Batch, Output
from streams.replay.plan import Range, Selection, consumer_settings, plan


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


class _WarmUp(Output):
    """Runs an output's computing over batches already done, keeping only its state."""

    def __init__(self, output: Output) -> None:
        self.output = output

    def prepare(self, batch: Batch) -> Any:
        self.output.prepare(batch)
        return None

    async def store(self, prepared: Any) -> None:
        return None


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
            (a process of a :mod:`streams.replay.pool` rebuild); the run reads exactly these,
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

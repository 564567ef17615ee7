"""Rebuild (or rescore) in several processes, each holding a disjoint set of partitions.

A rebuild spends its time in Python (normalising, featurising, building the rows), so one
process is bound by one core. Learners' state lives on the partition their pseudonym hashes
to, and so do the item norms and catalogues keyed by partition: a set of partitions can be
rebuilt without the others. :func:`run_rebuild` plans the replay once, in the calling process
(the end offsets are captured there, the checkpoint is read there), deals the partitions out to
worker processes and hands each its ranges and the run's start time; each builds its own
model, sink and :class:`~streams.replay.rebuild.Rebuild` from a :class:`RebuildSpec` and
replays its ranges under the replay's consumer group, which nothing commits.

The workers report back: the offsets each has made durable, and its counts. The calling
process keeps the one checkpoint file, in the format a one-process replay keeps (next offset
and captured end per partition), so a stopped run resumes with any number of processes. It
prints the progress line, summed over the workers. A worker that fails ends the run with its
error, after the others are stopped; Ctrl-C or SIGTERM stops every worker the way Ctrl-C stops
a one-process replay (the batch in flight is dropped, not checkpointed), and a worker whose
parent dies stops the same way.

A worker is a fresh interpreter running this module (``python -m streams.replay.pool``): not a
fork, because the calling process has threads (librdkafka's, onnxruntime's) that a fork would
copy in whatever state they were in; and not multiprocessing's ``spawn``, which imports the
caller's main module again in every worker (the whole command line, a second or more each)
and fails in a script that does not guard its main code. The task goes to the worker pickled
on its stdin, whose end also tells it that its parent is gone; reports come back as pickled
frames on a pipe of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from streams.policy import InterventionPolicy, PolicySettings
from streams.replay.checkpoint import Checkpoint
from streams.replay.exceptions import ReplayError
from streams.replay.plan import Range
from streams.replay.reader import Progress, Replay
from streams.replay.rebuild import Rebuild
from streams.store.settings import StoreSettings
from streams.store.sink import StoreSink

STOP_GRACE_S = 30.0
"""How long a stopped worker gets to finish its cleanup before it is killed."""

_FRAME = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class RebuildSpec:
    """What a worker process needs to build its :class:`~streams.replay.rebuild.Rebuild`.

    Each worker loads the model and opens the sink itself: neither crosses a process boundary.

    Attributes:
        database_url: the store.
        store: the store's settings (its schema: the live one, or a rescore's shadow schema).
        partitions: partitions of the events topic (where learners' state lives).
        model_ref: the model, ``name@version``.
        registry_roots: extra model registry roots.
        policy: the intervention policy's settings.
        dedupe_window_s: how long an event id is remembered per learner.
        dedupe_max_ids: most ids remembered per learner.
    """

    database_url: str
    store: StoreSettings
    partitions: int
    model_ref: str | None = None
    registry_roots: tuple[str, ...] = ()
    policy: PolicySettings = field(default_factory=PolicySettings)
    dedupe_window_s: float = 3600.0
    dedupe_max_ids: int = 2048

    def build(self, owned: frozenset[int] | None = None) -> Rebuild:
        """Load the model and return a rebuild into the store, holding ``owned`` partitions."""
        from inference.registry import DEFAULT_MODEL
        from inference.runtime import LearnerModel

        model = LearnerModel.load(
            self.model_ref or DEFAULT_MODEL,
            registry_roots=[Path(root) for root in self.registry_roots],
            # one thread scores beside the featurising one (see Rebuild)
            intra_op_threads=1,
        )
        return Rebuild(
            model,
            StoreSink(self.database_url, self.store),
            InterventionPolicy(self.policy),
            self.partitions,
            dedupe_window_s=self.dedupe_window_s,
            dedupe_max_ids=self.dedupe_max_ids,
            owned=owned,
        )


def deal(ranges: Sequence[Range], processes: int) -> list[tuple[frozenset[int], list[Range]]]:
    """Deal the ranges out by partition number: each share holds every topic's ``p`` ranges.

    Partition numbers, not ``topic:partition`` pairs, are dealt, because a learner's state
    lives on the same partition number whichever topic the event came from. Shares are as many
    as ``processes``, or as the partitions when there are fewer; each is returned with its
    partition numbers.
    """
    numbers = sorted({r.partition for r in ranges})
    count = max(1, min(processes, len(numbers)))
    shares = [frozenset(numbers[i::count]) for i in range(count)]
    return [(share, [r for r in ranges if r.partition in share]) for share in shares]


@dataclass(slots=True)
class _Counts:
    records: int = 0
    events: int = 0
    invalid: int = 0
    batches: int = 0


@dataclass(frozen=True, slots=True)
class _Task:
    """What a worker is handed: its number, its share of the replay, what it rebuilds into."""

    index: int
    replay: Replay
    spec: RebuildSpec
    owned: frozenset[int]


class _Worker:
    """A worker process seen from its parent; a thread turns its reports into messages."""

    def __init__(self, task: _Task, messages: queue.Queue[tuple[Any, ...]]) -> None:
        self.index = task.index
        read_end, write_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.replay.pool", str(write_end)],
                stdin=subprocess.PIPE,
                pass_fds=(write_end,),
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self._reports = os.fdopen(read_end, "rb")
        stdin = self.process.stdin
        assert stdin is not None  # stdin=PIPE
        self.stdin: IO[bytes] = stdin
        self._reader = threading.Thread(
            target=self._read, args=(messages,), name=f"replay-worker-{task.index}", daemon=True
        )
        self._reader.start()
        with contextlib.suppress(BrokenPipeError):
            # a worker that died at once: its reports end without "done", which says so
            _write_frame(stdin, task)

    def _read(self, messages: queue.Queue[tuple[Any, ...]]) -> None:
        try:
            while (message := _read_frame(self._reports)) is not None:
                messages.put(message)
        finally:
            messages.put(("ended", self.index))

    def stop(self) -> None:
        """Ask the worker to stop (SIGTERM: it cancels its replay and closes its sink)."""
        if self.process.poll() is None:
            self.process.terminate()

    def close(self, timeout_s: float) -> None:
        """Wait for the worker to exit (killing it after ``timeout_s``) and release its pipes."""
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join()
        self._reports.close()
        self.stdin.close()


def run_rebuild(
    replay: Replay,
    spec: RebuildSpec,
    processes: int,
    *,
    join_timeout_s: float = STOP_GRACE_S,
) -> Progress:
    """Run ``replay`` into the rebuild ``spec`` describes, in ``processes`` worker processes.

    Args:
        replay: the replay (selection, consumer group, checkpoint, batch size, progress
            callback); ``max_batches`` applies to each worker.
        spec: what each worker rebuilds into.
        processes: how many workers; no more than the selection has partitions.
        join_timeout_s: how long a stopped worker may take to clean up before it is killed.

    Returns:
        The counts summed over the workers.

    Raises:
        ReplayError: when the selection cannot be planned, or a worker fails (with its error).
        KeyboardInterrupt: on Ctrl-C or SIGTERM, once every worker has stopped.
    """
    ranges, began_ms, _, before = replay.begin()
    progress = Progress(expected=sum(r.count for r in ranges))
    done = {r.key: r.start for r in ranges}
    replay.checkpoint.save(ranges, done, began_ms)
    shares = deal(ranges, processes)
    # a worker gets the plan, not the means to make one: no checkpoint, no callback
    tasks = [
        _Task(
            index,
            dataclasses.replace(
                replay,
                checkpoint=Checkpoint(None),
                on_progress=None,
                assigned=(share, began_ms),
                before=[r for r in before if r.partition in owned],
            ),
            spec,
            owned,
        )
        for index, (owned, share) in enumerate(shares)
    ]
    messages: queue.Queue[tuple[Any, ...]] = queue.Queue()
    counts = [_Counts() for _ in tasks]
    finished: set[int] = set()
    ended: set[int] = set()

    def receive(message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        if kind == "durable":
            done.update(message[2])
            replay.checkpoint.save(ranges, done, began_ms)
        elif kind == "ended":
            ended.add(index)
        elif kind in ("progress", "done"):
            counts[index] = _Counts(*message[2])
            progress.records = sum(c.records for c in counts)
            progress.events = sum(c.events for c in counts)
            progress.invalid = sum(c.invalid for c in counts)
            progress.batches = sum(c.batches for c in counts)
            if kind == "done":
                finished.add(index)
            if replay.on_progress is not None:
                replay.on_progress(progress)
        elif kind == "failed":
            partitions = ", ".join(str(p) for p in sorted(shares[index][0]))
            raise ReplayError(
                f"replay process {index} (partitions {partitions}) failed: {message[2]}"
            )

    workers: list[_Worker] = []
    with _stopped_by_sigterm():
        try:
            for task in tasks:
                workers.append(_Worker(task, messages))
            while len(finished) < len(workers):
                try:
                    receive(messages.get(timeout=1.0))
                except queue.Empty:
                    continue
                for index in ended - finished:
                    # its reports end with "done" or "failed"; anything else is a crash
                    code = workers[index].process.wait()
                    raise ReplayError(
                        f"replay process {index} ended without finishing (exit code {code})"
                    )
        finally:
            _stop(workers, messages, receive, finished, ended, join_timeout_s)
    return progress


def _stop(
    workers: Sequence[_Worker],
    messages: queue.Queue[tuple[Any, ...]],
    receive: Callable[[tuple[Any, ...]], None],
    finished: set[int],
    ended: set[int],
    join_timeout_s: float,
) -> None:
    """Stop the workers still running, keeping the durable offsets they report meanwhile."""
    for worker in workers:
        if worker.index not in finished:
            worker.stop()
    deadline = time.monotonic() + join_timeout_s
    while len(ended) < len(workers) and time.monotonic() < deadline:
        try:
            message = messages.get(timeout=0.1)
        except queue.Empty:
            continue
        if message[0] in ("durable", "ended"):
            receive(message)
    for worker in workers:
        worker.close(max(0.0, deadline - time.monotonic()))
    while not messages.empty():
        message = messages.get_nowait()
        if message[0] == "durable":
            receive(message)


@contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the workers run, so both stop them alike."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _write_frame(out: IO[bytes], message: object) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_FRAME.pack(len(body)) + body)
    out.flush()


def _read_frame(source: IO[bytes] | int) -> Any:
    """Return the next pickled message from a file or a descriptor; ``None`` at the end."""
    head = _read_exactly(source, _FRAME.size)
    if len(head) < _FRAME.size:
        return None
    body = _read_exactly(source, _FRAME.unpack(head)[0])
    return pickle.loads(body)  # trusted: a pipe between this package's own processes


def _read_exactly(source: IO[bytes] | int, size: int) -> bytes:
    if not isinstance(source, int):
        return source.read(size)
    # a descriptor: no buffered reader, whose lock a thread blocked in it holds at exit
    parts: list[bytes] = []
    while size and (part := os.read(source, size)):
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


class _Reports:
    """A worker's side of the report pipe; the event loop and the reader thread both send."""

    def __init__(self, out: IO[bytes], index: int) -> None:
        self.out = out
        self.index = index
        self._lock = threading.Lock()

    def send(self, kind: str, *body: object) -> None:
        with self._lock:
            _write_frame(self.out, (kind, self.index, *body))


class _Relay(Checkpoint):
    """A worker's checkpoint: the offsets it made durable go to the parent, which saves them."""

    def __init__(self, reports: _Reports) -> None:
        super().__init__(None)
        self.reports = reports

    def save(
        self, ranges: Iterable[Range], done: dict[str, int], began_ms: float, mark: int = 0
    ) -> None:
        """Send the next offsets of the worker's partitions (durable up to there)."""
        self.reports.send("durable", dict(done))


def _counts(progress: Progress) -> tuple[int, int, int, int]:
    return progress.records, progress.events, progress.invalid, progress.batches


def _serve(report_fd: int) -> int:
    """Body of a worker process: read the task, rebuild its ranges, report; the exit status."""
    # Ctrl-C reaches the whole process group: the parent alone decides, and stops the
    # workers with SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.fileno()
    task: _Task = _read_frame(stdin)
    reports = _Reports(os.fdopen(report_fd, "wb"), task.index)
    _stop_with_parent(stdin)
    try:
        output = task.spec.build(task.owned)
        replay = dataclasses.replace(
            task.replay,
            checkpoint=_Relay(reports),
            on_progress=lambda p: reports.send("progress", _counts(p)),
        )
        progress = asyncio.run(_rebuild(replay, output))
    except asyncio.CancelledError:
        return 0  # stopped: the parent asked, and knows
    except Exception as err:  # every error ends the run, with its text
        if not isinstance(err, ReplayError):
            traceback.print_exc()
        reports.send("failed", f"{type(err).__name__}: {err}")
        return 1
    reports.send("done", _counts(progress))
    return 0


async def _rebuild(replay: Replay, output: Rebuild) -> Progress:
    task = asyncio.current_task()
    assert task is not None  # called by asyncio.run
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await replay.run(output)
    finally:
        await output.close()


def _stop_with_parent(stdin: int) -> None:
    """Stop this worker (as SIGTERM does) once its parent closes stdin or dies."""

    def watch() -> None:
        while os.read(stdin, 4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="replay-parent-watch", daemon=True).start()


if __name__ == "__main__":
    # run the module under its own name, the one the pickled task refers to, not twice
    from streams.replay.pool import _serve as serve

    sys.exit(serve(int(sys.argv[1])))

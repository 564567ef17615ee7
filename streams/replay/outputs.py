"""Where a replay's events go: the output interface and the exports (JSON lines, Parquet).

Exports write normalised events, pseudonyms only. The other outputs are
:class:`~streams.replay.rebuild.Rebuild` and :class:`~streams.replay.dlq.DlqReplay`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from schemas.events import LearningEvent
from streams.processor import InboundRecord
from streams.replay.exceptions import ReplayError

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

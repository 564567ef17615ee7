"""Table state held between snapshots, and when the next snapshot is due.

Writing every learner a batch touched to the table's changelog, batch after batch, was most of
what the worker sent (one ~9 KB record per touched learner per batch: more bytes than all the
events it read). Batches now leave their changes here; a snapshot writes each key changed since
the last one once, waits for the broker to confirm them, and only then acks the records those
batches took. A committed offset never runs ahead of the changelog, so a replacement of a
killed worker recovers the state of the last snapshot with the commit that matches it and
takes the records since again (the store's writes are idempotent: nothing is stored twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


class HeldWrites:
    """Table values batches wrote since the last snapshot: ``key -> (value, partition)``.

    One mapping per table; reads look here before the table, so a batch sees what the batches
    before it wrote. ``partition`` is the changelog partition a value goes to: that of the
    record that last changed the key, which is the partition that owns it.
    """

    def __init__(self, tables: int) -> None:
        self._held: list[dict[str, tuple[bytes, int]]] = [{} for _ in range(tables)]

    def __len__(self) -> int:
        return sum(len(held) for held in self._held)

    def get(self, table: int, key: str) -> bytes | None:
        """Return the value held for ``key``, or ``None`` when the table has the latest."""
        found = self._held[table].get(key)
        return None if found is None else found[0]

    def put(self, table: int, key: str, value: bytes, partition: int) -> None:
        """Hold ``value`` for ``key`` until the next snapshot."""
        self._held[table][key] = (value, partition)

    def take(self, owned: Callable[[int], bool]) -> list[list[tuple[str, bytes, int]]]:
        """Return every held value, per table, and forget them.

        Values of partitions ``owned`` says this worker no longer holds are dropped: their new
        owner takes the records since the last snapshot again, from the commit.
        """
        taken = [
            [(key, value, where) for key, (value, where) in held.items() if owned(where)]
            for held in self._held
        ]
        for held in self._held:
            held.clear()
        return taken

    def clear(self) -> None:
        """Forget every held value (the partitions were revoked: see the worker)."""
        for held in self._held:
            held.clear()


def last_alone(
    values: Sequence[tuple[str, bytes, int]],
) -> tuple[list[tuple[str, bytes, int]], list[tuple[str, bytes, int]]]:
    """Split a table's snapshot into what is sent first and each partition's last record.

    The embedded broker (Tansu) reports a partition's end as its last record batch's first
    offset plus one, and Faust's table recovery reads a changelog only to that end: records
    of a snapshot sent together, one batch per partition, were invisible to a replacement
    past each batch's first, which then took its learners up from the state before (or from
    nothing) while the commit was past the records that state lacked. Sent alone once the
    rest is confirmed, each partition's last record is a batch of its own, so the end the
    broker reports is the true end. Apache Kafka needs none of this, and loses nothing by it.

    Returns:
        ``(first, last)``: every value but each partition's last, and those last ones.
    """
    last: dict[int, tuple[str, bytes, int]] = {}
    first: list[tuple[str, bytes, int]] = []
    for entry in values:
        before = last.get(entry[2])
        if before is not None:
            first.append(before)
        last[entry[2]] = entry
    return first, list(last.values())


class SnapshotClock:
    """Says when a snapshot is due: ``interval_s`` after the last, or ``most`` records on.

    Args:
        interval_s: longest time a processed record waits for its snapshot (0: every batch).
        most: most records processed between two snapshots, which bounds what a replacement
            worker takes again after a kill.
    """

    def __init__(self, interval_s: float, most: int) -> None:
        self.interval_s = interval_s
        self.most = most
        self.records = 0
        self._last = time.monotonic()

    def add(self, records: int) -> None:
        """Count ``records`` processed and not yet covered by a snapshot."""
        self.records += records

    def due(self) -> bool:
        """Whether processed records wait and the interval or the count has been reached."""
        return self.records > 0 and (
            self.records >= self.most or time.monotonic() - self._last >= self.interval_s
        )

    def wait_s(self) -> float | None:
        """Seconds until a snapshot is due with no more records (``None``: none waits)."""
        if self.records == 0:
            return None
        return max(0.0, self._last + self.interval_s - time.monotonic())

    def taken(self) -> None:
        """Start the interval again: everything processed so far is covered."""
        self.records = 0
        self._last = time.monotonic()

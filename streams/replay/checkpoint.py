"""Where a replay stands: the next offset and the captured end per partition, kept on disk.

A checkpoint file is written only after a batch's output is durable, so a replay stopped at
any point (Ctrl-C) resumes without losing or repeating output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from streams.replay.exceptions import ReplayError
from streams.replay.plan import Range


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

"""What every benchmark does with its figures: a ratio to its baseline, a table, a JSON file."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Echo = Callable[[str], object]


def ratio(measured: float, baseline: float) -> float:
    """Return ``measured`` over the baseline measured in the same run (0.0 without a baseline).

    Args:
        measured: the benchmark's figure (a rate, or a time where lower is better).
        baseline: the same figure for the baseline; zero or below means it was not measured.
    """
    return measured / baseline if baseline > 0 else 0.0


def align(rows: Sequence[Sequence[str]]) -> list[str]:
    """Return ``rows`` (the first the header) as left-aligned columns, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def write_json(report: dict[str, Any], path: Path) -> Path:
    """Write ``report`` as indented JSON (parent folders created); return ``path``.

    Values JSON has no type for (datetimes, paths) are written as their text.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", "utf-8")
    return path


def publish(table: str, report: dict[str, Any], out: Path, echo: Echo) -> Path:
    """Print the table, write the report to ``out`` and say where it went; return ``out``."""
    echo(table)
    written = write_json(report, out)
    echo(f"wrote {written}")
    return written

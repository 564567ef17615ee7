from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.events import LearningEvent
from schemas.normalise import normalise, pseudonymiser_for
from streams.processor import InboundRecord
from streams.replay.exceptions import ReplayError
from streams.replay.outputs import Batch, ParquetExport, event_arrow_schema
from tutorstream.cohort import generate_cohort

pytestmark = pytest.mark.unit

KEY = b"parquet-unit-key"


def _batch(events: int, seed: int) -> Batch:
    pseudonymise = pseudonymiser_for(KEY)
    batch: Batch = []
    cohort = generate_cohort(4, events, seed, start=datetime(2026, 3, 2, 9, tzinfo=UTC))
    for offset, raw in enumerate(cohort):
        value = orjson.dumps(raw)
        record = InboundRecord(value, None, "t", 0, offset, 0.0)
        batch.append((record, normalise(value, pseudonymise)))
    return batch


def _read(path: Path) -> list[LearningEvent]:
    return [LearningEvent.model_validate(row) for row in pq.read_table(path).to_pylist()]


def test_parquet_parts_hold_the_events_with_a_typed_schema(tmp_path: Path) -> None:
    batch = _batch(120, seed=1)
    export = ParquetExport(tmp_path / "out", row_group_rows=50)

    asyncio.run(export.write(batch))
    asyncio.run(export.write([]))  # a batch the filters emptied makes no part

    parts = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in parts] == ["part-000000.parquet"]
    meta = pq.ParquetFile(parts[0]).metadata
    assert (meta.num_rows, meta.num_row_groups) == (120, 3)
    schema = pq.read_schema(parts[0])
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_dictionary(schema.field("event_type").type)
    assert schema.field("skill_ids").type == pa.list_(pa.string())
    assert _read(tmp_path / "out") == [e for _, events in batch for e in events]
    assert export.mark() == 1


def test_restore_drops_parts_written_after_the_mark(tmp_path: Path) -> None:
    export = ParquetExport(tmp_path)
    batches = [_batch(30, seed=s) for s in (1, 2, 3)]
    for batch in batches:
        asyncio.run(export.write(batch))
    (tmp_path / "part-000003.parquet.tmp").write_bytes(b"cut off")

    again = ParquetExport(tmp_path)  # a resumed run opens the same directory
    assert again.mark() == 3
    again.restore(1)
    asyncio.run(again.write(batches[2]))

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "part-000000.parquet",
        "part-000001.parquet",
    ]
    expected = [e for batch in (batches[0], batches[2]) for _, events in batch for e in events]
    assert _read(tmp_path) == expected


def test_a_file_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "events.parquet"
    target.write_bytes(b"")
    with pytest.raises(ReplayError, match="directory of parts"):
        ParquetExport(target)


def test_missing_pyarrow_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ReplayError, match=r"pip install 'tutorstream\[parquet\]'"):
        ParquetExport(tmp_path)
    with pytest.raises(ReplayError, match="needs pyarrow"):
        event_arrow_schema()

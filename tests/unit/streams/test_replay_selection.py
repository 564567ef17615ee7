from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.replay.checkpoint import Checkpoint, resume
from streams.replay.exceptions import ReplayError
from streams.replay.outputs import JsonlExport
from streams.replay.plan import Bound, Range
from streams.replay.reader import Progress

pytestmark = pytest.mark.unit


def test_bounds_parse_offsets_pairs_and_timestamps() -> None:
    assert Bound.parse("42") == Bound(offset=42)
    assert Bound.parse("0:10,2:7") == Bound(offsets={0: 10, 2: 7})
    assert Bound.parse("2026-01-01T00:30:00Z") == Bound(
        moment=datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    )


@pytest.mark.parametrize("text", ["yesterday", "0:1,", "2026-01-01T00:30:00", "-3"])
def test_bad_bounds_are_one_clear_error(text: str) -> None:
    with pytest.raises(ReplayError, match=repr(text)):
        Bound.parse(text)


def test_checkpoint_round_trip_and_resume(tmp_path: Path) -> None:
    ranges = [Range("t", 0, 0, 100, False), Range("t", 1, 5, 50, True)]
    checkpoint = Checkpoint(tmp_path / "cp.json")
    checkpoint.save(ranges, {"t:0": 40}, 1234.0, 77)

    saved = checkpoint.load()

    assert saved is not None
    # the ends captured by the first run win over fresh watermarks
    fresh = [Range("t", 0, 0, 130, False), Range("t", 1, 5, 80, False)]
    resumed = resume(fresh, saved[0])
    assert [(r.start, r.end, r.exact) for r in resumed] == [(40, 100, False), (5, 50, True)]
    assert saved[1:] == (1234.0, 77)
    with pytest.raises(ReplayError, match="another selection"):
        resume([Range("u", 0, 0, 1, False)], saved[0])


def test_progress_has_no_eta_past_the_announced_count() -> None:
    progress = Progress(records=50, expected=10, started=0.0)
    assert progress.eta_s is None
    assert progress.line().startswith("50 records (10 announced by the watermarks;")
    assert "%" not in progress.line() and "ETA" not in progress.line()
    halfway = Progress(records=5, expected=10, started=time.monotonic() - 1.0)
    assert halfway.line().startswith("5/10 records (50%)")
    assert re.search(r", ETA [0-9]+s$", halfway.line())


def test_an_export_cut_off_mid_batch_is_cut_back_to_its_last_durable_batch(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    export = JsonlExport(path)
    export._file.write(b'{"event_id": "a"}\n')
    mark = export.mark()
    export._file.write(b'{"event_id": "b"}\n{"event_')
    export._file.flush()

    export.restore(mark)
    export._file.write(b'{"event_id": "c"}\n')
    export._file.close()

    assert path.read_bytes() == b'{"event_id": "a"}\n{"event_id": "c"}\n'


def test_a_class_filter_takes_an_iri_class_id() -> None:
    from schemas.events import EventType, LearningEvent, SourceFormat
    from streams.replay.plan import Selection

    section = "https://lms.example.edu/course/9/section/2?term=2026"

    def event(class_id: str) -> LearningEvent:
        return LearningEvent(
            event_id=f"e-{class_id}",
            learner_id="l1",
            class_id=class_id,
            event_type=EventType.PROBLEM_START,
            timestamp=datetime(2026, 3, 2, 9, tzinfo=UTC),
            source=SourceFormat.XAPI,
        )

    selection = Selection(topics=("lms.events.v1",), class_id=section)
    assert selection.keeps(event(section))
    assert not selection.keeps(event("https://lms.example.edu/course/9/section/2"))

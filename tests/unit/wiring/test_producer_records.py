from __future__ import annotations

import hashlib
import io
import random

import orjson
import pytest

from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise
from schemas.pseudonym import Pseudonymiser
from tutorstream.bench.records import caliper_envelope, native_event, xapi_statement
from tutorstream.producer import (
    ProduceReport,
    ProgressLine,
    learner_key,
    records_from_events,
    records_from_lines,
)

pytestmark = pytest.mark.unit

KEY = b"unit-test-pseudonym-key-0123456789abcdef"


def test_lines_keep_their_bytes_and_blank_lines_are_skipped() -> None:
    rng = random.Random(1)
    native = orjson.dumps(native_event(rng, 0))
    envelope = orjson.dumps(caliper_envelope(rng, 1))

    records = list(records_from_lines([native + b"\n", b"   \n", envelope], "f.jsonl"))

    assert [(r.origin, r.value) for r in records] == [
        ("f.jsonl:1", native),
        ("f.jsonl:3", envelope),
    ]
    assert all(r.error is None for r in records)


def test_batches_become_one_record_per_learner_event() -> None:
    rng = random.Random(2)
    statements = [xapi_statement(rng, i) for i in range(3)]
    envelope = caliper_envelope(rng, 3)
    envelope["data"].append(caliper_envelope(rng, 4)["data"][0])

    records = list(records_from_lines([orjson.dumps(statements), orjson.dumps(envelope)], "f"))

    assert [r.origin for r in records] == ["f:1[0]", "f:1[1]", "f:1[2]", "f:2[0]", "f:2[1]"]
    assert [orjson.loads(r.value) for r in records[:3]] == statements
    for record, event in zip(records[3:], envelope["data"], strict=True):
        assert orjson.loads(record.value) == {**envelope, "data": [event]}


def test_an_unreadable_line_carries_its_error_and_gets_no_key() -> None:
    (record,) = records_from_lines([b'{"actor": '], "f.jsonl")

    assert record.error is not None and "not valid JSON" in record.error.reason
    with pytest.raises(InvalidEvent):
        learner_key(record, Pseudonymiser(KEY))


def test_the_key_is_the_pseudonym_the_normaliser_gives_the_learner() -> None:
    rng = random.Random(3)
    pseudonymiser = Pseudonymiser(KEY)
    events = [xapi_statement(rng, 0), caliper_envelope(rng, 1), native_event(rng, 2)]

    for record, event in zip(records_from_events(events, "x"), events, strict=True):
        assert learner_key(record, pseudonymiser).decode() == normalise(event, KEY)[0].learner_id


def test_one_learner_named_by_mbox_or_by_its_sha1_gets_one_key() -> None:
    rng = random.Random(4)
    by_mbox = xapi_statement(rng, 0)
    by_mbox["actor"] = {"mbox": "mailto:ada@School.example.edu"}
    # xAPI: mbox_sha1sum is the SHA-1 of the mailto IRI, domain in lower case.
    sha1 = hashlib.sha1(b"mailto:ada@school.example.edu").hexdigest()
    by_sha1 = {**by_mbox, "actor": {"mbox_sha1sum": sha1}}
    pseudonymiser = Pseudonymiser(KEY)

    keys = {learner_key(r, pseudonymiser) for r in records_from_events([by_mbox, by_sha1], "x")}

    assert len(keys) == 1
    assert b"ada" not in next(iter(keys))


def test_the_report_counts_failures_and_keeps_the_first_ones() -> None:
    report = ProduceReport(sent=10, delivered=9, invalid=30, delivery_failed=1, elapsed_s=2.0)
    for n in range(40):
        report.note_failure(f"f:{n}: bad")

    assert report.failed == 31
    assert len(report.failures) == 20 and report.failures[0] == "f:0: bad"
    assert report.summary().startswith(
        "sent 10, delivered 9, failed 31 (invalid 30, undelivered 1)"
    )


def test_progress_shows_rate_and_eta_then_a_final_line() -> None:
    stream = io.StringIO()
    progress = ProgressLine(total=100, stream=stream, every_s=0.0)
    report = ProduceReport(sent=40, delivered=35)

    progress.update(report)
    report.sent = report.delivered = 100
    progress.update(report, final=True)
    first, last = stream.getvalue().splitlines()

    assert first.startswith("produce: 40/100 (40.0%)") and "records/s" in first and "ETA" in first
    assert last.startswith("produce: 100/100 (100.0%)") and "delivered 100, failed 0" in last

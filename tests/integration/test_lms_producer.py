from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from schemas.normalise import normalise
from schemas.pseudonym import Pseudonymiser
from schemas.topics import LMS_EVENTS
from tutorstream.bench.records import caliper_envelope, native_event, xapi_statement
from tutorstream.cohort import generate_cohort
from tutorstream.producer import (
    OutgoingRecord,
    produce_records,
    records_from_events,
    records_from_lines,
)

pytestmark = pytest.mark.integration

KEY = b"integration-test-pseudonym-key-0123456789"


def test_a_produced_cohort_arrives_once_keyed_by_pseudonym_one_partition_per_learner(
    kafka_bootstrap: str, topic_factory, read_topic
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS)
    events = list(generate_cohort(learners=40, events=3000, seed=11))

    report = produce_records(
        records_from_events(events, "cohort"), bootstrap=kafka_bootstrap, topic=topic, key=KEY
    )
    records = read_topic(topic, len(events))

    assert (report.sent, report.delivered, report.failed) == (3000, 3000, 0)
    values = [orjson.loads(r.value()) for r in records]
    assert sorted(v["event_id"] for v in values) == sorted(e["event_id"] for e in events)
    pseudonyms = Pseudonymiser(KEY)
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    sequence_of: dict[bytes, list[int]] = defaultdict(list)
    for record, value in zip(records, values, strict=True):
        assert record.key() == pseudonyms.native_learner(value["learner_id"]).encode()
        assert value["learner_id"].encode() not in record.key()
        partitions_of[record.key()].add(record.partition())
        sequence_of[record.key()].append(int(value["event_id"].rsplit("-", 1)[1]))
    assert len(partitions_of) == len({e["learner_id"] for e in events}) > 1
    assert all(len(p) == 1 for p in partitions_of.values())
    assert len(set().union(*partitions_of.values())) > 1
    # A learner's events stay in the order they were produced.
    assert all(seq == sorted(seq) for seq in sequence_of.values())


def _mixed_file(path: Path) -> tuple[list[bytes], list[int]]:
    """Write a JSONL file of every format; return the expected records and the bad lines."""
    rng = random.Random(5)
    lines: list[bytes] = []
    expected: list[bytes] = []
    bad_lines: list[int] = []
    for i in range(300):
        kind = i % 3
        record = (
            xapi_statement(rng, i)
            if kind == 0
            else caliper_envelope(rng, i)
            if kind == 1
            else native_event(rng, i)
        )
        lines.append(orjson.dumps(record))
        expected.append(orjson.dumps(record))
    batch = [xapi_statement(rng, 1000), xapi_statement(rng, 1001)]
    lines.append(orjson.dumps(batch))
    expected += [orjson.dumps(statement) for statement in batch]
    envelope = caliper_envelope(rng, 1002)
    envelope["data"].append(caliper_envelope(rng, 1003)["data"][0])
    lines.append(orjson.dumps(envelope))
    expected += [orjson.dumps({**envelope, "data": [event]}) for event in envelope["data"]]
    lines.append(b'{"verb": {"id": "http://adlnet.gov/expapi/verbs/answered"')
    bad_lines.append(len(lines))
    no_actor = xapi_statement(rng, 1004)
    del no_actor["actor"]
    lines.append(orjson.dumps(no_actor))
    bad_lines.append(len(lines))
    lines.append(b"")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return expected, bad_lines


def test_cli_sends_a_mixed_file_keyed_by_learner_and_refuses_bad_lines(
    kafka_bootstrap: str, topic_factory, read_topic, run_cli, tmp_path: Path
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS)
    source = tmp_path / "events.jsonl"
    expected, bad_lines = _mixed_file(source)

    result = run_cli(
        "produce",
        str(source),
        "--topic",
        topic,
        env={"TUTORSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap, "TUTORSTREAM_PSEUDONYM_KEY": "k" * 40},
    )
    records = read_topic(topic, len(expected))

    assert result.returncode == 1
    assert f"sent {len(expected)}, delivered {len(expected)}, failed 2" in result.stdout
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert [f.split()[1] for f in failures] == [f"events.jsonl:{n}:" for n in bad_lines]
    assert "not valid JSON" in failures[0]
    assert "actor" in failures[1]
    assert "records/s" in result.stderr and "ETA" in result.stderr
    assert sorted(r.value() for r in records) == sorted(expected)
    for record in records:
        assert record.key() == normalise(record.value(), b"k" * 40)[0].learner_id.encode()
        assert b"@" not in record.key()


def test_send_invalid_sends_records_that_fail_validation_without_a_key(
    kafka_bootstrap: str, topic_factory, read_topic
) -> None:
    topic = topic_factory("dlq-feed")
    good = next(generate_cohort(learners=1, events=1, seed=3))
    lines = [orjson.dumps(good), b'{"learner_id": 7}', b"[]"]
    records: list[OutgoingRecord] = list(records_from_lines(lines, "feed"))

    report = produce_records(
        records, bootstrap=kafka_bootstrap, topic=topic, key=KEY, send_invalid=True
    )
    received = {r.value(): r.key() for r in read_topic(topic, 3)}

    assert (report.sent, report.delivered, report.invalid) == (3, 3, 0)
    assert received == {
        orjson.dumps(good): Pseudonymiser(KEY).native_learner(good["learner_id"]).encode(),
        b'{"learner_id": 7}': None,
        b"[]": None,
    }


def test_cli_sends_a_generated_class_at_a_target_rate(
    kafka_bootstrap: str, topic_factory, read_topic, run_cli
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS)

    result = run_cli(
        "produce",
        "--cohort",
        "--learners",
        "12",
        "--events",
        "400",
        "--rate",
        "2000",
        "--compression",
        "none",
        "--topic",
        topic,
        env={"TUTORSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap, "TUTORSTREAM_PSEUDONYM_KEY": "c" * 40},
    )
    records = read_topic(topic, 400)

    assert result.returncode == 0, result.stderr
    assert "sent 400, delivered 400, failed 0" in result.stdout
    assert "400/400 (100.0%)" in result.stderr
    # The command's default seed is 7: the same class, so the same learners.
    learners = {e["learner_id"] for e in generate_cohort(learners=12, events=400, seed=7)}
    assert {r.key() for r in records} == {
        Pseudonymiser(b"c" * 40).native_learner(learner).encode() for learner in learners
    }


def test_cli_refuses_a_topic_that_does_not_exist(kafka_bootstrap: str, run_cli) -> None:
    result = run_cli(
        "produce",
        "--cohort",
        "--topic",
        "no.such.topic.v1",
        env={"TUTORSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap},
    )

    assert result.returncode == 1
    assert "tutorstream topics create" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_keeps_only_a_generated_class_working_at_a_pace(run_cli, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text("{}\n")

    result = run_cli("produce", str(source), "--pace", "5")

    assert result.returncode == 2
    assert "--pace keeps a generated class working: give it with --cohort" in result.stderr

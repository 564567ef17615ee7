"""DLQ replay after a normaliser fix, and `tutorstream dlq replay --reason` end to end."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from common.kafka import producer_config
from schemas.events import LearningEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from schemas.pseudonym import Pseudonymiser
from schemas.records import DeadLetter
from schemas.topics import LMS_EVENTS, LMS_EVENTS_DLQ
from streams.replay.dlq import DlqReplay
from streams.replay.plan import Selection
from streams.replay.reader import Replay, run_sync
from tutorstream import kafka
from tutorstream.cohort import generate_cohort

pytestmark = pytest.mark.integration

KEY = b"dlq-replay-key"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ALIAS = "answer.submitted"  # what one LMS sends; the fix below maps it


def _dead_letter(original: bytes, offset: int) -> bytes:
    """The dead letter the worker writes for ``original``: the current normaliser's error."""
    try:
        normalise(original, pseudonymiser_for(KEY))
    except InvalidEvent as error:
        letter = DeadLetter.from_error(
            original, error, topic=LMS_EVENTS.name, partition=0, offset=offset, failed_at=START
        )
        return letter.model_dump_json().encode()
    raise AssertionError(f"{original!r} normalises today; it would not be on the DLQ")


def _fixed_normaliser(value: bytes, pseudonymiser: Pseudonymiser) -> list[LearningEvent]:
    body = orjson.loads(value)
    if isinstance(body, dict) and body.get("event_type") == ALIAS:
        body["event_type"] = "answer_submit"
    return normalise(orjson.dumps(body), pseudonymiser)


def _variant(event: dict[str, Any], **changes: Any) -> bytes:
    return orjson.dumps({**event, **changes})


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer(producer_config(bootstrap))
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0


def test_after_a_normaliser_fix_the_fixed_pass_and_the_others_stay(
    kafka_bootstrap: str, topic_factory: Any, read_topic: Any
) -> None:
    dlq = topic_factory("dlq", spec=LMS_EVENTS_DLQ)
    events_topic = topic_factory("events", spec=LMS_EVENTS)
    cohort = list(generate_cohort(4, 12, 23, start=START))
    aliased = [_variant(e, event_type=ALIAS) for e in cohort[:5]]
    misspelt = [_variant(e, event_type="answer.submited") for e in cohort[5:8]]
    late = [_variant(e, timestamp="not a time") for e in cohort[8:10]]
    originals = aliased + misspelt + late
    _produce(kafka_bootstrap, dlq, [_dead_letter(v, i) for i, v in enumerate(originals)])
    reason = "Input should be 'problem_start'"  # the enum error of event_type
    output = DlqReplay(
        Producer(producer_config(kafka_bootstrap)),
        events_topic,
        LMS_EVENTS.partitions,
        reason,
        KEY,
        normaliser=_fixed_normaliser,
    )
    replay = Replay(
        bootstrap=kafka_bootstrap,
        selection=Selection(topics=(dlq,)),
        pseudonym_key=KEY,
        replay_id=uuid.uuid4().hex[:8],
        normalised=False,
    )

    run_sync(replay, output)

    counts = output.counts
    assert (counts.matched, counts.passed, counts.kept, counts.other) == (8, 5, 3, 2)
    sent = read_topic(events_topic, len(aliased))
    assert sorted(m.value() for m in sent) == sorted(aliased)
    fixed = [e for m in sent for e in _fixed_normaliser(m.value(), pseudonymiser_for(KEY))]
    assert {e.event_id for e in fixed} == {str(e["event_id"]) for e in cohort[:5]}
    # the DLQ itself is unchanged: the ones that still fail are still there
    assert len(read_topic(dlq, len(originals))) == len(originals)


def test_cli_dlq_replay_with_reason_under_the_topic_prefix(
    kafka_bootstrap: str, read_topic: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tutorstream.cli import app

    prefix = f"dlq{uuid.uuid4().hex[:6]}."
    specs = [dataclasses.replace(s, name=prefix + s.name) for s in (LMS_EVENTS, LMS_EVENTS_DLQ)]
    kafka.create_topics(kafka_bootstrap, specs)
    try:
        cohort = list(generate_cohort(3, 6, 29, start=START))
        # dead-lettered by an older normaliser; the current one takes them
        passing = [orjson.dumps(e) for e in cohort[:4]]
        error = InvalidEvent("verb", "unknown verb: https://lms.example/verbs/pondered", "xapi")
        still_failing = [_variant(e, event_type=ALIAS) for e in cohort[4:6]]
        letters = [
            DeadLetter.from_error(
                v, error, topic=LMS_EVENTS.name, partition=0, offset=i, failed_at=START
            )
            .model_dump_json()
            .encode()
            for i, v in enumerate(passing)
        ]
        letters += [_dead_letter(v, 10 + i) for i, v in enumerate(still_failing)]
        _produce(kafka_bootstrap, specs[1].name, letters)
        monkeypatch.setenv("TUTORSTREAM_KAFKA_BOOTSTRAP", kafka_bootstrap)
        monkeypatch.setenv("TUTORSTREAM_TOPIC_PREFIX", prefix)
        monkeypatch.setenv("TUTORSTREAM_PSEUDONYM_KEY", KEY.decode())
        runner = CliRunner()

        dry = runner.invoke(app, ["dlq", "replay", "--reason", "unknown verb", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert f"{specs[1].name}:0" in dry.output

        done = runner.invoke(app, ["dlq", "replay", "--reason", "unknown verb"])

        assert done.exit_code == 0, done.output
        assert "read 6 dead letters: 4 matched 'unknown verb', 4 passed" in done.output
        assert "0 still fail" in done.output
        assert "2 other reasons" in done.output
        sent = read_topic(specs[0].name, len(passing))
        assert sorted(m.value() for m in sent) == sorted(passing)

        again = runner.invoke(app, ["dlq", "replay", "--reason", "Input should be"])
        assert again.exit_code == 0, again.output
        assert "2 matched 'Input should be', 0 passed" in again.output
        assert "2 still fail and stay on the DLQ" in again.output
        read_topic(specs[0].name, len(passing))  # nothing more was sent
    finally:
        kafka.delete_topics(kafka_bootstrap, [s.name for s in specs])

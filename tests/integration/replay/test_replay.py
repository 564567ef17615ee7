"""Replays against the real broker and PostgreSQL: export, resume, timestamps, rebuild."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow.parquet
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from psycopg import sql

from common.kafka import consumer_config, producer_config
from common.partitioning import partition_for
from inference.runtime import LearnerModel
from schemas.exceptions import InvalidEvent
from schemas.normalise import pseudonymiser_for
from schemas.records import DeadLetter
from schemas.topics import LMS_EVENTS, LMS_EVENTS_DLQ
from streams.replay.checkpoint import Checkpoint
from streams.replay.dlq import DlqReplay
from streams.replay.outputs import JsonlExport
from streams.replay.plan import Bound, Selection
from streams.replay.pool import RebuildSpec
from streams.replay.reader import Replay, run_sync
from streams.replay.rebuild import Rebuild, shadow_schema
from streams.store import StoreSettings, migrate
from tests.integration.replay.snapshots import snapshot
from tutorstream import kafka
from tutorstream.cli.topics_inspect import inspect_topic
from tutorstream.cohort import generate_cohort

pytestmark = pytest.mark.integration

KEY = b"replay-test-key"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _cohort(events: int, seed: int = 7) -> list[dict[str, Any]]:
    return list(generate_cohort(6, events, seed, start=START))


def _produce(
    bootstrap: str, topic: str, events: list[dict[str, Any]], timestamp_ms: int | None = None
) -> None:
    producer = Producer(producer_config(bootstrap))
    for event in events:
        key, value = str(event["learner_id"]).encode(), orjson.dumps(event)
        if timestamp_ms is None:
            producer.produce(topic, key=key, value=value)
        else:
            producer.produce(topic, key=key, value=value, timestamp=timestamp_ms)
        producer.poll(0)
    assert producer.flush(60) == 0


def _replay(bootstrap: str, topic: str, **options: Any) -> Replay:
    selection = options.pop("selection", Selection(topics=(topic,)))
    return Replay(
        bootstrap=bootstrap,
        selection=selection,
        pseudonym_key=KEY,
        replay_id=uuid.uuid4().hex[:8],
        **options,
    )


def _rebuild(url: str, schema: str) -> Rebuild:
    """A rebuild into ``schema`` as `tutorstream replay run --mode rebuild` makes one."""
    return RebuildSpec(url, StoreSettings(db_schema=schema), LMS_EVENTS.partitions).build()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_export_equals_the_produced_cohort_with_pseudonyms_only(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS, partitions=3)
    cohort = _cohort(300)
    _produce(kafka_bootstrap, topic, cohort)
    out = tmp_path / "events.jsonl"

    progress = run_sync(_replay(kafka_bootstrap, topic), JsonlExport(out))

    exported = _lines(out)
    assert progress.records == len(cohort) == len(exported)
    assert progress.invalid == 0
    assert sorted(e["event_id"] for e in exported) == sorted(str(e["event_id"]) for e in cohort)
    pseudonymise = pseudonymiser_for(KEY)
    raw_ids = {str(e["learner_id"]) for e in cohort}
    assert {e["learner_id"] for e in exported} == {pseudonymise.native_learner(r) for r in raw_ids}
    text = out.read_text()
    assert not any(f'"{raw}"' in text for raw in raw_ids)


def test_interrupted_export_resumes_without_duplicates_or_gaps(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS, partitions=3)
    cohort = _cohort(400, seed=11)
    _produce(kafka_bootstrap, topic, cohort)
    out = tmp_path / "events.jsonl"
    checkpoint = Checkpoint(tmp_path / "replay.checkpoint")

    first = run_sync(
        _replay(kafka_bootstrap, topic, checkpoint=checkpoint, batch_size=40, max_batches=2),
        JsonlExport(out),
    )
    partial = _lines(out)
    assert first.batches == 2
    assert 0 < len(partial) < len(cohort)

    # more events arrive after the replay started; the resumed run keeps the captured ends
    _produce(kafka_bootstrap, topic, _cohort(50, seed=99))
    second = run_sync(_replay(kafka_bootstrap, topic, checkpoint=checkpoint), JsonlExport(out))

    exported = _lines(out)
    ids = [e["event_id"] for e in exported]
    assert len(ids) == len(set(ids)) == len(cohort)
    assert set(ids) == {str(e["event_id"]) for e in cohort}
    assert first.records + second.records == len(cohort)


def test_timestamps_map_to_the_offsets_of_the_first_records_at_or_after_them(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS, partitions=3)
    cohort = _cohort(240, seed=5)
    groups = [cohort[:80], cohort[80:160], cohort[160:]]
    base = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    stamps = [base, base + 3_600_000, base + 7_200_000]
    for group, stamp in zip(groups, stamps, strict=True):
        _produce(kafka_bootstrap, topic, group, timestamp_ms=stamp)
    middle = Selection(
        topics=(topic,),
        start=Bound.parse("2026-01-01T00:30:00Z"),
        stop=Bound.parse("2026-01-01T01:30:00+00:00"),
    )
    out = tmp_path / "middle.jsonl"

    run_sync(_replay(kafka_bootstrap, topic, selection=middle), JsonlExport(out))

    assert {e["event_id"] for e in _lines(out)} == {str(e["event_id"]) for e in groups[1]}
    ranges = _replay(kafka_bootstrap, topic, selection=middle).ranges()
    assert sum(r.count for r in ranges) == len(groups[1])
    assert all(r.end > r.start for r in ranges)


def test_rebuild_of_processed_history_changes_no_row(
    kafka_bootstrap: str, topic_factory: Any, postgres_url: str, pg_schema: Any
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS)
    cohort = _cohort(300, seed=3)
    _produce(kafka_bootstrap, topic, cohort)
    schema = pg_schema(postgres_url).name
    migrate(postgres_url, schema=schema)

    first = run_sync(
        _replay(kafka_bootstrap, topic, batch_size=100), _rebuild(postgres_url, schema)
    )
    before = snapshot(postgres_url, schema)
    second = run_sync(
        _replay(kafka_bootstrap, topic, batch_size=100), _rebuild(postgres_url, schema)
    )
    after = snapshot(postgres_url, schema)

    assert first.events == second.events == len(cohort)
    assert len(before["events"]) == len(cohort)
    assert before["predictions"]
    assert after == before


def test_interrupted_rebuild_resumes_into_the_rows_of_an_uninterrupted_one(
    kafka_bootstrap: str, topic_factory: Any, postgres_url: str, pg_schema: Any, tmp_path: Path
) -> None:
    """Learner state lives only in the run: a resumed rebuild reads its past again first.

    Without that, the events after the checkpoint would be featurised and scored as if every
    learner were new, and their rows would differ from an uninterrupted run's.
    """
    topic = topic_factory("events", spec=LMS_EVENTS)
    cohort = _cohort(400, seed=5)
    _produce(kafka_bootstrap, topic, cohort)
    schemas = [pg_schema(postgres_url).name for _ in range(2)]
    for schema in schemas:
        migrate(postgres_url, schema=schema)

    checkpoint = Checkpoint(tmp_path / "rebuild.checkpoint")
    stopped = run_sync(
        _replay(kafka_bootstrap, topic, checkpoint=checkpoint, batch_size=60, max_batches=2),
        _rebuild(postgres_url, schemas[0]),
    )
    resumed = run_sync(
        _replay(kafka_bootstrap, topic, checkpoint=checkpoint, batch_size=60),
        _rebuild(postgres_url, schemas[0]),
    )
    whole = run_sync(
        _replay(kafka_bootstrap, topic, batch_size=60), _rebuild(postgres_url, schemas[1])
    )

    assert 0 < stopped.records < len(cohort)
    assert stopped.records + resumed.records == whole.records == len(cohort)
    written = ("stored_at", "created_at", "updated_at", "published_at", "applied_at")
    interrupted, uninterrupted = (snapshot(postgres_url, s, drop=written) for s in schemas)
    assert interrupted["features"] and interrupted["predictions"]
    assert interrupted == uninterrupted


def test_dlq_replay_sends_back_the_fixed_dead_letters_and_keeps_the_others(
    kafka_bootstrap: str, topic_factory: Any, read_topic: Any
) -> None:
    dlq = topic_factory("dlq", spec=LMS_EVENTS_DLQ)
    events_topic = topic_factory("events", spec=LMS_EVENTS)
    cohort = _cohort(6, seed=21)
    fixed_reason = "unknown verb: https://lms.example/verbs/pondered"

    def letter(original: bytes, reason: str, offset: int) -> bytes:
        error = InvalidEvent("verb", reason, "native")
        return (
            DeadLetter.from_error(
                original, error, topic="lms.events.v1", partition=0, offset=offset, failed_at=START
            )
            .model_dump_json()
            .encode()
        )

    # a valid statement an older release dead-lettered for its verb: it now goes back, to be
    # stored and counted as unmodelled
    pondered = {
        "id": str(uuid.uuid4()),
        "actor": {"mbox": "mailto:ada@example.edu"},
        "verb": {"id": "https://lms.example/verbs/pondered"},
        "object": {"id": "https://lms.example/items/1"},
        "timestamp": "2026-03-02T09:00:00Z",
    }
    fixed = [orjson.dumps(e) for e in cohort[:4]] + [orjson.dumps(pondered)]
    broken = [b'{"learner_id": "x"', b"[]", b'{"event_type": "answer.submit"}']
    letters = (
        [letter(v, fixed_reason, i) for i, v in enumerate(fixed)]
        + [letter(v, fixed_reason, 10 + i) for i, v in enumerate(broken)]
        + [letter(orjson.dumps(e), "timestamp out of range", 20) for e in cohort[4:6]]
        + [b"not a dead letter"]
    )
    producer = Producer(producer_config(kafka_bootstrap))
    for value in letters:
        producer.produce(dlq, value=value)
    assert producer.flush(30) == 0
    output = DlqReplay(
        Producer(producer_config(kafka_bootstrap)),
        events_topic,
        LMS_EVENTS.partitions,
        "unknown verb",
        KEY,
    )

    progress = run_sync(
        _replay(kafka_bootstrap, dlq, selection=Selection(topics=(dlq,)), normalised=False),
        output,
    )

    assert progress.records == len(letters)
    counts = output.counts
    assert (counts.matched, counts.passed, counts.kept) == (8, 5, 3)
    assert (counts.other, counts.unreadable) == (2, 1)
    sent = read_topic(events_topic, 5)
    assert sorted(m.value() for m in sent) == sorted(fixed)
    pseudonymise = pseudonymiser_for(KEY)
    for message in sent:
        body = orjson.loads(message.value())
        learner = (
            pseudonymise.mbox(body["actor"]["mbox"])
            if "actor" in body
            else pseudonymise.native_learner(str(body["learner_id"]))
        )
        assert message.key() == learner.encode()
        assert message.partition() == partition_for(learner, LMS_EVENTS.partitions)


def test_topics_inspect_shows_offsets_lag_and_a_pseudonymised_sample(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    topic = topic_factory("lms.events.v1", partitions=1)
    cohort = _cohort(12, seed=2)
    for event in cohort:  # one batch per record: Tansu's watermark is the last batch's base + 1
        _produce(kafka_bootstrap, topic, [event])
    group = f"live-{uuid.uuid4().hex[:6]}"
    committer = Consumer(consumer_config(kafka_bootstrap, group))
    committer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    committer.close()

    report = inspect_topic(kafka_bootstrap, topic, KEY, sample=3, interval=0.1, kind="events")

    low, high = report.offsets[0]
    assert (low, high) == (0, len(cohort))
    assert report.lag[group] == len(cohort) - 5
    assert len(report.sample) == 3
    pseudonymise = pseudonymiser_for(KEY)
    text = "\n".join(report.sample)
    assert any(pseudonymise.native_learner(str(e["learner_id"])) in text for e in cohort)
    assert not any(f'"{e["learner_id"]}"' in text for e in cohort)


def test_cli_dry_run_and_export_under_the_topic_prefix(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tutorstream.cli import app

    prefix = f"cli{uuid.uuid4().hex[:6]}."
    topic = f"{prefix}{LMS_EVENTS.name}"
    kafka.create_topics(kafka_bootstrap, [dataclasses.replace(LMS_EVENTS, name=topic)])
    try:
        cohort = _cohort(120, seed=4)
        _produce(kafka_bootstrap, topic, cohort)
        monkeypatch.setenv("TUTORSTREAM_KAFKA_BOOTSTRAP", kafka_bootstrap)
        monkeypatch.setenv("TUTORSTREAM_TOPIC_PREFIX", prefix)
        monkeypatch.setenv("TUTORSTREAM_PSEUDONYM_KEY", KEY.decode())
        runner = CliRunner()

        dry = runner.invoke(app, ["replay", "run", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert f"{topic}:0" in dry.output
        assert f"{topic}:{LMS_EVENTS.partitions - 1}" in dry.output

        out = tmp_path / "cli.jsonl"
        first_class = str(cohort[0]["class_id"])
        done = runner.invoke(
            app, ["replay", "run", "--mode", "export", "--out", str(out), "--class", first_class]
        )
        assert done.exit_code == 0, done.output
        wanted = {str(e["event_id"]) for e in cohort if e["class_id"] == first_class}
        assert {e["event_id"] for e in _lines(out)} == wanted

        parts = tmp_path / "cli-parquet"
        args = ["replay", "run", "--out", str(parts), "--format", "parquet", "--class"]
        as_parquet = runner.invoke(app, [*args, first_class])
        assert as_parquet.exit_code == 0, as_parquet.output
        table = pyarrow.parquet.read_table(parts)
        assert sorted(table.column("event_id").to_pylist()) == sorted(wanted)
        wrong = runner.invoke(app, ["replay", "run", "--out", str(parts), "--format", "csv"])
        assert wrong.exit_code == 1
        assert "--format must be jsonl or parquet" in wrong.output
    finally:
        kafka.delete_topics(kafka_bootstrap, [topic])


def test_rebuild_then_rescore_writes_only_the_shadow_schema_and_diff_agrees(
    kafka_bootstrap: str,
    topic_factory: Any,
    postgres_url: str,
    pg_schema: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from tutorstream.cli import app

    topic = topic_factory("events", spec=LMS_EVENTS)
    cohort = _cohort(200, seed=8)
    _produce(kafka_bootstrap, topic, cohort)
    live = pg_schema(postgres_url).name
    migrate(postgres_url, schema=live)
    model = LearnerModel.load()
    shadow = shadow_schema(model.spec.ref)
    drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(shadow))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(drop)
    monkeypatch.setenv("TUTORSTREAM_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("TUTORSTREAM_DATABASE_URL", postgres_url)
    monkeypatch.setenv("TUTORSTREAM_STORE__DB_SCHEMA", live)
    monkeypatch.setenv("TUTORSTREAM_PSEUDONYM_KEY", KEY.decode())
    runner = CliRunner()
    try:
        built = runner.invoke(app, ["replay", "run", "--mode", "rebuild", "--topic", topic])
        assert built.exit_code == 0, built.output
        before = snapshot(postgres_url, live)
        assert len(before["events"]) == len(cohort)

        rescored = runner.invoke(
            app,
            ["replay", "run", "--mode", "rescore", "--model", model.spec.ref, "--topic", topic],
        )

        assert rescored.exit_code == 0, rescored.output
        assert snapshot(postgres_url, live) == before
        shadowed = snapshot(postgres_url, shadow)
        assert len(shadowed["events"]) == len(cohort)
        assert len(shadowed["predictions"]) == len(before["predictions"]) > 0

        report = tmp_path / "diff.json"
        diffed = runner.invoke(
            app, ["replay", "diff", "--model", model.spec.ref, "--json", str(report)]
        )

        assert diffed.exit_code == 0, diffed.output
        found = orjson.loads(report.read_bytes())
        assert (found["base"], found["shadow"]) == (live, shadow)
        assert found["scored"] == len(before["predictions"])
        assert all(s["agreement"] == 1.0 for s in found["states"])
        assert found["alerted_differently"] == 0
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(drop)


def test_a_replay_reads_each_record_with_the_profile_its_header_names(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    lms = "https://lms.example.edu/xapi/"
    profile = tmp_path / "my-lms.yaml"
    profile.write_text(
        f"profile: my-lms\nversion: 2\nextends: builtin\nverbs:\n"
        f"  - ids: [{lms}verbs/hinted]\n    event_type: hint_request\n"
    )
    topic = topic_factory("events", spec=LMS_EVENTS, partitions=1)
    statement = {
        "id": str(uuid.uuid4()),
        "actor": {"mbox": "mailto:ada@example.edu"},
        "verb": {"id": f"{lms}verbs/hinted"},
        "object": {"id": "https://lms.example.edu/item/1"},
        "timestamp": "2026-03-02T09:00:00Z",
    }
    producer = Producer(producer_config(kafka_bootstrap))
    producer.produce(
        topic, value=orjson.dumps(statement), headers=[("tutorstream-profile", b"my-lms")]
    )
    # the same verb without the header: the built-in profile does not model it
    producer.produce(topic, value=orjson.dumps({**statement, "id": str(uuid.uuid4())}))
    assert producer.flush(30) == 0
    out = tmp_path / "events.jsonl"

    progress = run_sync(
        _replay(kafka_bootstrap, topic, profile_files=(str(profile),)), JsonlExport(out)
    )

    assert progress.records == 2 and progress.invalid == 0
    assert [(e["event_type"], e["profile"]) for e in _lines(out)] == [("hint_request", "my-lms@2")]

"""Parquet export against the real broker: same rows as JSON lines, resumable."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from common.kafka import producer_config
from schemas.events import LearningEvent
from schemas.normalise import pseudonymiser_for
from schemas.topics import LMS_EVENTS
from streams.replay.checkpoint import Checkpoint
from streams.replay.outputs import JsonlExport, ParquetExport
from streams.replay.plan import Selection
from streams.replay.reader import Replay, run_sync
from tutorstream.cohort import generate_cohort

pytestmark = pytest.mark.integration

KEY = b"replay-parquet-key"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = Producer(producer_config(bootstrap))
    for event in events:
        producer.produce(topic, key=str(event["learner_id"]).encode(), value=orjson.dumps(event))
        producer.poll(0)
    assert producer.flush(60) == 0


def _replay(bootstrap: str, selection: Selection, **options: Any) -> Replay:
    return Replay(
        bootstrap=bootstrap,
        selection=selection,
        pseudonym_key=KEY,
        replay_id=uuid.uuid4().hex[:8],
        **options,
    )


def _parquet(path: Path) -> list[LearningEvent]:
    return [LearningEvent.model_validate(row) for row in pq.read_table(path).to_pylist()]


def _by_id(events: list[LearningEvent]) -> dict[str, LearningEvent]:
    return {e.event_id: e for e in events}


def test_parquet_export_holds_the_same_rows_as_the_jsonl_export(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS, partitions=3)
    cohort = list(generate_cohort(6, 300, 13, start=START))
    _produce(kafka_bootstrap, topic, cohort)
    pseudonymise = pseudonymiser_for(KEY)
    raw_ids = sorted({str(e["learner_id"]) for e in cohort})
    chosen = frozenset(pseudonymise.native_learner(raw) for raw in raw_ids[:2])
    selection = Selection(topics=(topic,), learners=chosen)

    run_sync(_replay(kafka_bootstrap, selection), JsonlExport(tmp_path / "events.jsonl"))
    progress = run_sync(
        _replay(kafka_bootstrap, selection, batch_size=100), ParquetExport(tmp_path / "parquet")
    )

    from_jsonl = [
        LearningEvent.model_validate_json(line)
        for line in (tmp_path / "events.jsonl").read_bytes().splitlines()
    ]
    from_parquet = _parquet(tmp_path / "parquet")
    assert len(from_parquet) == len(from_jsonl) == progress.events
    assert 0 < progress.events < len(cohort)
    assert _by_id(from_parquet) == _by_id(from_jsonl)
    assert {e.learner_id for e in from_parquet} == chosen


def test_interrupted_parquet_export_resumes_without_duplicates(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory("events", spec=LMS_EVENTS, partitions=3)
    cohort = list(generate_cohort(6, 400, 17, start=START))
    _produce(kafka_bootstrap, topic, cohort)
    out = tmp_path / "parquet"
    checkpoint = Checkpoint(tmp_path / "replay.checkpoint")
    selection = Selection(topics=(topic,))

    first = run_sync(
        _replay(kafka_bootstrap, selection, checkpoint=checkpoint, batch_size=40, max_batches=2),
        ParquetExport(out),
    )
    assert first.batches == 2
    assert 0 < len(_parquet(out)) < len(cohort)
    # a part made durable just before the process died, its checkpoint never written
    shutil.copy(out / "part-000001.parquet", out / "part-000002.parquet")
    (out / "part-000003.parquet.tmp").write_bytes(b"cut off")

    _produce(kafka_bootstrap, topic, list(generate_cohort(3, 50, 99, start=START)))
    second = run_sync(
        _replay(kafka_bootstrap, selection, checkpoint=checkpoint), ParquetExport(out)
    )

    ids = [e.event_id for e in _parquet(out)]
    assert len(ids) == len(set(ids)) == len(cohort)
    assert set(ids) == {str(e["event_id"]) for e in cohort}
    assert first.records + second.records == len(cohort)
    assert not list(out.glob("*.tmp"))

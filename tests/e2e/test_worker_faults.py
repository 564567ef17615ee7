"""The worker under faults, judged by event ids: every produced event stored, none twice.

Lag, watermarks and a learner's state against its stored answers can all agree while events are
missing (a state that skipped a record skipped it in both; Tansu's high watermark under-counts),
so these tests compare the set of event ids produced with the set stored.
"""

from __future__ import annotations

import os
import random
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.normalise import normalise, pseudonymiser_for
from schemas.pseudonym import DEV_PSEUDONYM_KEY
from schemas.topics import LMS_EVENTS
from tutorstream import kafka
from tutorstream.cohort import labelled_cohort

pytestmark = pytest.mark.e2e

KILLS = int(os.environ.get("TUTORSTREAM_E2E_KILLS", "4"))
"""SIGKILLs per run of the kill test (the fault suite runs more)."""

TABLES = {
    "events": "event_id",
    "features": "event_id",
    "predictions": "event_id",
    "interventions": "intervention_id",
    "recommendations": "event_id",
}


def _stored_ids(pipeline: Any) -> set[str]:
    return {row[0] for row in pipeline.rows("SELECT event_id FROM events")}


def _duplicates(pipeline: Any) -> dict[str, int]:
    return {
        table: int(pipeline.scalar(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}"))
        for table, key in TABLES.items()
    }


def _wait_for_ids(pipeline: Any, produced: set[str], timeout: float) -> set[str]:
    """Poll until every produced id is stored, or until ``timeout`` passes with no progress."""
    stored: set[str] = set()
    last_change, last_count = time.monotonic(), -1
    while time.monotonic() - last_change < timeout:
        stored = _stored_ids(pipeline)
        if produced <= stored:
            return stored
        if len(stored) != last_count:
            last_change, last_count = time.monotonic(), len(stored)
        time.sleep(0.5)
    return stored


def _wait_until_committed(pipeline: Any, count: int, timeout: float = 180.0) -> None:
    """Poll until the worker's group has committed ``count`` records of the raw topic."""
    topic = pipeline.topic("lms.events.v1")
    group = Consumer(kafka.consumer_config(pipeline.bootstrap, pipeline.app_id))
    try:
        wanted = [TopicPartition(topic, p) for p in range(LMS_EVENTS.partitions)]
        deadline = time.monotonic() + timeout
        total = -1
        while time.monotonic() < deadline:
            total = sum(max(0, tp.offset) for tp in group.committed(wanted, timeout=10))
            if total >= count:
                return
            time.sleep(0.5)
    finally:
        group.close()
    pytest.fail(f"the group committed {total} of {count} records\n{pipeline.log_tail()}")


def _keyed_as_producers_do(events: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    """Records keyed by learner pseudonym, as ``tutorstream produce`` keys them; one learner
    in four keyed by its LMS id instead, so the worker forwards those to their partition."""
    pseudonym = pseudonymiser_for(DEV_PSEUDONYM_KEY.encode())
    out: list[tuple[bytes | None, bytes]] = []
    for event in events:
        value = orjson.dumps(event)
        lms_id = str(event["learner_id"])
        if zlib.crc32(lms_id.encode()) % 4:
            out.append((normalise(value, pseudonym)[0].learner_id.encode(), value))
        else:
            out.append((lms_id.encode(), value))
    return out


def test_worker_killed_at_random_points_stores_every_event(pipeline: Any) -> None:
    """SIGKILL the worker at random moments of its batches, again and again.

    Each busy kill lands wherever the worker is: normalising, scoring, in the store's
    transaction, sending, writing the changelog or waiting for the broker's confirmations;
    sometimes the replacement starts before the kill, so it joins a group whose member is
    still alive and then dies (two rebalances), sometimes after. A quiet kill comes once
    everything so far is stored and committed, and the next stretch is produced before the
    replacement starts: its first fetch holds records nobody has processed yet. Every
    produced event id must end up stored exactly once.
    """
    rng = random.Random(int(os.environ.get("TUTORSTREAM_E2E_SEED", "0")) or None)
    start = datetime.now(UTC) - timedelta(days=1)
    events = [e for e, _ in labelled_cohort(60, 40, rng.randrange(1 << 30), start=start)]
    produced = {str(e["event_id"]) for e in events}
    assert len(produced) == len(events)
    records = _keyed_as_producers_do(events)
    step = len(records) // (KILLS + 1) + 1
    stretches = [records[k : k + step] for k in range(0, len(records), step)]
    worker = pipeline.start_worker()
    pipeline.produce(stretches[0])
    sent = len(stretches[0])
    for kill, stretch in enumerate(stretches[1:]):
        if kill % 2:
            _wait_until_committed(pipeline, sent)
            pipeline.kill(worker)
            pipeline.produce(stretch)
            worker = pipeline.start_worker()
        else:
            pipeline.produce(stretch)
            # somewhere in this stretch, at a random moment of a batch's life
            pipeline.wait_for("SELECT count(*) FROM events", sent + rng.randrange(len(stretch)))
            time.sleep(rng.uniform(0.0, 0.5))
            if rng.random() < 0.5:
                replacement = pipeline.start_worker()
                pipeline.kill(worker)
            else:
                pipeline.kill(worker)
                replacement = pipeline.start_worker()
            worker = replacement
        sent += len(stretch)
    stored = _wait_for_ids(pipeline, produced, timeout=120.0)
    missing = produced - stored
    assert not missing, (
        f"{len(missing)} of {len(produced)} produced events never stored, e.g. "
        f"{sorted(missing)[:5]}\n{pipeline.log_tail()}"
    )
    assert stored == produced
    time.sleep(2.0)  # a late duplicate would land now
    assert _duplicates(pipeline) == dict.fromkeys(TABLES, 0)

"""Stream workers annotate new interventions in Grafana, and never wait for it.

Grafana cannot be installed here: the recording server of
``tests/integration/grafana/recording.py`` stands in for it and checks every request against
Grafana's HTTP API documentation (``POST /api/annotations``: bearer token, JSON body with
``time`` in epoch milliseconds, ``text`` and ``tags``). The workers are real processes on Tansu,
PostgreSQL 18 and the shipped ONNX model.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fake_grafana import TOKEN, serve_grafana
from tutorstream import services
from tutorstream.cohort import labelled_cohort

pytestmark = pytest.mark.e2e

EVENTS = "SELECT count(*) FROM events"
STORED = "SELECT intervention_id, learner_id, class_id, state, time FROM interventions"


def _records(pipeline: Any, learners: int, problems: int, seed: int) -> tuple[list[Any], int]:
    start = datetime.now(UTC) - timedelta(hours=6)
    events = [e for e, _ in labelled_cohort(learners, problems, seed, start=start)]
    return pipeline.native_records(events), len(events)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def _until(check: Any, timeout: float, what: str, pipeline: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}\n{pipeline.log_tail()}")


def test_each_new_intervention_is_annotated_once(pipeline: Any) -> None:
    records, count = _records(pipeline, learners=12, problems=15, seed=21)
    with serve_grafana() as grafana:
        grafana.failures = [500]  # the first annotation meets a Grafana in trouble
        env = {
            "TUTORSTREAM_GRAFANA__URL": grafana.url,
            "TUTORSTREAM_GRAFANA__TOKEN": TOKEN,
            "TUTORSTREAM_GRAFANA__BACKOFF_S": "0.1",
        }
        pipeline.start_worker(**env)
        pipeline.produce(records)
        pipeline.wait_for(EVENTS, count)
        stored = {r[0]: r for r in pipeline.rows(STORED)}
        assert stored, pipeline.log_tail()
        first = len(stored)
        _until(lambda: len(grafana.annotations) >= first, 60, "annotations", pipeline)

        # A second worker in a new consumer group reads the same events again: what it
        # finds already stored is not annotated again.
        pipeline.stop_all()
        pipeline.app_id = f"tutorstream-{uuid.uuid4().hex[:8]}"
        pipeline.start_worker(**env)

        def settled() -> bool:
            try:
                text = pipeline.metrics(1)
            except httpx.HTTPError:  # its web server is not up yet
                return False
            return (
                _metric(text, "tutorstream_records_in_total") >= count
                and _metric(text, "tutorstream_interventions_total") >= first
            )

        _until(settled, 180, "the second worker to read the cohort again", pipeline)
        time.sleep(3.0)  # a stray annotation would arrive now
        text = pipeline.metrics(1)
        stored = {r[0]: r for r in pipeline.rows(STORED)}

    assert grafana.violations == []
    assert {h["Authorization"] for h in grafana.headers} == {f"Bearer {TOKEN}"}
    assert {(m, p) for m, p, _ in grafana.requests} == {("POST", "/api/annotations")}
    assert len(grafana.requests) == len(grafana.annotations) + 1  # the 500, then its retry
    annotated = [re.search(r"intervention (\S+)$", n["text"]) for n in grafana.annotations]
    ids = [m.group(1) for m in annotated if m is not None]
    assert sorted(ids) == sorted(stored), "one annotation per stored intervention, no more"
    for note, ident in zip(grafana.annotations, ids, strict=True):
        _, learner, class_id, state, at = stored[ident]
        assert note["time"] == round(at.timestamp() * 1000)
        assert note["tags"] == [
            "tutorstream",
            "intervention",
            state,
            f"class:{class_id}",
            f"learner:{learner}",
        ]
    # the second worker raised interventions again; it annotated only those new to the store
    assert _metric(text, "tutorstream_interventions_total") >= first
    sent_again = _metric(text, "tutorstream_grafana_annotations_total", outcome="sent")
    assert sent_again == len(stored) - first


def test_a_grafana_that_is_down_never_stops_the_worker(pipeline: Any) -> None:
    records, count = _records(pipeline, learners=8, problems=12, seed=22)
    port = services.free_port()  # nothing listens there
    pipeline.start_worker(
        TUTORSTREAM_GRAFANA__URL=f"http://127.0.0.1:{port}",
        TUTORSTREAM_GRAFANA__TOKEN=TOKEN,
        TUTORSTREAM_GRAFANA__MAX_TRIES="2",
        TUTORSTREAM_GRAFANA__BACKOFF_S="0.05",
    )
    pipeline.produce(records)
    assert pipeline.wait_for(EVENTS, count) == count
    stored = pipeline.scalar("SELECT count(*) FROM interventions")
    assert stored > 0, pipeline.log_tail()

    def dropped() -> float:
        try:
            text = pipeline.metrics()
        except httpx.HTTPError:
            return 0.0
        return _metric(text, "tutorstream_grafana_annotations_total", outcome="dropped_failed")

    assert _until(lambda: dropped() >= stored, 60, "every annotation dropped", pipeline)
    assert pipeline.workers[0].poll() is None, "the worker must outlive Grafana's absence"
    assert "dropped" in pipeline.log_tail(10**7)

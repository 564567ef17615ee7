"""The worker's Grafana annotation sender (``streams.annotations``) against a recording server.

Grafana cannot be installed here: the stand-in of ``recording.py`` checks each
``POST /api/annotations`` against Grafana's HTTP API documentation (bearer token, JSON body,
``time`` in epoch milliseconds, ``text``, ``tags``, no unknown fields) and can fail requests on
demand. The sender runs for real: aiohttp, its queue and its background task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from schemas.normalise import normalise
from schemas.records import intervention_id
from streams.annotations import ANNOTATIONS_PATH, GrafanaAnnotations, GrafanaSettings
from streams.metrics import REGISTRY
from streams.policy import Decision, Status
from streams.processor import InterventionOut
from streams.prompts import prompt_for
from tests.fake_grafana import TOKEN, FakeGrafana, serve_grafana
from tutorstream.cohort import generate_cohort

pytestmark = pytest.mark.unit

KEY = b"annotation-test-pseudonym-key-0123456789"


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with serve_grafana() as state:
        yield state


def interventions(count: int) -> tuple[list[InterventionOut], list[str]]:
    """Interventions on the first events of a simulated class, and the raw learner ids."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    natives = list(generate_cohort(3, count, 5, start=start))
    out = []
    for native in natives:
        (event,) = normalise(native, KEY)
        state = "gaming"
        ident = intervention_id(event.learner_id, state, event.event_id)
        decision = Decision(ident, state, 0.8125, Status.SENT, prompt_for(state, ident))
        out.append(InterventionOut(decision, event, {"gaming": 0.8125}, 0.0, 0.0))
    return out, [str(n["learner_id"]) for n in natives]


def counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value("tutorstream_grafana_annotations_total", {"outcome": outcome})
    return value or 0.0


def send(sender: GrafanaAnnotations, items: list[InterventionOut], new: set[str]) -> int:
    """Offer ``items`` and run the sender until its queue is empty."""

    async def go() -> int:
        queued = sender.offer(items, new)
        task = asyncio.create_task(sender.run())
        assert await sender.drain(30.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return queued

    return asyncio.run(go())


def settings(url: str, **extra: object) -> GrafanaSettings:
    return GrafanaSettings.model_validate(
        {"url": url, "token": SecretStr(TOKEN), "backoff_s": 0.01, **extra}
    )


def test_each_new_intervention_is_one_documented_request(grafana: FakeGrafana) -> None:
    items, raw_ids = interventions(4)
    new = {i.decision.intervention_id for i in items[1:]}  # the first was stored before
    assert send(GrafanaAnnotations(settings(grafana.url)), items, new) == 3

    assert grafana.violations == []
    assert [(m, p) for m, p, _ in grafana.requests] == [("POST", ANNOTATIONS_PATH)] * 3
    assert {h["Authorization"] for h in grafana.headers} == {f"Bearer {TOKEN}"}
    by_id = {i.decision.intervention_id: i for i in items}
    for note in grafana.annotations:
        ident = note["text"].rsplit(" ", 1)[1]
        item = by_id.pop(ident)
        event = item.event
        assert note["time"] == round(event.timestamp.timestamp() * 1000)
        assert note["tags"] == [
            "tutorstream",
            "intervention",
            "gaming",
            f"class:{event.class_id}",
            f"learner:{event.learner_id}",
        ]
        assert "gaming at 81% confidence, sent" in note["text"]
        assert f"prompt {item.decision.prompt.prompt_id}" in note["text"]
    assert list(by_id) == [items[0].decision.intervention_id]
    sent = str(grafana.requests)
    assert not any(raw in sent for raw in raw_ids), "a raw learner id reached Grafana"


def test_a_failing_grafana_gets_the_annotation_once_it_recovers(grafana: FakeGrafana) -> None:
    items, _ = interventions(1)
    grafana.failures = [500, 503, 502]
    sent, retried = counted("sent"), counted("retried")
    send(GrafanaAnnotations(settings(grafana.url)), items, {items[0].decision.intervention_id})
    assert len(grafana.requests) == 4
    assert len(grafana.annotations) == 1
    assert counted("sent") - sent == 1 and counted("retried") - retried == 3


def test_a_refusal_is_not_retried_and_logged_once(
    grafana: FakeGrafana, caplog: pytest.LogCaptureFixture
) -> None:
    items, _ = interventions(3)
    wrong = GrafanaSettings(url=grafana.url, token=SecretStr("wrong"), backoff_s=0.01)
    refused = counted("refused")
    with caplog.at_level(logging.WARNING, logger="streams.annotations"):
        send(GrafanaAnnotations(wrong), items, {i.decision.intervention_id for i in items})
    assert len(grafana.requests) == 3 and grafana.annotations == []
    assert counted("refused") - refused == 3
    assert [r.getMessage() for r in caplog.records if "401" in r.getMessage()] != []
    assert len(caplog.records) == 1


def test_a_grafana_that_is_down_costs_drops_not_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve_grafana() as gone:
        url = gone.url  # a port nobody listens on once the block ends
    items, _ = interventions(5)
    sender = GrafanaAnnotations(settings(url, max_tries=2, queue_size=2))
    full, failed = counted("dropped_queue_full"), counted("dropped_failed")
    with caplog.at_level(logging.WARNING, logger="streams.annotations"):
        assert send(sender, items, {i.decision.intervention_id for i in items}) == 2
    assert counted("dropped_queue_full") - full == 3
    assert counted("dropped_failed") - failed == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("queue is full" in m for m in messages)
    assert any("failed 2 times" in m for m in messages)

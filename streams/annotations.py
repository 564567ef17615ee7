"""Grafana annotations for new interventions, sent off the stream's critical path.

When ``TUTORSTREAM_GRAFANA__URL`` is set, the worker offers every intervention the store saw for
the first time; :class:`GrafanaAnnotations` turns each into a ``POST /api/annotations`` (an
organisation annotation at the triggering event's time, tagged ``tutorstream``,
``intervention``, the state, ``class:<id>`` and ``learner:<pseudonym>``) and a background task
sends them one by one.

A batch never waits for Grafana and never fails because of it: offering only puts the
annotation on a bounded queue. The sender retries connection errors, 429 and 5xx answers with
exponential backoff; after ``max_tries`` it drops the annotation, as it does when the queue is
full, with a warning and a count in ``tutorstream_grafana_annotations_total``. A 4xx answer
(bad token, missing permission) is not retried and is logged once per status, so a
misconfigured Grafana costs one log line, not one per intervention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import BaseModel, Field, SecretStr

from streams import metrics

if TYPE_CHECKING:  # the settings import this module; they need not load the processor
    from streams.processor import InterventionOut

logger = logging.getLogger(__name__)

ANNOTATIONS_PATH = "/api/annotations"
_RETRY_STATUS_FLOOR = 500
_TOO_MANY_REQUESTS = 429
_DROP_LOG_EVERY_S = 60.0


class GrafanaSettings(BaseModel):
    """Where and how the worker annotates interventions in Grafana.

    Attributes:
        url: ``TUTORSTREAM_GRAFANA__URL``, Grafana's base URL; no annotations when unset.
        token: ``TUTORSTREAM_GRAFANA__TOKEN``, a service account token with the annotation
            writer permission, sent as a bearer token.
        queue_size: ``TUTORSTREAM_GRAFANA__QUEUE_SIZE``, annotations waiting to be sent; more
            are dropped.
        max_tries: ``TUTORSTREAM_GRAFANA__MAX_TRIES``, attempts per annotation before it is
            dropped.
        backoff_s: ``TUTORSTREAM_GRAFANA__BACKOFF_S``, wait after the first failed attempt,
            doubled after each further one.
        max_backoff_s: ``TUTORSTREAM_GRAFANA__MAX_BACKOFF_S``, longest wait between attempts.
        timeout_s: ``TUTORSTREAM_GRAFANA__TIMEOUT_S``, limit of one request.
    """

    url: str | None = None
    token: SecretStr | None = None
    queue_size: int = Field(default=10_000, ge=1)
    max_tries: int = Field(default=5, ge=1)
    backoff_s: float = Field(default=0.5, gt=0)
    max_backoff_s: float = Field(default=30.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0)


def annotation(item: InterventionOut) -> dict[str, Any]:
    """Return the ``POST /api/annotations`` body of an intervention.

    The learner is named by the pseudonym the event carries (raw ids never reach the stream
    past ingest). No dashboard is named: an organisation annotation shows on any board whose
    annotation query asks for its tags, such as ``learner:$learner``.
    """
    decision, event = item.decision, item.event
    tags = ["tutorstream", "intervention", str(decision.state)]
    if event.class_id is not None:
        tags.append(f"class:{event.class_id}")
    tags.append(f"learner:{event.learner_id}")
    text = (
        f"{decision.state} at {decision.confidence:.0%} confidence, {decision.status.value}; "
        f"prompt {decision.prompt.prompt_id}; intervention {decision.intervention_id}"
    )
    return {"time": round(event.timestamp.timestamp() * 1000), "tags": tags, "text": text}


class GrafanaAnnotations:
    """A bounded queue of annotations and the task that sends them to Grafana.

    Args:
        settings: ``TUTORSTREAM_GRAFANA__*``; ``url`` must be set.
    """

    def __init__(self, settings: GrafanaSettings) -> None:
        if not settings.url:
            raise ValueError("GrafanaAnnotations needs TUTORSTREAM_GRAFANA__URL")
        self.settings = settings
        self.endpoint = settings.url.rstrip("/") + ANNOTATIONS_PATH
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(settings.queue_size)
        self._refused: set[int] = set()
        self._dropped: dict[str, int] = {}
        self._drop_logged_at: dict[str, float] = {}

    def offer(self, interventions: Iterable[InterventionOut], new: Collection[str]) -> int:
        """Queue an annotation for each intervention whose id is in ``new``; never blocks.

        Args:
            interventions: the batch's interventions.
            new: ids of those the store had not seen before (a replay or a redelivered batch
                finds the others again; they were annotated the first time).

        Returns:
            How many were queued.
        """
        queued = 0
        for item in interventions:
            if item.decision.intervention_id not in new:
                continue
            try:
                self.queue.put_nowait(annotation(item))
            except asyncio.QueueFull:
                self._drop("queue_full")
                continue
            queued += 1
        return queued

    async def run(self) -> None:
        """Send queued annotations until cancelled (a Faust task of the worker)."""
        headers = {"Content-Type": "application/json"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            while True:
                body = await self.queue.get()
                try:
                    await self._send(session, body)
                except Exception:  # the sender must outlive any one annotation
                    logger.exception("could not send a Grafana annotation")
                    self._drop("failed", "unexpected error")
                finally:
                    self.queue.task_done()

    async def _send(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        wait = self.settings.backoff_s
        for attempt in range(1, self.settings.max_tries + 1):
            try:
                async with session.post(self.endpoint, json=body) as answer:
                    status = answer.status
                    detail = (await answer.text())[:200]
            except (aiohttp.ClientError, TimeoutError) as err:
                status, detail = 0, f"{type(err).__name__}: {err}"
            if 200 <= status < 300:
                metrics.GRAFANA_ANNOTATIONS.labels("sent").inc()
                return
            if status and status < _RETRY_STATUS_FLOOR and status != _TOO_MANY_REQUESTS:
                if status not in self._refused:
                    self._refused.add(status)
                    logger.warning(
                        "Grafana refused an annotation with %d (%s); not retried, and further "
                        "%d answers are not logged",
                        status,
                        detail,
                        status,
                    )
                metrics.GRAFANA_ANNOTATIONS.labels("refused").inc()
                return
            if attempt == self.settings.max_tries:
                break
            metrics.GRAFANA_ANNOTATIONS.labels("retried").inc()
            logger.debug("annotation attempt %d failed (%s); retrying", attempt, detail)
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.settings.max_backoff_s)
        self._drop("failed", detail)

    def _drop(self, reason: str, detail: str = "") -> None:
        metrics.GRAFANA_ANNOTATIONS.labels(f"dropped_{reason}").inc()
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        now = time.monotonic()
        # while Grafana is down every intervention is dropped: one line a minute, with a count
        if now - self._drop_logged_at.get(reason, -_DROP_LOG_EVERY_S) >= _DROP_LOG_EVERY_S:
            self._drop_logged_at[reason] = now
            count = self._dropped.pop(reason)
            what = (
                "the annotation queue is full"
                if reason == "queue_full"
                else f"Grafana failed {self.settings.max_tries} times ({detail})"
            )
            logger.warning("dropped %d Grafana annotation(s): %s", count, what)

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued annotation is sent or dropped; False on timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout)
            return True
        return False

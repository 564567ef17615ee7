"""Liveness, readiness and metrics: ``/healthz``, ``/readyz``, ``/metrics``.

Liveness checks the process only, so an outage of the broker or the database never gets a
healthy API restarted; readiness checks both, and that the live feed reads its topic.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.exceptions import Unavailable
from api.models import Health
from api.runtime import runtime_of

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
async def healthz() -> Health:
    """Answer 200 while the process runs."""
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the broker, the database and the live feed",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is not ready."}},
)
async def readyz(request: Request, response: Response) -> Health:
    """Answer 200 when the broker lists the API's topics, the store answers, the feed reads."""
    runtime = runtime_of(request)
    wanted = (runtime.lms_topic, runtime.interventions_topic, runtime.prompts_topic)
    try:
        topics = await asyncio.to_thread(runtime.delivery.topics)
        kafka = all(topics.get(name, 0) > 0 for name in wanted)
    except Unavailable:
        kafka = False
    checks = {
        "kafka": kafka,
        "database": await runtime.store.ping(),
        "live_feed": runtime.feed.ready,
    }
    ready = all(checks.values())
    if not ready:
        response.status_code = 503
    return Health(status="ok" if ready else "unavailable", checks=checks)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    """Return the API's metrics in the Prometheus text format."""
    registry = runtime_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

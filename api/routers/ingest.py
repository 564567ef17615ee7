"""IMS Caliper 1.2 envelopes (``/caliper``) and native events (``/events``).

Each event becomes one record on ``lms.events.v1``, keyed by its learner's pseudonym, as the LMS
producer sends them: a Caliper envelope is split into one envelope per event, a batch of native
events into one record per event. A request is accepted or refused whole, and answered only
once the broker has confirmed every record.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Request

from api.auth import require_ingest
from api.delivery import Outgoing
from api.exceptions import BadRequest, UnsupportedMediaType
from api.keys import Principal
from api.models import Accepted
from api.runtime import count_unmodelled, is_json, principal, runtime_of
from schemas import caliper, native
from schemas.events import UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import parse_json
from schemas.profiles import PROFILE_HEADER

router = APIRouter(tags=["ingest"])

CALIPER_EXAMPLE: Final = {
    "sensor": "https://example.edu/sensors/1",
    "sendTime": "2024-03-01T10:15:01.000Z",
    "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p2",
    "data": [
        {
            "@context": "http://purl.imsglobal.org/ctx/caliper/v1p2",
            "id": "urn:uuid:3a648e68-f00d-4c08-aa59-8738e1884f2c",
            "type": "AssessmentItemEvent",
            "actor": {"id": "https://example.edu/users/554433", "type": "Person"},
            "action": "Completed",
            "object": {
                "id": "https://example.edu/terms/201601/courses/7/sections/1/assess/1/items/3",
                "type": "AssessmentItem",
            },
            "generated": {
                "id": "https://example.edu/terms/201601/courses/7/sections/1/assess/1/items/3/"
                "users/554433/responses/1",
                "type": "FillinBlankResponse",
                "value": "3/8",
            },
            "eventTime": "2024-03-01T10:15:00.000Z",
        }
    ],
}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"description": "Invalid event; `path` names the field (`data[0].actor`)."},
    401: {"description": "No API key, or an unknown or revoked one."},
    403: {"description": "The key lacks the ingest scope."},
    413: {"description": "The body is over the size limit."},
    415: {"description": "The body is not JSON (or not gzip/identity encoded)."},
    429: {"description": "Over the key's rate; see Retry-After."},
    503: {"description": "The broker did not confirm in time."},
}


def _body(example_name: str, example: Any, description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {}}]},
                "examples": {example_name: {"value": example}},
            }
        },
    }


async def _read(request: Request) -> Any:
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        shown = (content_type or "none").split(";")[0][:60]
        raise UnsupportedMediaType(f"Content-Type {shown!r} is not supported; send JSON")
    return parse_json(await request.body())


async def _send(request: Request, kind: str, records: list[Outgoing], ids: list[str]) -> Accepted:
    runtime = runtime_of(request)
    await runtime.delivery.send(records)
    runtime.metrics.events_accepted.labels(kind).inc(len(ids))
    return Accepted(accepted=len(ids), event_ids=ids)


@router.post(
    "/caliper",
    summary="Receive a Caliper 1.2 envelope (the sensor API)",
    status_code=200,
    response_model=Accepted,
    responses=_ERRORS,
    openapi_extra={"requestBody": _body("envelope", CALIPER_EXAMPLE, "A Caliper envelope.")},
)
async def post_caliper(
    request: Request, caller: Annotated[Principal, Depends(principal)]
) -> Accepted:
    """Validate an envelope and put each of its events on lms.events.v1.

    The envelope is split into one envelope per event, each keyed by its learner's pseudonym.
    """
    require_ingest(caller)
    runtime = runtime_of(request)
    payload = await _read(request)
    if type(payload) is not dict or not caliper.is_envelope(payload):
        runtime.metrics.events_rejected.labels("caliper").inc()
        raise BadRequest(
            "expected a Caliper envelope: sensor, sendTime, dataVersion and data (events)", ""
        )
    profile = runtime.profile_for(caller)
    try:
        events = caliper.normalise_caliper(payload, runtime.pseudonymiser, profile=profile)
    except InvalidEvent:
        runtime.metrics.events_rejected.labels("caliper").inc()
        raise
    headers = () if caller.profile is None else ((PROFILE_HEADER, caller.profile.encode()),)
    records = [
        Outgoing(
            runtime.lms_topic,
            event.learner_id.encode(),
            orjson.dumps({**payload, "data": [entry]}),
            headers,
        )
        for entry, event in zip(payload["data"], events, strict=True)
    ]
    count_unmodelled(
        runtime.metrics,
        [event.verb for event in events if isinstance(event, UnmodelledEvent)],
        profile.label,
    )
    return await _send(request, "caliper", records, [event.event_id for event in events])


@router.post(
    "/events",
    summary="Receive native events (one, or an array)",
    response_model=Accepted,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": _body("event", native.NATIVE_EXAMPLE, "A native event or an array.")
    },
)
async def post_events(
    request: Request, caller: Annotated[Principal, Depends(principal)]
) -> Accepted:
    """Validate native events and put each on lms.events.v1, keyed by learner pseudonym."""
    require_ingest(caller)
    runtime = runtime_of(request)
    payload = await _read(request)
    if type(payload) is list:
        if not payload:
            raise BadRequest("the array holds no events", "")
        parts = [(event, f"[{index}]") for index, event in enumerate(payload)]
    else:
        parts = [(payload, "")]
    records: list[Outgoing] = []
    ids: list[str] = []
    try:
        for event, path in parts:
            normalised = native.normalise_native(event, runtime.pseudonymiser, path)
            records.append(
                Outgoing(runtime.lms_topic, normalised.learner_id.encode(), orjson.dumps(event))
            )
            ids.append(normalised.event_id)
    except InvalidEvent:
        runtime.metrics.events_rejected.labels("native").inc()
        raise
    return await _send(request, "native", records, ids)

"""What tutors use: a class's interventions, the review actions, learners and recommendations.

Every path names its class, and every endpoint checks first that the key may see that class
(an admin key, or a tutor key bound to it): 403 otherwise, for every class that is not the
key's, whether or not it exists.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime
from typing import Annotated, Any, Final

import orjson
import psycopg
from fastapi import APIRouter, Body, Depends, Path, Query, Request

from api.auth import require_class
from api.console.runtime import announce_decision
from api.console.webhooks import enqueue_approval, wake_sender
from api.delivery import Outgoing
from api.exceptions import BadRequest, Conflict, NotFound
from api.keys import Principal
from api.models import (
    STATUS_OF_ACTION,
    Action,
    ActionPage,
    ActionRequest,
    ActionResult,
    ActionView,
    EventView,
    InterventionPage,
    InterventionView,
    MasteryView,
    PredictionView,
    Recommendations,
    RecommendationView,
    Timeline,
    row_model,
)
from api.runtime import principal, runtime_of, utc_now
from api.store import InterventionFilter, Keyset, Store
from schemas.records import BehaviouralState, Intervention, LearnerPrompt

log = logging.getLogger(__name__)

# A class id may be an IRI (an LMS's course or section), slashes and all. It goes into the
# path percent-encoded as one segment (encodeURIComponent); ASGI servers decode %2F before
# routing, so the route takes the rest of the path up to its own suffix (``:path``).
router = APIRouter(prefix="/classes/{class_id:path}", tags=["tutors"])

ClassId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^\S+$",
        description="The class: any id without whitespace (an IRI too), percent-encoded.",
    ),
]
InterventionId = Annotated[
    str,
    Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$", description="Its UUID."),
]
LearnerId = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=r"^[^\s/]+$", description="Pseudonym."),
]
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"description": "Invalid parameter; `path` names it."},
    401: {"description": "No API key, or an unknown or revoked one."},
    403: {"description": "The key may not see this class."},
    429: {"description": "Over the key's rate; see Retry-After."},
}
_STATUSES: Final = ("pending_review", "sent", "dismissed", "escalated")


def _class(caller: Principal, class_id: str) -> str:
    require_class(caller, class_id)
    return class_id


def _encode_keyset(time: datetime, ident: str) -> str:
    raw = orjson.dumps([time.isoformat(), ident])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_keyset(cursor: str) -> Keyset:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        when, ident = orjson.loads(raw)
        if type(when) is not str or type(ident) is not str:
            raise ValueError("malformed")
        return Keyset(datetime.fromisoformat(when), ident)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as err:
        raise BadRequest("is not a cursor this API made", "query.cursor") from err


@router.get(
    "/interventions",
    summary="A class's interventions, newest first",
    response_model=InterventionPage,
    responses=_ERRORS,
)
async def list_interventions(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    class_id: ClassId,
    status: Annotated[
        str | None,
        Query(description="pending_review, sent, dismissed or escalated.", max_length=32),
    ] = None,
    state: Annotated[
        str | None,
        Query(description="A behavioural state (gaming, anchoring, ...).", max_length=32),
    ] = None,
    since: Annotated[datetime | None, Query(description="Events at or after this time.")] = None,
    until: Annotated[datetime | None, Query(description="Events before this time.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Most items on the page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=400, description="`next_cursor` of the previous page.")
    ] = None,
) -> InterventionPage:
    """Filter by review status, state and event time; page with ``cursor``."""
    _class(caller, class_id)
    if status is not None and status not in _STATUSES:
        raise BadRequest(f"must be one of {', '.join(_STATUSES)}", "query.status")
    if state is not None and state not in {s.value for s in BehaviouralState}:
        raise BadRequest(
            f"must be one of {', '.join(s.value for s in BehaviouralState)}", "query.state"
        )
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise BadRequest("needs a time zone (Z or +hh:mm)", f"query.{name}")
    runtime = runtime_of(request)
    after = _decode_keyset(cursor) if cursor else None
    limit = min(limit, runtime.settings.api.page_max)
    rows = await runtime.store.interventions(
        class_id, InterventionFilter(status, state, since, until), after, limit + 1
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode_keyset(rows[-1]["time"], rows[-1]["intervention_id"])
    return InterventionPage(
        items=[row_model(InterventionView, row) for row in rows], next_cursor=next_cursor
    )


@router.get(
    "/interventions/{intervention_id}",
    summary="One intervention",
    response_model=InterventionView,
    responses={**_ERRORS, 404: {"description": "No such intervention in this class."}},
)
async def get_intervention(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    class_id: ClassId,
    intervention_id: InterventionId,
) -> InterventionView:
    """Return an intervention with where its review stands."""
    _class(caller, class_id)
    row = await runtime_of(request).store.intervention(class_id, intervention_id)
    if row is None:
        raise NotFound("no such intervention in this class")
    result: InterventionView = row_model(InterventionView, row)
    return result


async def _act(
    request: Request,
    caller: Principal,
    class_id: str,
    intervention_id: str,
    action: Action,
    body: ActionRequest | None,
) -> ActionResult:
    _class(caller, class_id)
    note = body.note if body else None
    runtime = runtime_of(request)
    prompt: LearnerPrompt | None = None
    try:
        async with runtime.store.transaction() as conn:
            updated, recorded = await Store.mark_acted(
                conn,
                class_id,
                intervention_id,
                STATUS_OF_ACTION[action],
                caller.key_id,
                action,
                note,
            )
            if updated is None or recorded is None:
                raise NotFound("no such intervention in this class")
            # Every open console page of the class hears of it, on commit only.
            await announce_decision(
                conn,
                runtime.store.schema,
                {
                    "class_id": class_id,
                    "intervention_id": intervention_id,
                    "status": STATUS_OF_ACTION[action],
                    "action": action,
                    "by": caller.name,
                    "note": note,
                },
            )
            if action == "approve":
                prompt = LearnerPrompt.from_intervention(
                    Intervention.from_row(updated, status="sent"), caller.key_id, utc_now()
                )
                # The LMS's webhook joins the outbox in the approval's transaction, before the
                # prompt leaves: a store error here publishes nothing.
                await enqueue_approval(request, conn, updated, prompt, note)
                # The prompt is confirmed on its topic before the action commits: an approval
                # that answers 200 has reached learner.prompts.v1, and one that fails leaves
                # the intervention pending for another try.
                await runtime.delivery.send(
                    [
                        Outgoing(
                            runtime.prompts_topic,
                            prompt.learner_id.encode(),
                            prompt.model_dump_json().encode(),
                        )
                    ]
                )
    except psycopg.errors.UniqueViolation as err:
        raise Conflict("this intervention has been acted on already", "intervention_id") from err
    except NotFound:
        existing = await runtime.store.intervention(class_id, intervention_id)
        if existing is None:
            raise
        raise Conflict(
            f"this intervention is {existing['status']} already"
            + (f" (acted on by {existing['acted_by']})" if existing["acted_by"] else "")
            + "; an intervention is acted on once",
            "intervention_id",
        ) from None
    if prompt is not None:
        wake_sender(request)
    runtime.metrics.actions.labels(action).inc()
    log.info(
        "intervention %s of class %s: %s by key %s",
        intervention_id,
        class_id,
        action,
        caller.key_id,
    )
    return ActionResult(
        intervention=row_model(InterventionView, updated),
        action=row_model(ActionView, recorded),
        prompt_id=prompt.prompt_id if prompt is not None else None,
    )


_ACTION_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **_ERRORS,
    404: {"description": "No such intervention in this class."},
    409: {"description": "The intervention was acted on already (or sent by the policy)."},
    503: {"description": "The broker did not confirm the learner's prompt; nothing recorded."},
}
NoteBody = Annotated[ActionRequest | None, Body(description="An optional note.")]


@router.post(
    "/interventions/{intervention_id}/approve",
    summary="Approve: send the prompt to the learner",
    response_model=ActionResult,
    responses=_ACTION_RESPONSES,
)
async def approve(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    class_id: ClassId,
    intervention_id: InterventionId,
    body: NoteBody = None,
) -> ActionResult:
    """Publish the prompt to learner.prompts.v1 (confirmed before this answers) and record it."""
    return await _act(request, caller, class_id, intervention_id, "approve", body)


@router.post(
    "/interventions/{intervention_id}/dismiss",
    summary="Dismiss: the prompt is not sent",
    response_model=ActionResult,
    responses=_ACTION_RESPONSES,
)
async def dismiss(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    class_id: ClassId,
    intervention_id: InterventionId,
    body: NoteBody = None,
) -> ActionResult:
    """Record that the intervention is not to be sent."""
    return await _act(request, caller, class_id, intervention_id, "dismiss", body)


@router.post(
    "/interventions/{intervention_id}/escalate",
    summary="Escalate: a person follows up",
    response_model=ActionResult,
    responses=_ACTION_RESPONSES,
)
async def escalate(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    class_id: ClassId,
    intervention_id: InterventionId,
    body: NoteBody = None,
) -> ActionResult:
    """Record that the intervention needs a person's follow-up."""
    return await _act(request, caller, class_id, intervention_id, "escalate", body)


@router.get(
    "/interventions/{intervention_id}/actions",
    summary="The audit of one intervention",
    response_model=list[ActionView],
    responses=_ERRORS,
)
async def intervention_audit(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    class_id: ClassId,
    intervention_id: InterventionId,
) -> list[ActionView]:
    """Return who acted on the intervention, when, and with what note."""
    _class(caller, class_id)
    rows = await runtime_of(request).store.intervention_actions(class_id, intervention_id)
    return [row_model(ActionView, row) for row in rows]


@router.get(
    "/actions",
    summary="The class's audit of tutor actions, newest first",
    response_model=ActionPage,
    responses=_ERRORS,
)
async def class_audit(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    class_id: ClassId,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]{1,19}$")] = None,
) -> ActionPage:
    """Return the append-only audit; page with ``cursor``."""
    _class(caller, class_id)
    before = int(cursor) if cursor else None
    rows = await runtime_of(request).store.actions(class_id, before, limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = str(rows[-1]["action_id"])
    return ActionPage(items=[row_model(ActionView, row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/learners/{learner_id}/timeline",
    summary="A learner's timeline in the class",
    response_model=Timeline,
    responses={**_ERRORS, 404: {"description": "No record of this learner in this class."}},
)
async def timeline(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    class_id: ClassId,
    learner_id: LearnerId,
    limit: Annotated[int, Query(ge=1, le=500, description="Most rows of each kind.")] = 100,
) -> Timeline:
    """Return the learner's events, predicted states, mastery and interventions, newest first."""
    _class(caller, class_id)
    found = await runtime_of(request).store.timeline(class_id, learner_id, limit)
    if not any(found.values()):
        raise NotFound("no record of this learner in this class")
    return Timeline(
        learner_id=learner_id,
        class_id=class_id,
        events=[row_model(EventView, row) for row in found["events"]],
        predictions=[row_model(PredictionView, row) for row in found["predictions"]],
        mastery=[row_model(MasteryView, row) for row in found["mastery"]],
        interventions=[row_model(InterventionView, row) for row in found["interventions"]],
    )


@router.get(
    "/recommendations",
    summary="The class's current next-item recommendations",
    response_model=Recommendations,
    responses=_ERRORS,
)
async def recommendations(
    request: Request, caller: Annotated[Principal, Depends(principal)], class_id: ClassId
) -> Recommendations:
    """Return the latest recommendation of every learner of the class."""
    _class(caller, class_id)
    rows = await runtime_of(request).store.recommendations(class_id)
    return Recommendations(
        class_id=class_id, items=[row_model(RecommendationView, row) for row in rows]
    )

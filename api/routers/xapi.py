"""The xAPI 1.0.3 statement resource (``/xapi/statements``) and ``/xapi/about``."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, Any, Final, LiteralString

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response

from api.attachments import (
    Part,
    check_attachments,
    is_multipart,
    multipart_response,
    referenced_hashes,
    split_multipart,
)
from api.auth import require_ingest, require_statement_reader
from api.delivery import Outgoing
from api.exceptions import BadRequest, Conflict, NotFound
from api.keys import Principal
from api.runtime import Runtime, count_unmodelled, is_json, principal, runtime_of, utc_now
from api.statements import (
    Accepted,
    check_version,
    decode,
    decode_more,
    encode_more,
    formatted,
    same_statement,
)
from api.store import Store
from schemas.exceptions import InvalidEvent
from schemas.formats import is_iri, is_uuid, parse_timestamp
from schemas.profiles import PROFILE_HEADER

router = APIRouter(prefix="/xapi", tags=["xAPI"])

_VERSION_HEADER = Header(
    alias="X-Experience-API-Version",
    description="Required on every statement request: 1.0.3 (any 1.0.x is accepted).",
)
_SINGLE_PARAMS: Final = frozenset({"statementId", "voidedStatementId"})
_QUERY_PARAMS: Final = frozenset(
    {
        "agent",
        "verb",
        "activity",
        "registration",
        "related_activities",
        "related_agents",
        "since",
        "until",
        "limit",
        "format",
        "attachments",
        "ascending",
        "cursor",
    }
)
_FORMATS: Final = ("exact", "ids", "canonical")

SIMPLE_STATEMENT: Final = {
    "id": "fd41c918-b88b-4b20-a0a5-a4c32391aaa0",
    "timestamp": "2015-11-18T12:17:00+00:00",
    "actor": {
        "objectType": "Agent",
        "name": "Project Tin Can API",
        "mbox": "mailto:user@example.com",
    },
    "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}},
    "object": {
        "id": "http://example.com/xapi/activity/simplestatement",
        "definition": {"name": {"en-US": "simple statement"}},
    },
    "result": {"success": True, "response": "3/8"},
}
_STATEMENT_BODY: Final = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"type": "object", "description": "An xAPI 1.0.3 statement."},
                    {"type": "array", "items": {"type": "object"}, "minItems": 1},
                ]
            },
            "examples": {
                "statement": {"summary": "One statement", "value": SIMPLE_STATEMENT},
                "batch": {"summary": "An array of statements", "value": [SIMPLE_STATEMENT]},
            },
        },
        "multipart/mixed": {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": "Statements with attachment data (Communication 1.5.2): the "
                "statements as the first part (application/json), then one part per "
                "attachment with Content-Type, Content-Transfer-Encoding: binary and "
                "X-Experience-API-Hash (its sha2).",
            }
        },
    },
}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {
        "description": "Invalid statement, header, parameter, Content-Type or multipart body; "
        "`path` names the field."
    },
    401: {"description": "No API key, or an unknown or revoked one."},
    403: {"description": "The key lacks the ingest scope."},
    409: {"description": "A statement with this id, but other content, is stored already."},
    413: {"description": "The body is over the size limit."},
    415: {"description": "The body's Content-Encoding is not gzip, deflate or identity."},
    429: {"description": "Over the key's rate; see Retry-After."},
    503: {"description": "The broker or the database did not confirm in time."},
}


async def _read_body(request: Request) -> tuple[bytes, list[Part] | None]:
    """Return the statements' JSON and, for a multipart/mixed body, its attachment parts.

    The statement resource answers a wrong Content-Type with 400, as xAPI says (Communication
    1.5), not 415.
    """
    content_type = request.headers.get("content-type")
    body = await request.body()
    if is_json(content_type):
        return body, None
    if content_type is not None and is_multipart(content_type):
        return split_multipart(content_type, body)
    shown = (content_type or "none").split(";")[0][:60]
    raise BadRequest(
        f"Content-Type {shown!r} is not supported; send application/json, or multipart/mixed "
        "when attachment data comes with the statements",
        "header.Content-Type",
    )


async def _accept(
    runtime: Runtime,
    accepted: list[Accepted],
    stored: datetime,
    parts: list[Part],
    caller: Principal,
) -> None:
    """Store the statements and produce the new ones, all or nothing.

    The insert holds the new ids' rows until the broker has confirmed the records: a second
    request with one of those ids waits, then sees it stored. A failure anywhere rolls back.
    """
    async with runtime.store.transaction() as conn:
        inserted = await Store.insert_statements(
            conn, orjson.dumps([statement.stored for statement in accepted]).decode(), stored
        )
        existing = [statement for statement in accepted if statement.statement_id not in inserted]
        if existing:
            payloads = await Store.stored_payloads(conn, [s.statement_id for s in existing])
            for statement in existing:
                before = payloads.get(statement.statement_id)
                if before is not None and not same_statement(before, statement.stored):
                    raise Conflict(
                        f"statement {statement.statement_id} is stored already with other "
                        "content; statements are immutable (send it again under a new id)",
                        "id",
                    )
        fresh = [statement for statement in accepted if statement.statement_id in inserted]
        targets = [statement.voids for statement in fresh if statement.voids is not None]
        if targets:
            await Store.void(conn, targets)
        kept = set(
            referenced_hashes((statement.stored for statement in accepted), signatures=False)
        )
        await Store.insert_attachments(
            conn, [(p.sha2, p.content_type, p.content) for p in parts if p.sha2 in kept]
        )
        # the worker reads each record with the profile its key names
        headers = () if caller.profile is None else ((PROFILE_HEADER, caller.profile.encode()),)
        await runtime.delivery.send(
            Outgoing(runtime.lms_topic, statement.key, statement.raw, headers)
            for statement in fresh
        )
    runtime.metrics.events_accepted.labels("xapi").inc(len(fresh))
    count_unmodelled(
        runtime.metrics,
        [s.unmodelled for s in fresh if s.unmodelled is not None],
        runtime.profile_for(caller).label,
    )


async def _prepare(
    request: Request, caller: Principal, statement_id: str | None = None
) -> tuple[list[Accepted], datetime, list[Part]]:
    runtime = runtime_of(request)
    now = utc_now()
    # Milliseconds, as the statements show it: a query with since=<a statement's stored> must
    # not return that statement again.
    stored = now.replace(microsecond=now.microsecond // 1000 * 1000)
    try:
        body, parts = await _read_body(request)
        statements, is_array = decode(body)
        if statement_id is not None and is_array:
            raise InvalidEvent("", "PUT takes one statement, not an array", "xapi")
        check_attachments(statements, is_array, parts)
        accepted = runtime.preparer.prepare(
            statements,
            is_array=is_array,
            key_id=caller.key_id,
            stored=stored,
            statement_id=statement_id,
            profile=runtime.profile_for(caller),
        )
    except (InvalidEvent, BadRequest):
        runtime.metrics.events_rejected.labels("xapi").inc()
        raise
    return accepted, stored, parts or []


@router.post(
    "/statements",
    summary="Store statements (one, or an array)",
    responses={200: {"description": "The ids of the statements, in order."}, **_ERRORS},
    openapi_extra={"requestBody": _STATEMENT_BODY},
    response_model=list[str],
)
async def post_statements(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    version: Annotated[str | None, _VERSION_HEADER] = None,
) -> Response:
    """Validate and store statements; ids are assigned where absent.

    Every statement is produced to lms.events.v1, keyed by the learner's pseudonym, and the
    broker has confirmed it before this answers. A batch is accepted or refused whole.
    """
    require_ingest(caller)
    check_version(version)
    if request.query_params:
        name = next(iter(request.query_params.keys()))
        raise BadRequest("is not a parameter of POST statements", f"query.{name}")
    accepted, stored, parts = await _prepare(request, caller)
    await _accept(runtime_of(request), accepted, stored, parts, caller)
    response = Response(
        orjson.dumps([statement.statement_id for statement in accepted]),
        media_type="application/json",
        headers=_mapping_headers(runtime_of(request), caller, accepted),
    )
    return response


@router.put(
    "/statements",
    summary="Store one statement under the given id",
    status_code=204,
    responses={
        204: {"description": "Stored (or stored already with the same content)."},
        **_ERRORS,
    },
    openapi_extra={"requestBody": _STATEMENT_BODY},
)
async def put_statement(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    statement_id: Annotated[
        str | None, Query(alias="statementId", description="The statement's UUID.")
    ] = None,
    version: Annotated[str | None, _VERSION_HEADER] = None,
) -> Response:
    """Store one statement; 409 when the id is stored with a different statement."""
    require_ingest(caller)
    check_version(version)
    for name in request.query_params:
        if name != "statementId":
            raise BadRequest("is not a parameter of PUT statements", f"query.{name}")
    if statement_id is None:
        raise BadRequest("is required for PUT", "query.statementId")
    if not is_uuid(statement_id):
        raise BadRequest("is not a UUID", "query.statementId")
    accepted, stored, parts = await _prepare(request, caller, statement_id.lower())
    await _accept(runtime_of(request), accepted, stored, parts, caller)
    response = Response(
        status_code=204, headers=_mapping_headers(runtime_of(request), caller, accepted)
    )
    return response


UNMODELLED_HEADER: Final = "X-Tutorstream-Unmodelled"
"""Response header: how many of the statements are stored but not modelled (0 when all are)."""
PROFILE_RESPONSE_HEADER: Final = "X-Tutorstream-Profile"
"""Response header: the statement profile (id@version) the statements were read with."""


def _mapping_headers(
    runtime: Runtime, caller: Principal, accepted: list[Accepted]
) -> dict[str, str]:
    """Return the headers that say how the statements were read.

    xAPI fixes the body of a POST (the ids) and of a PUT (none), so the count of unmodelled
    statements and the profile travel in headers.
    """
    return {
        UNMODELLED_HEADER: str(sum(1 for s in accepted if s.unmodelled is not None)),
        PROFILE_RESPONSE_HEADER: runtime.profile_for(caller).label,
    }


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise BadRequest("must be true or false", f"query.{name}")
    return value == "true"


async def _statements_body(
    runtime: Runtime, document: Any, payloads: list[dict[str, Any]], attachments: bool
) -> tuple[bytes, str]:
    """Serialise a GET answer: JSON, or multipart/mixed with the attachments' data after it."""
    body = orjson.dumps(document)
    if not attachments:
        return body, "application/json"
    rows = await runtime.store.attachments(referenced_hashes(payloads))
    return multipart_response(
        body, (Part(row["sha2"], row["content_type"], bytes(row["content"])) for row in rows)
    )


def _tagged(body: bytes, media: str) -> Response:
    response = Response(body, media_type=media)
    response.headers["ETag"] = f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()}"'
    return response


def _query_conditions(
    runtime: Runtime, query: dict[str, Any]
) -> list[tuple[LiteralString, list[Any]]]:
    conditions: list[tuple[LiteralString, list[Any]]] = []
    if "verb" in query:
        conditions.append(("payload->'verb'->>'id' = %s", [query["verb"]]))
    if "activity" in query:
        if query.get("related_activities"):
            conditions.append(
                (
                    "jsonb_path_exists(payload, '$ ? (exists(@.object ? (@.id == $a)) "
                    "|| exists(@.context.contextActivities.* ? (@.id == $a)) "
                    "|| exists(@.object.object ? (@.id == $a)) "
                    "|| exists(@.object.context.contextActivities.* ? (@.id == $a)))', "
                    "jsonb_build_object('a', %s::text))",
                    [query["activity"]],
                )
            )
        else:
            conditions.append(
                (
                    "payload->'object'->>'id' = %s "
                    "AND coalesce(payload->'object'->>'objectType', 'Activity') = 'Activity'",
                    [query["activity"]],
                )
            )
    if "agent" in query:
        account = query["agent"]
        if query.get("related_agents"):
            conditions.append(
                (
                    "jsonb_path_exists(payload, '$.** ? (@.account.name == $n "
                    "&& @.account.homePage == $h)', jsonb_build_object('n', %s::text, "
                    "'h', %s::text))",
                    [account["name"], account["homePage"]],
                )
            )
        else:
            match = orjson.dumps(account).decode()
            member = orjson.dumps([{"account": account}]).decode()
            conditions.append(
                (
                    "(payload->'actor'->'account' = %s::jsonb "
                    "OR payload->'object'->'account' = %s::jsonb "
                    "OR payload->'actor'->'member' @> %s::jsonb "
                    "OR payload->'object'->'member' @> %s::jsonb)",
                    [match, match, member, member],
                )
            )
    if "registration" in query:
        conditions.append(
            ("lower(payload->'context'->>'registration') = %s", [query["registration"]])
        )
    if conditions:
        conditions = [_or_targeting(conditions)]
    if "since" in query:
        conditions.append(("stored > %s::timestamptz", [query["since"]]))
    if "until" in query:
        conditions.append(("stored <= %s::timestamptz", [query["until"]]))
    del runtime
    return conditions


def _or_targeting(
    conditions: list[tuple[LiteralString, list[Any]]],
) -> tuple[LiteralString, list[Any]]:
    """Match statements that meet the filter, or that target (StatementRef) one that does.

    Communication 2.1.4: a statement referring to a statement the filter matches is returned
    too, so a voiding statement comes back with a query that matched the statement it voided
    (which itself is not returned). One level of reference is followed. The subquery's
    unqualified ``payload`` is the target's.
    """
    clause: LiteralString = " AND ".join(clause for clause, _ in conditions)
    values = [value for _, params in conditions for value in params]
    combined: LiteralString = (
        "((" + clause + ") OR (xapi_statements.payload->'object'->>'objectType' = 'StatementRef' "
        "AND EXISTS (SELECT 1 FROM xapi_statements t "
        # CASE keeps the uuid cast off objects that are not StatementRefs.
        "WHERE t.statement_id = CASE WHEN xapi_statements.payload->'object'->>'objectType' = "
        "'StatementRef' THEN (xapi_statements.payload->'object'->>'id')::uuid END AND "
        + clause
        + ")))"
    )
    return combined, values + values


def _read_query(request: Request, runtime: Runtime) -> dict[str, Any]:
    params = request.query_params
    query: dict[str, Any] = {}
    if "agent" in params:
        try:
            agent = orjson.loads(params["agent"])
        except orjson.JSONDecodeError as err:
            raise BadRequest("must be an Agent or identified Group as JSON", "query.agent") from err
        account = runtime.preparer.pseudonym_account(agent) if type(agent) is dict else None
        if account is None:
            raise BadRequest(
                "must be an Agent or identified Group with one of mbox, mbox_sha1sum, openid, "
                "account",
                "query.agent",
            )
        query["agent"] = account
    for name in ("verb", "activity"):
        if name in params:
            if not is_iri(params[name]):
                raise BadRequest("must be an IRI", f"query.{name}")
            query[name] = params[name]
    if "registration" in params:
        if not is_uuid(params["registration"]):
            raise BadRequest("must be a UUID", "query.registration")
        query["registration"] = params["registration"].lower()
    for name in ("since", "until"):
        if name in params:
            try:
                query[name] = parse_timestamp(params[name], f"query.{name}", None).isoformat()
            except InvalidEvent as err:
                raise BadRequest(err.reason, err.path) from err
    for name in ("related_activities", "related_agents", "ascending"):
        if _flag(request, name):
            query[name] = True
    if "limit" in params:
        text = params["limit"]
        if not text.isdigit():
            raise BadRequest("must be a non-negative integer", "query.limit")
        query["limit"] = int(text)
    return query


@router.head("/statements", include_in_schema=False)
@router.get(
    "/statements",
    summary="Get a statement by id, or query statements",
    responses={
        200: {"description": "A statement, or a StatementResult {statements, more}."},
        **_ERRORS,
        404: {"description": "No such statement (or it is voided / not voided)."},
    },
)
async def get_statements(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    statement_id: Annotated[str | None, Query(alias="statementId")] = None,
    voided_statement_id: Annotated[str | None, Query(alias="voidedStatementId")] = None,
    statement_format: Annotated[
        str | None, Query(alias="format", description="exact (default), ids or canonical.")
    ] = None,
    version: Annotated[str | None, _VERSION_HEADER] = None,
) -> Response:
    """Return one statement (``statementId`` / ``voidedStatementId``) or a page of them.

    Stored statements are pseudonymised: every Agent is an account named by its pseudonym.
    """
    require_statement_reader(caller)
    check_version(version)
    runtime = runtime_of(request)
    params = request.query_params
    for name in params:
        if name not in _SINGLE_PARAMS and name not in _QUERY_PARAMS:
            raise BadRequest("is not a parameter of GET statements", f"query.{name}")
    form = statement_format or "exact"
    if form not in _FORMATS:
        raise BadRequest("must be exact, ids or canonical", "query.format")
    attachments = _flag(request, "attachments")
    language = request.headers.get("accept-language")
    if statement_id is not None or voided_statement_id is not None:
        if statement_id is not None and voided_statement_id is not None:
            raise BadRequest("give statementId or voidedStatementId, not both", "query")
        extra = [name for name in params if name not in (*_SINGLE_PARAMS, "format", "attachments")]
        if extra:
            raise BadRequest(
                "only format and attachments may go with a statement id", f"query.{extra[0]}"
            )
        wanted = statement_id if statement_id is not None else voided_statement_id
        name = "statementId" if statement_id is not None else "voidedStatementId"
        assert wanted is not None
        if not is_uuid(wanted):
            raise BadRequest("is not a UUID", f"query.{name}")
        row = await runtime.store.statement(wanted.lower())
        if row is None or row["voided"] != (voided_statement_id is not None):
            raise NotFound(
                "no such statement"
                if row is None
                else ("it is voided; ask by voidedStatementId" if row["voided"] else "not voided")
            )
        payload = row["payload"]
        body, media = await _statements_body(
            runtime, formatted(payload, form, language), [payload], attachments
        )
        response = _tagged(body, media)
        response.headers["Last-Modified"] = format_datetime(
            row["stored"].astimezone(UTC), usegmt=True
        )
        return response

    if "cursor" in params:
        if len(params) > 1:
            raise BadRequest("a cursor carries its query; send it alone", "query")
        query, after = decode_more(params["cursor"])
    else:
        query, after = _read_query(request, runtime), None
        query["format"] = form
        if attachments:
            query["attachments"] = True
    page_max = runtime.settings.api.page_max
    limit = query.get("limit") or page_max
    limit = min(limit, page_max)
    rows = await runtime.store.query_statements(
        _query_conditions(runtime, query),
        ascending=bool(query.get("ascending")),
        after=after,
        limit=limit + 1,
    )
    more = ""
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        more = "/xapi/statements?cursor=" + encode_more(query, last["stored"], last["statement_id"])
    payloads = [row["payload"] for row in rows]
    result = {
        "statements": [
            formatted(payload, query.get("format", "exact"), language) for payload in payloads
        ],
        "more": more,
    }
    body, media = await _statements_body(runtime, result, payloads, bool(query.get("attachments")))
    return _tagged(body, media)


@router.head("/about", include_in_schema=False)
@router.get(
    "/about",
    summary="What this LRS supports",
    responses={200: {"content": {"application/json": {"example": {"version": ["1.0.3"]}}}}},
)
async def about() -> Response:
    """Return the xAPI versions supported; needs no key and no version header."""
    return Response(orjson.dumps({"version": ["1.0.3"]}), media_type="application/json")

"""The console's pages and actions, under ``/console``.

Pages need a session (a signed, HTTP-only cookie made at sign-in); without one a page sends the
tutor to sign in, and a live stream or an action answers 401. Every action (a POST) must carry
the session's CSRF token, as the form field ``csrf`` or the header ``X-CSRF-Token``: 403
otherwise. A tutor sees only the classes of their claim: any other class answers 403 with no
data, and an action on it is written to ``console_audit``.

The roster push (``POST /console/api/classes/{class}/roster``) is for machines: an API key with
the admin or ingest scope, JSON ``{"learners": [{"learner", "name", "kind"?}]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from types import SimpleNamespace
from typing import Annotated, Any, Final
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.console import roster as roster_store
from api.console import webhooks
from api.console.evidence import evidence_of_many
from api.console.exceptions import ConsoleError, RosterError, SignInFailed
from api.console.oidc import new_login
from api.console.runtime import STATIC, Console, class_from_segment, class_segment, console_of
from api.console.session import Session, csrf_matches
from api.exceptions import ApiError, BadRequest, Conflict, NotFound, Unavailable
from api.feed import FeedItem, Subscription
from api.keys import Principal, Scope
from api.models import ActionRequest
from api.routers import live as live_feed
from api.routers import tutor
from api.runtime import principal, runtime_of
from api.store import INTERVENTION_COLUMNS

log = logging.getLogger(__name__)

router = APIRouter(prefix="/console", include_in_schema=False)
_ACTIONS: Final = ("approve", "dismiss", "escalate")
_PAGE: Final = 100
_MAX_ROSTER_BYTES: Final = 5 * 1024 * 1024


class _Refused(Exception):
    """Raised inside a handler to answer with an error page (status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    console = console_of(request)
    response = console.templates.TemplateResponse(request, name, context, status_code=status)
    # Pages show names: never cached, never framed.
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"
    response.headers["content-security-policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self' "
        + (console.oidc.issuer if console.oidc else "")
    )
    response.headers["referrer-policy"] = "same-origin"
    return response


def _error(request: Request, status: int, message: str, session: Session | None = None) -> Response:
    return _page(request, "error.html", {"message": message, "session": session}, status)


def _session(request: Request) -> Session | None:
    return console_of(request).cookies.session(request)


async def _audit(
    request: Request,
    actor: str,
    class_id: str,
    what: str,
    target: str | None,
    outcome: str,
    detail: str | None = None,
) -> None:
    async with runtime_of(request).store.connection() as conn:
        await conn.execute(
            "INSERT INTO console_audit (actor, class_id, what, target, outcome, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (actor, class_id, what, target, outcome, detail),
        )


def _class_or_404(segment: str) -> str:
    class_id = class_from_segment(segment)
    if class_id is None or len(class_id) > 200:
        raise _Refused(404, "There is no such class.")
    return class_id


def _signed_in(request: Request) -> Session | Response:
    session = _session(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?next={_quote(target)}", status_code=303)
    return session


def _quote(text: str) -> str:
    return quote(text, safe="")


async def _checked_action(request: Request, segment: str, what: str) -> tuple[Session, str, Any]:
    """Check session, class and CSRF token of an action; return them with the parsed form.

    Raises:
        _Refused: 401 without a session, 403 for another class (audited) or a missing token.
    """
    session = _session(request)
    if session is None:
        raise _Refused(401, "Your session has ended. Sign in again.")
    class_id = _class_or_404(segment)
    form = await request.form()
    token = request.headers.get("x-csrf-token") or form.get("csrf")
    if not isinstance(token, str) or not csrf_matches(session, token):
        raise _Refused(403, "This action lacks its CSRF token; reload the page and try again.")
    if not session.may_see(class_id):
        await _audit(request, session.actor, class_id, what, None, "refused", "not their class")
        raise _Refused(403, "You are not a tutor of this class.")
    return session, class_id, form


# --- sign-in ---------------------------------------------------------------------------------


def _redirect_uri(request: Request) -> str:
    configured = console_of(request).settings.console.redirect_url
    return configured or str(request.url_for("console_callback"))


@router.get("/login", name="console_login")
async def login(request: Request, next: str = "/console/") -> Response:
    """Send the tutor to the school's provider with state, nonce and a PKCE challenge."""
    console = console_of(request)
    if console.oidc is None:
        return _error(
            request,
            503,
            "Sign-in is not configured: set TUTORSTREAM_CONSOLE__OIDC_ISSUER, "
            "TUTORSTREAM_CONSOLE__OIDC_CLIENT_ID and TUTORSTREAM_CONSOLE__OIDC_CLIENT_SECRET.",
        )
    # Only a path of this console: never an open redirect.
    if not next.startswith("/console/") or next.startswith("//"):
        next = "/console/"
    attempt = new_login(next)
    try:
        url = await console.oidc.authorization_url(attempt, _redirect_uri(request))
    except SignInFailed as err:
        return _error(request, 503, str(err))
    response = RedirectResponse(url, status_code=303)
    console.cookies.start_login(response, attempt)
    return response


@router.get("/callback", name="console_callback")
async def callback(request: Request) -> Response:
    """Finish a sign-in: check state, exchange the code, check the ID token, start a session."""
    console = console_of(request)
    if console.oidc is None:
        return _error(request, 503, "Sign-in is not configured.")
    attempt = console.cookies.login(request)
    params = request.query_params
    failure: str | None = None
    if attempt is None:
        failure = "This sign-in has expired or was started elsewhere."
    elif params.get("error"):
        failure = (
            f"The school's sign-in refused: {params.get('error_description') or params['error']}."
        )
    elif not params.get("state") or not secrets.compare_digest(
        attempt.state.encode(), params["state"].encode()
    ):
        failure = "The sign-in's state does not match."
    elif params.get("iss") and params["iss"].rstrip("/") != console.oidc.issuer:
        # RFC 9207: the answer names the provider that sent it; another one is a mix-up.
        failure = "The sign-in came back from another provider."
    elif not params.get("code"):
        failure = "The sign-in came back without a code."
    if failure is None and attempt is not None:
        try:
            token = await console.oidc.exchange(params["code"], attempt, _redirect_uri(request))
            identity = await console.oidc.verify(token, attempt.nonce)
        except SignInFailed as err:
            failure = str(err)
        else:
            response = RedirectResponse(attempt.next_path, status_code=303)
            console.cookies.end_login(response)
            console.cookies.start_session(response, identity)
            log.info("console: %s signed in (%d classes)", identity.subject, len(identity.classes))
            return response
    refused = _page(request, "signin_failed.html", {"message": failure, "session": None}, 401)
    console.cookies.end_login(refused)
    console.cookies.end_session(refused)
    return refused


@router.post("/logout", name="console_logout")
async def logout(request: Request) -> Response:
    """End the session (CSRF-checked) and end the provider's session too when it can."""
    console = console_of(request)
    session = _session(request)
    form = await request.form()
    if session is not None:
        token = request.headers.get("x-csrf-token") or form.get("csrf")
        if not isinstance(token, str) or not csrf_matches(session, token):
            return _error(request, 403, "This action lacks its CSRF token.", session)
    target = "/console/"
    if console.oidc is not None and session is not None:
        with contextlib.suppress(SignInFailed):
            target = await console.oidc.logout_url(str(request.url_for("console_home"))) or target
    response = RedirectResponse(target, status_code=303)
    console.cookies.end_session(response)
    return response


# --- pages -----------------------------------------------------------------------------------


@router.get("/", name="console_home")
async def home(request: Request) -> Response:
    """The tutor's classes, or the sign-in page."""
    session = _session(request)
    if session is None:
        return _page(
            request,
            "signin.html",
            {"session": None, "configured": console_of(request).oidc is not None},
        )
    classes = sorted(session.classes)
    counts: dict[str, int] = {}
    if classes:
        async with runtime_of(request).store.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT class_id, count(*) FROM interventions WHERE class_id = ANY(%s) "
                "AND status = 'pending_review' GROUP BY class_id",
                (classes,),
            )
            counts = {row[0]: int(row[1]) for row in await cur.fetchall()}
    return _page(request, "home.html", {"session": session, "classes": classes, "pending": counts})


def _opened_names(
    console: Console, class_id: str, rows: Iterable[Mapping[str, Any]]
) -> dict[str, str]:
    """Return the roster's names of rows that carry their sealed entry (an outer join)."""
    if console.names is None:
        return {}
    try:
        entries = roster_store.open_entries(class_id, rows, console.names)
    except RosterError:
        # Sealed under another key (a rotated TUTORSTREAM_ROSTER_KEY): pseudonyms, not an error.
        log.warning("class %s: roster entries do not open with the roster key", class_id)
        return {}
    return {learner_id: entry.name for learner_id, entry in entries.items()}


async def _cards(
    console: Console,
    conn: AsyncConnection[Any],
    class_id: str,
    rows: list[dict[str, Any]],
    names: dict[str, str],
) -> list[SimpleNamespace]:
    """Return the cards of interventions: each row with the learner's name and the evidence.

    A card is an object, not a dict: the templates read its fields as attributes, which Jinja
    looks up first (on a dict each would raise and catch an AttributeError).
    """
    words = console.evidence
    # An intervention's inputs are in the past of its event: its words never change, so every
    # tutor of the class (and every reload) reads them from here after the first. The tutors
    # of a class fetch a new card at the same moment: the first computes, the others wait.
    missing = [row for row in rows if row["intervention_id"] not in words]
    computing = console.evidence_computing
    waits = {computing[r["intervention_id"]] for r in missing if r["intervention_id"] in computing}
    mine = [row for row in missing if row["intervention_id"] not in computing]
    if mine:
        done = asyncio.get_running_loop().create_future()
        for row in mine:
            computing[row["intervention_id"]] = done
        try:
            found = await evidence_of_many(conn, class_id, mine)
            for ident, evidence in found.items():
                words[ident] = evidence.words
        finally:
            for row in mine:
                computing.pop(row["intervention_id"], None)
            done.set_result(None)
    for wait in waits:
        await wait
    # What another request failed to compute (its error is its own), this one computes.
    failed = [row for row in missing if row["intervention_id"] not in words]
    if failed and waits:
        found = await evidence_of_many(conn, class_id, failed)
        for ident, evidence in found.items():
            words[ident] = evidence.words
    return [
        SimpleNamespace(
            **row, name=names.get(row["learner_id"]), evidence=words.get(row["intervention_id"])
        )
        for row in rows
    ]


# The review queue in one statement: the pending interventions, then the latest decided ones,
# each with its learner's sealed roster entry when the roster has one.
_QUEUE_SQL: Final = (
    "SELECT q.*, r.entry_nonce, r.entry_sealed FROM ("
    f"(SELECT {INTERVENTION_COLUMNS}, 0 AS part FROM interventions "
    "WHERE class_id = %(class)s AND status = 'pending_review' "
    "ORDER BY time DESC, intervention_id DESC LIMIT %(pending)s) "
    "UNION ALL "
    f"(SELECT {INTERVENTION_COLUMNS}, 1 AS part FROM interventions "
    "WHERE class_id = %(class)s AND status <> 'pending_review' "
    "ORDER BY time DESC, intervention_id DESC LIMIT %(decided)s)"
    ") q LEFT JOIN roster r ON r.class_id = q.class_id AND r.learner_id = q.learner_id "
    "ORDER BY q.part, q.time DESC, q.intervention_id DESC"
)
_CARD_SQL: Final = (
    f"SELECT {', '.join('i.' + c.strip() for c in INTERVENTION_COLUMNS.split(','))}, "
    "r.entry_nonce, r.entry_sealed FROM interventions i "
    "LEFT JOIN roster r ON r.class_id = i.class_id AND r.learner_id = i.learner_id "
    "WHERE i.intervention_id = %s AND i.class_id = %s"
)
_QUEUE_COUNTS_SQL: Final = (
    "SELECT (SELECT count(*) FROM roster WHERE class_id = %s), "
    "(SELECT count(*) FROM webhook_deliveries WHERE class_id = %s AND status = 'dead')"
)
_DECIDED: Final = 10


async def _queue_context(request: Request, session: Session, class_id: str) -> dict[str, Any]:
    console = console_of(request)
    # One connection and one round trip (a pipeline of two statements) for the whole page: a
    # page's latency under load is mostly its waits for the event loop, one after each answer.
    async with runtime_of(request).store.connection() as conn:
        async with conn.pipeline():
            listed = conn.cursor(row_factory=dict_row)
            await listed.execute(
                _QUEUE_SQL, {"class": class_id, "pending": _PAGE, "decided": _DECIDED}
            )
            counted = conn.cursor()
            await counted.execute(_QUEUE_COUNTS_SQL, (class_id, class_id))
            rows = await listed.fetchall()
            counts = await counted.fetchone()
        names = _opened_names(console, class_id, rows)
        for row in rows:
            del row["entry_nonce"], row["entry_sealed"]
        cards = await _cards(console, conn, class_id, rows, names)
    pending = sum(1 for row in rows if row["part"] == 0)
    return {
        "session": session,
        "class_id": class_id,
        "segment": class_segment(class_id),
        "cards": cards[:pending],
        "decided": cards[pending:],
        "roster_count": int(counts[0]) if counts else 0,
        "dead_letters": int(counts[1]) if counts else 0,
    }


async def _viewable(request: Request, segment: str) -> tuple[Session, str] | Response:
    found = _signed_in(request)
    if isinstance(found, Response):
        return found
    class_id = class_from_segment(segment)
    if class_id is None:
        return _error(request, 404, "There is no such class.", found)
    if not found.may_see(class_id):
        await _audit(request, found.actor, class_id, "view", None, "refused", "not their class")
        return _error(request, 403, "You are not a tutor of this class.", found)
    return found, class_id


@router.get("/classes/{segment}/", name="console_queue")
async def queue(request: Request, segment: str) -> Response:
    """The class's review queue: pending interventions with their evidence, live."""
    found = await _viewable(request, segment)
    if isinstance(found, Response):
        return found
    session, class_id = found
    return _page(request, "queue.html", await _queue_context(request, session, class_id))


@router.get("/classes/{segment}/interventions/{intervention_id}/card")
async def card(request: Request, segment: str, intervention_id: str) -> Response:
    """One intervention's card (for the live queue to insert)."""
    session = _session(request)
    if session is None:
        return Response("sign in again", status_code=401)
    class_id = class_from_segment(segment)
    if class_id is None or not session.may_see(class_id):
        return Response("not a class of yours", status_code=403)
    console = console_of(request)
    # Every tutor of the class fetches the card as the live event arrives: one connection,
    # one statement (the roster entry joined), and the evidence only the first time.
    async with runtime_of(request).store.connection() as conn:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_CARD_SQL, (intervention_id[:36], class_id))
            row = await cur.fetchone()
        if row is None:
            return Response("no such intervention", status_code=404)
        names = _opened_names(console, class_id, [row])
        del row["entry_nonce"], row["entry_sealed"]
        cards = await _cards(console, conn, class_id, [row], names)
    return _page(
        request,
        "card.html",
        {"card": cards[0], "session": session, "segment": segment, "class_id": class_id},
    )


@router.get("/classes/{segment}/live")
async def live(request: Request, segment: str) -> Response:
    """Server-sent events: ``intervention`` (a new one's id) and ``decision`` (a tutor acted)."""
    session = _session(request)
    if session is None:
        return Response("sign in again", status_code=401)
    class_id = class_from_segment(segment)
    if class_id is None or not session.may_see(class_id):
        return Response("not a class of yours", status_code=403)
    runtime = runtime_of(request)
    console = console_of(request)
    try:
        # A reconnecting page sends the id of the last event it had (browsers do this by
        # themselves): what it missed meanwhile comes first, as on the API's own feed.
        since = live_feed._since(None, request.headers.get("last-event-id"))
        subscription, missed = await live_feed._start(runtime.feed, class_id, since)
    except ApiError as err:
        return Response(err.reason, status_code=400 if isinstance(err, BadRequest) else 503)
    heartbeat_s = runtime.settings.api.heartbeat_s

    async def frames() -> AsyncIterator[bytes]:
        async with console.hub.follow(class_id) as decisions:
            try:
                yield b"retry: 2000\n\n" + b"".join(_sse_item(subscription, i) for i in missed)
                subscription.caught_up = True
                while not subscription.overflowed and time.time() < session.expires_at:
                    item_task = asyncio.ensure_future(subscription.next(heartbeat_s))
                    decision_task = asyncio.ensure_future(decisions.get())
                    done, _ = await asyncio.wait(
                        {item_task, decision_task}, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in (item_task, decision_task):
                        if task not in done:
                            task.cancel()
                    if decision_task in done:
                        data = orjson.dumps(decision_task.result())
                        yield b"event: decision\ndata: " + data + b"\n\n"
                    if item_task in done:
                        item = item_task.result()
                        if item is None:
                            yield b"event: heartbeat\ndata: {}\n\n"
                        else:
                            yield _sse_item(subscription, item)
            finally:
                runtime.feed.unsubscribe(subscription)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _sse_item(subscription: Subscription, item: FeedItem) -> bytes:
    cursor = subscription.cursor_for(item) or item.cursor
    data = orjson.dumps({"intervention_id": item.intervention_id})
    return b"id: " + cursor.encode() + b"\nevent: intervention\ndata: " + data + b"\n\n"


@router.post("/classes/{segment}/interventions/{intervention_id}/{action}")
async def act(request: Request, segment: str, intervention_id: str, action: str) -> Response:
    """Approve, dismiss or escalate; the decision shows at once on every open queue."""
    if action not in _ACTIONS:
        return Response("no such action", status_code=404)
    try:
        session, class_id, form = await _checked_action(request, segment, action)
    except _Refused as refused:
        return _answer(request, refused.status, refused.message)
    note_value = form.get("note")
    note = note_value.strip()[:2000] if isinstance(note_value, str) and note_value.strip() else None
    caller = Principal(
        key_id=session.actor,
        name=session.name,
        scopes=frozenset({Scope.TUTOR}),
        class_ids=session.classes,
    )
    try:
        result = await tutor._act(  # the API's own action: same rules, same audit
            request,
            caller,
            class_id,
            intervention_id,
            action,  # type: ignore[arg-type]
            ActionRequest(note=note) if note else None,
        )
    except (Conflict, NotFound, Unavailable) as err:
        return _answer(
            request,
            409 if isinstance(err, Conflict) else 404 if isinstance(err, NotFound) else 503,
            err.reason,
        )
    except ApiError as err:
        return _answer(request, 400, err.reason)
    if request.headers.get("x-console-fetch"):
        return Response(
            orjson.dumps({"status": result.intervention.status}),
            media_type="application/json",
        )
    return RedirectResponse(f"/console/classes/{segment}/", status_code=303)


def _answer(request: Request, status: int, message: str) -> Response:
    if request.headers.get("x-console-fetch"):
        return Response(
            orjson.dumps({"error": message}), status_code=status, media_type="application/json"
        )
    return _error(request, status, message, _session(request))


# --- roster and webhooks ---------------------------------------------------------------------


async def _settings_context(request: Request, session: Session, class_id: str) -> dict[str, Any]:
    async with runtime_of(request).store.connection() as conn:
        count = await roster_store.roster_size(conn, class_id)
        endpoint = await webhooks.endpoint_of(conn, class_id)
        sent = await webhooks.deliveries(conn, class_id)
    return {
        "session": session,
        "class_id": class_id,
        "segment": class_segment(class_id),
        "roster_count": count,
        "roster_on": console_of(request).names is not None,
        "endpoint": endpoint,
        "deliveries": sent,
    }


@router.get("/classes/{segment}/settings", name="console_settings")
async def class_settings(request: Request, segment: str) -> Response:
    """The class's roster, its webhook endpoint and its deliveries (dead letters first)."""
    found = await _viewable(request, segment)
    if isinstance(found, Response):
        return found
    session, class_id = found
    return _page(request, "settings.html", await _settings_context(request, session, class_id))


@router.post("/classes/{segment}/roster")
async def import_roster(request: Request, segment: str) -> Response:
    """Import a roster CSV: all of it, or nothing of it with the row and column at fault."""
    try:
        session, class_id, form = await _checked_action(request, segment, "roster import")
    except _Refused as refused:
        return _answer(request, refused.status, refused.message)
    console = console_of(request)
    context = await _settings_context(request, session, class_id)
    upload = form.get("file")
    if console.names is None:
        context["roster_error"] = "The roster is off: set TUTORSTREAM_ROSTER_KEY."
        return _page(request, "settings.html", context, 503)
    if upload is None or isinstance(upload, str):
        context["roster_error"] = "Choose a CSV file to import."
        return _page(request, "settings.html", context, 400)
    raw = await upload.read(_MAX_ROSTER_BYTES + 1)
    try:
        if len(raw) > _MAX_ROSTER_BYTES:
            raise RosterError(f"the file is larger than {_MAX_ROSTER_BYTES // 1024 // 1024} MiB")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise RosterError("the file is not UTF-8 text") from err
        entries = roster_store.parse_csv(text)
    except RosterError as err:
        await _audit(request, session.actor, class_id, "roster import", None, "failed", str(err))
        context["roster_error"] = f"Nothing was imported: {err}."
        return _page(request, "settings.html", context, 400)
    runtime = runtime_of(request)
    async with runtime.store.transaction() as conn:
        written = await roster_store.store_roster(
            conn, class_id, entries, runtime.pseudonymiser, console.names
        )
    await _audit(
        request, session.actor, class_id, "roster import", None, "done", f"{written} learners"
    )
    context = await _settings_context(request, session, class_id)
    context["roster_done"] = f"Imported {written} learners."
    return _page(request, "settings.html", context)


@router.post("/classes/{segment}/webhook")
async def set_webhook(request: Request, segment: str) -> Response:
    """Name the class's endpoint; a new signing secret is made and shown once."""
    try:
        session, class_id, form = await _checked_action(request, segment, "webhook")
    except _Refused as refused:
        return _answer(request, refused.status, refused.message)
    console = console_of(request)
    context = await _settings_context(request, session, class_id)
    url = form.get("url")
    if console.secrets is None:
        context["webhook_error"] = "Webhooks need TUTORSTREAM_ROSTER_KEY to keep secrets."
        return _page(request, "settings.html", context, 503)
    secret = webhooks.new_secret()
    try:
        async with runtime_of(request).store.transaction() as conn:
            await webhooks.set_endpoint(conn, class_id, str(url or ""), secret, console.secrets)
    except ConsoleError as err:
        context["webhook_error"] = str(err)
        return _page(request, "settings.html", context, 400)
    await _audit(request, session.actor, class_id, "webhook", str(url), "done")
    context = await _settings_context(request, session, class_id)
    context["new_secret"] = secret
    return _page(request, "settings.html", context)


@router.post("/api/classes/{segment}/roster")
async def push_roster(
    request: Request, segment: str, caller: Annotated[Principal, Depends(principal)]
) -> Response:
    """The LMS's push: JSON ``{"learners": [{"learner", "name", "kind"?}]}``, all or nothing."""
    class_id = class_from_segment(segment)
    if class_id is None:
        return _json(404, {"error": "no such class"})
    if not (caller.is_admin or Scope.INGEST in caller.scopes):
        await _audit(request, caller.key_id, class_id, "roster push", None, "refused")
        return _json(403, {"error": "this key may not push a roster (admin or ingest scope)"})
    console = console_of(request)
    if console.names is None:
        return _json(503, {"error": "the roster is off: set TUTORSTREAM_ROSTER_KEY"})
    try:
        document = orjson.loads(await request.body())
        learners = document["learners"] if isinstance(document, dict) else None
        if not isinstance(learners, list):
            raise RosterError('the body must be {"learners": [...]}')
        entries = []
        for index, item in enumerate(learners):
            if not isinstance(item, dict):
                raise RosterError(f"learners[{index}] must be an object")
            values = {k: item.get(k, "") for k in ("learner", "name", "kind")}
            if not all(isinstance(v, str) for v in values.values()):
                raise RosterError(f"learners[{index}]: learner, name and kind are strings")
            try:
                entries.append(
                    roster_store.check_entry(
                        values["learner"].strip(), values["name"].strip(), values["kind"], None
                    )
                )
            except RosterError as err:
                raise RosterError(f"learners[{index}].{err.column}: {err.reason}") from err
    except orjson.JSONDecodeError:
        return _json(400, {"error": "the body is not JSON"})
    except (RosterError, KeyError) as err:
        return _json(400, {"error": str(err)})
    runtime = runtime_of(request)
    async with runtime.store.transaction() as conn:
        written = await roster_store.store_roster(
            conn, class_id, entries, runtime.pseudonymiser, console.names
        )
    await _audit(request, caller.key_id, class_id, "roster push", None, "done", f"{written}")
    return _json(200, {"class_id": class_id, "learners": written})


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


# --- the learner page ------------------------------------------------------------------------


@router.get("/classes/{segment}/learners/{learner_id}", name="console_learner")
async def learner(request: Request, segment: str, learner_id: str) -> Response:
    """A learner's timeline, mastery per skill, recommendation and past interventions."""
    found = await _viewable(request, segment)
    if isinstance(found, Response):
        return found
    session, class_id = found
    console = console_of(request)
    store = runtime_of(request).store
    learner_id = learner_id[:128]
    # One connection, two round trips: the timeline's four statements, then the current
    # recommendation and the roster entry.
    async with store.connection() as conn:
        timeline = await store.timeline(class_id, learner_id, 50, conn=conn)
        if not any(timeline.values()):
            return _error(request, 404, "No record of this learner in this class.", session)
        async with conn.pipeline():
            recommended = conn.cursor(row_factory=dict_row)
            await recommended.execute(
                "SELECT item_id, skill_ids, p_success, reason, time FROM current_recommendations "
                "WHERE class_id = %s AND learner_id = %s",
                (class_id, learner_id),
            )
            entry = conn.cursor(row_factory=dict_row)
            await entry.execute(
                "SELECT learner_id, entry_nonce, entry_sealed FROM roster "
                "WHERE class_id = %s AND learner_id = %s",
                (class_id, learner_id),
            )
            recommendation = await recommended.fetchone()
            names = _opened_names(console, class_id, await entry.fetchall())
    events = timeline["events"]
    interventions = [
        {**row, "followed": followed(events, row["time"])} for row in timeline["interventions"]
    ]
    mastery: dict[str, float] = {}
    for row in timeline["mastery"]:
        mastery.setdefault(row["skill_id"], float(row["mastery"]))
    return _page(
        request,
        "learner.html",
        {
            "session": session,
            "class_id": class_id,
            "segment": class_segment(class_id),
            "learner_id": learner_id,
            "name": names.get(learner_id),
            "events": events,
            "interventions": interventions,
            "mastery": sorted(mastery.items()),
            "recommendation": recommendation,
        },
    )


def followed(events: list[dict[str, Any]], since: Any, answers: int = 10) -> str:
    """Say what a learner did after an intervention: their next answers, and how many were right.

    Args:
        events: the learner's recent events, any order.
        since: the intervention's time.
        answers: how many answers after it to count at most.
    """
    after = sorted(
        (e for e in events if e["time"] > since and e["event_type"] == "answer_submit"),
        key=lambda e: e["time"],
    )[:answers]
    if not after:
        return "no answer since"
    right = sum(1 for e in after if e["correct"] is True)
    durations = sorted(e["duration_s"] for e in after if e["duration_s"] is not None)
    pace = f", typically {durations[len(durations) // 2]:.0f} s each" if durations else ""
    return f"{right} of the next {len(after)} answers right{pace}"


@router.get("/classes/{segment}/overview", name="console_overview")
async def overview(request: Request, segment: str) -> Response:
    """The class at a glance: interventions by state and review status, activity, mastery."""
    found = await _viewable(request, segment)
    if isinstance(found, Response):
        return found
    session, class_id = found
    # The three statements in one round trip (a pipeline).
    async with runtime_of(request).store.connection() as conn, conn.pipeline():
        by_state = conn.cursor(row_factory=dict_row)
        await by_state.execute(
            "SELECT state, count(*) FILTER (WHERE status = 'pending_review') AS pending, "
            "count(*) FILTER (WHERE status = 'sent') AS sent, "
            "count(*) FILTER (WHERE status = 'dismissed') AS dismissed, "
            "count(*) FILTER (WHERE status = 'escalated') AS escalated, count(*) AS total "
            "FROM interventions WHERE class_id = %s AND time > now() - INTERVAL '1 day' "
            "GROUP BY state ORDER BY total DESC",
            (class_id,),
        )
        active = conn.cursor(row_factory=dict_row)
        await active.execute(
            "SELECT count(DISTINCT learner_id) AS learners, count(*) AS events, "
            "count(*) FILTER (WHERE event_type = 'answer_submit') AS answers, "
            "count(*) FILTER (WHERE correct) AS right "
            "FROM events WHERE class_id = %s AND time > now() - INTERVAL '1 hour'",
            (class_id,),
        )
        by_skill = conn.cursor(row_factory=dict_row)
        await by_skill.execute(
            "SELECT skill_id, avg(mastery) AS mastery, count(*) AS learners FROM ("
            "SELECT DISTINCT ON (learner_id, skill_id) learner_id, skill_id, mastery "
            "FROM skill_mastery WHERE class_id = %s AND time > now() - INTERVAL '1 day' "
            "ORDER BY learner_id, skill_id, time DESC) latest "
            "GROUP BY skill_id ORDER BY mastery",
            (class_id,),
        )
        states = await by_state.fetchall()
        activity = await active.fetchone()
        skills = await by_skill.fetchall()
    return _page(
        request,
        "overview.html",
        {
            "session": session,
            "class_id": class_id,
            "segment": class_segment(class_id),
            "states": states,
            "activity": activity,
            "skills": skills,
        },
    )


# --- links from elsewhere (the Grafana boards) -----------------------------------------------

_OPENS: Final = ("queue", "overview", "learner")


@router.get("/open/{page}", name="console_open")
async def open_page(
    request: Request,
    page: str,
    class_id: Annotated[str, Query(alias="class")] = "",
    learner: str = "",
) -> Response:
    """Send a link that names its class in the query string to the console's page for it.

    Links from other tools (the Grafana boards) carry ids percent-encoded as query parameters
    (``?class=…&learner=…``), which every proxy passes as they are; the pages' own paths name
    a class by :func:`class_segment`, which such a tool cannot write. ``page`` is ``queue``,
    ``overview`` or ``learner`` (which needs ``learner``). Whether the tutor may see the class
    is the page's own check, after this redirect.
    """
    if page not in _OPENS:
        return _error(request, 404, "There is no such page: queue, overview or learner.")
    if not class_id or len(class_id) > 200:
        return _error(request, 400, "The link names no class (query parameter class).")
    target = f"/console/classes/{class_segment(class_id)}/"
    if page == "overview":
        target += "overview"
    elif page == "learner":
        if not learner or len(learner) > 128:
            return _error(request, 400, "The link names no learner (query parameter learner).")
        target += f"learners/{_quote(learner)}"
    return RedirectResponse(target, status_code=303)


def mount(app: FastAPI) -> None:
    """Add the console's routes and static files to the app."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=str(STATIC)), name="console_static")

"""Approved prompts delivered to the LMS as Standard Webhooks, retried and dead-lettered.

Each class may name one endpoint and its signing secret (``whsec_<base64>``). An approval
(in the console or with an API key) writes a delivery to the ``webhook_deliveries`` outbox in
the approval's own transaction; the
sender then POSTs it with the Standard Webhooks headers::

    webhook-id: <delivery id>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>

A 2xx answer delivers it. Anything else (an error status, a timeout, a refused connection) is
tried again after ``TUTORSTREAM_CONSOLE__WEBHOOK_BACKOFF_S`` seconds, doubled each time, and
after ``TUTORSTREAM_CONSOLE__WEBHOOK_ATTEMPTS`` tries the delivery is dead, with the reason,
and the console shows it. The sender runs in the background: the console never waits for it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from typing import Any, Final

import httpx
import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from starlette.requests import HTTPConnection

from api.console.exceptions import ConsoleError, RosterError
from api.console.roster import Sealer, entries_of
from api.store import Store
from schemas.records import LearnerPrompt

log = logging.getLogger(__name__)

SECRET_PREFIX: Final = "whsec_"
_BATCH: Final = 32


def new_secret() -> str:
    """Return a fresh signing secret, ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """Return the key bytes of a ``whsec_…`` secret.

    Raises:
        ConsoleError: when it is not one.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ConsoleError("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError as err:
        raise ConsoleError("a webhook secret is whsec_ and base64") from err


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value of a message (Standard Webhooks, v1)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers_for(
    secret: str, message_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """Return the headers of one delivery attempt, signed at ``now``."""
    timestamp = int(time.time() if now is None else now)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def check_url(url: str) -> str:
    """Return a webhook URL after checking it is an absolute http(s) URL.

    Raises:
        ConsoleError: when it is not.
    """
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConsoleError("the endpoint must be an absolute http:// or https:// URL")
    return url


async def set_endpoint(
    conn: AsyncConnection[Any], class_id: str, url: str, secret: str, sealer: Sealer
) -> None:
    """Name a class's endpoint and signing secret (the secret sealed at rest)."""
    check_url(url)
    secret_bytes(secret)
    nonce, sealed = sealer.seal(secret, class_id)
    await conn.execute(
        "INSERT INTO class_webhooks (class_id, url, secret_nonce, secret_sealed) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (class_id) DO UPDATE SET url = EXCLUDED.url, "
        "secret_nonce = EXCLUDED.secret_nonce, secret_sealed = EXCLUDED.secret_sealed, "
        "updated_at = now()",
        (class_id, url, nonce, sealed),
    )


async def endpoint_of(conn: AsyncConnection[Any], class_id: str) -> str | None:
    """Return a class's webhook URL, or ``None`` when it has none."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT url FROM class_webhooks WHERE class_id = %s", (class_id,))
        found = await cur.fetchone()
    return str(found[0]) if found else None


async def enqueue(
    conn: AsyncConnection[Any],
    class_id: str,
    intervention: dict[str, Any],
    prompt: LearnerPrompt,
    learner: str | None,
    note: str | None,
) -> str | None:
    """Write the delivery of an approved prompt to the outbox, in the caller's transaction.

    Args:
        conn: a connection inside the approval's transaction.
        class_id: the class.
        intervention: the intervention's row as approved.
        prompt: the prompt published on learner.prompts.v1 (who approved it, and when).
        learner: the LMS's own identifier of the learner, from the roster, when it has one.
        note: the tutor's note.

    Returns:
        The delivery id (the ``webhook-id``), or ``None`` when the class has no endpoint.
    """
    url = await endpoint_of(conn, class_id)
    if url is None:
        return None
    delivery_id = f"msg_{uuid.uuid4().hex}"
    body = orjson.dumps(
        {
            "type": "prompt.approved",
            "timestamp": prompt.approved_at.isoformat(),
            "data": {
                "learner_prompt_id": prompt.learner_prompt_id,
                "prompt_id": prompt.prompt_id,
                "intervention_id": intervention["intervention_id"],
                "class_id": class_id,
                "learner_id": intervention["learner_id"],
                "learner": learner,
                "state": intervention["state"],
                "prompt": intervention["prompt"],
                "approved_by": prompt.approved_by,
                "note": note,
            },
        }
    ).decode()
    await conn.execute(
        "INSERT INTO webhook_deliveries (delivery_id, class_id, intervention_id, url, body) "
        "VALUES (%s, %s, %s, %s, %s)",
        (delivery_id, class_id, intervention["intervention_id"], url, body),
    )
    return delivery_id


async def deliveries(
    conn: AsyncConnection[Any], class_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """Return a class's recent deliveries, newest first (dead letters included)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT delivery_id, intervention_id, url, status, attempts, next_attempt_at, "
            "last_error, created_at, delivered_at FROM webhook_deliveries WHERE class_id = %s "
            "ORDER BY created_at DESC LIMIT %s",
            (class_id, limit),
        )
        return await cur.fetchall()


async def enqueue_approval(
    connection: HTTPConnection,
    conn: AsyncConnection[Any],
    intervention: dict[str, Any],
    prompt: LearnerPrompt,
    note: str | None,
) -> str | None:
    """Write the webhook of an approval to the outbox when its class has an endpoint.

    Called inside the approval's transaction (by the API's action, whether a tutor approved in
    the console or with an API key), so an approval and its delivery commit together. The
    learner's identifier in the LMS comes from the roster when the roster names them.

    Returns:
        The delivery id, or ``None`` when the class has no endpoint.
    """
    class_id = intervention["class_id"]
    console = getattr(connection.app.state, "console", None)
    learner = None
    names = getattr(console, "names", None)
    if names is not None:
        try:
            found = await entries_of(conn, class_id, [intervention["learner_id"]], names)
        except RosterError:
            # A roster sealed under another key must not stop approvals: the LMS gets the
            # pseudonym only.
            log.warning("class %s: a roster entry does not open with the roster key", class_id)
            found = {}
        entry = found.get(intervention["learner_id"])
        learner = entry.learner if entry is not None else None
    return await enqueue(conn, class_id, intervention, prompt, learner, note)


def wake_sender(connection: HTTPConnection) -> None:
    """Tell the app's webhook sender that a delivery may be due (after a commit)."""
    console = getattr(connection.app.state, "console", None)
    sender = getattr(console, "sender", None)
    if sender is not None:
        sender.wake()


class WebhookSender:
    """Sends due deliveries in the background, one batch at a time, without blocking anyone.

    Args:
        store: the store (its pool).
        sealer: opens the classes' signing secrets.
        attempts: tries before a delivery is dead.
        backoff_s: wait before the second try, doubled after each failure.
        timeout_s: longest wait for one answer.
        poll_s: how often to look for due deliveries when not woken.
    """

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        attempts: int,
        backoff_s: float,
        timeout_s: float,
        poll_s: float,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    def start(self) -> None:
        """Start sending in the background."""
        self._http = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        self._task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        """Stop sending (what is due stays in the outbox for the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.aclose()

    def wake(self) -> None:
        """Look for due deliveries now (an approval was just committed)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except (psycopg.Error, OSError) as err:
                log.warning("webhook sender: the store is unreachable (%s); trying again", err)
                sent = 0
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def send_due(self) -> int:
        """Try every due delivery once; return how many were tried."""
        lease_s = self.timeout_s * 2 + 5
        async with self.store.transaction() as conn, conn.cursor(row_factory=dict_row) as cur:
            # Lease the batch: another instance (or a crash mid-send) leaves it for later.
            await cur.execute(
                "UPDATE webhook_deliveries d "
                "SET next_attempt_at = now() + make_interval(secs => %s) "
                "FROM (SELECT delivery_id FROM webhook_deliveries WHERE status = 'pending' "
                "AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT %s "
                "FOR UPDATE SKIP LOCKED) due, class_webhooks w "
                "WHERE d.delivery_id = due.delivery_id AND w.class_id = d.class_id "
                "RETURNING d.delivery_id, d.class_id, d.url, d.body, d.attempts, "
                "w.secret_nonce, w.secret_sealed",
                (lease_s, _BATCH),
            )
            due = await cur.fetchall()
        if due:
            await asyncio.gather(*(self._attempt(row) for row in due))
        return len(due)

    async def _attempt(self, row: dict[str, Any]) -> None:
        assert self._http is not None
        body = row["body"].encode()
        error: str | None = None
        try:
            secret = self.sealer.open(
                bytes(row["secret_nonce"]), bytes(row["secret_sealed"]), row["class_id"]
            )
            answer = await self._http.post(
                row["url"], content=body, headers=headers_for(secret, row["delivery_id"], body)
            )
            if not 200 <= answer.status_code < 300:
                error = f"the endpoint answered {answer.status_code}"
        except httpx.TimeoutException:
            error = f"no answer within {self.timeout_s:g} s"
        except (httpx.HTTPError, ConsoleError) as err:
            error = f"{type(err).__name__}: {err}"
        tries = int(row["attempts"]) + 1
        async with self.store.connection() as conn:
            if error is None:
                await conn.execute(
                    "UPDATE webhook_deliveries SET status = 'delivered', attempts = %s, "
                    "delivered_at = now(), last_error = NULL WHERE delivery_id = %s",
                    (tries, row["delivery_id"]),
                )
                return
            if tries >= self.attempts:
                log.warning(
                    "webhook %s of class %s dead after %d tries: %s",
                    row["delivery_id"],
                    row["class_id"],
                    tries,
                    error,
                )
                await conn.execute(
                    "UPDATE webhook_deliveries SET status = 'dead', attempts = %s, "
                    "last_error = %s WHERE delivery_id = %s",
                    (tries, error, row["delivery_id"]),
                )
                return
            wait_s = self.backoff_s * 2 ** (tries - 1)
            await conn.execute(
                "UPDATE webhook_deliveries SET attempts = %s, last_error = %s, "
                "next_attempt_at = now() + make_interval(secs => %s) WHERE delivery_id = %s",
                (tries, error, wait_s, row["delivery_id"]),
            )

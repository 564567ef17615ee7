"""What the console's pages share while the app runs: sign-in, cookies, templates, decisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import orjson
import psycopg
from fastapi.templating import Jinja2Templates
from psycopg import AsyncConnection, sql
from starlette.requests import HTTPConnection

from api.console.oidc import OpenIdClient
from api.console.roster import Sealer
from api.console.session import CookieSigner
from api.console.webhooks import WebhookSender
from api.settings import ApiSettings
from api.store import Store

log = logging.getLogger(__name__)

TEMPLATES: Final = Path(__file__).parent / "templates"
STATIC: Final = Path(__file__).parent / "static"
_SAFE: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_QUEUE_MAX: Final = 1000


def class_segment(class_id: str) -> str:
    """Return ``class_id`` as one path segment that survives any router and proxy.

    Class ids may be IRIs: every character but letters, digits, ``.``, ``_`` and ``-`` is
    written ``~XX`` per UTF-8 byte, so a ``/`` never reaches the router as one (``%2F`` is
    decoded before routing by most servers).
    """
    return "".join(
        ch if ch in _SAFE else "".join(f"~{byte:02X}" for byte in ch.encode()) for ch in class_id
    )


def class_from_segment(segment: str) -> str | None:
    """Return the class id a :func:`class_segment` names, or ``None`` for a malformed one."""
    out = bytearray()
    index = 0
    while index < len(segment):
        ch = segment[index]
        if ch == "~":
            try:
                out.append(int(segment[index + 1 : index + 3], 16))
            except ValueError:
                return None
            if len(segment[index + 1 : index + 3]) != 2:
                return None
            index += 3
        elif ch in _SAFE:
            out.extend(ch.encode())
            index += 1
        else:
            return None
    try:
        decoded = out.decode()
    except UnicodeDecodeError:
        return None
    return decoded if decoded and class_segment(decoded) == segment else None


def decisions_channel(schema: str) -> str:
    """Return the PostgreSQL notification channel of the decisions made on store ``schema``."""
    return f"ts_decisions_{schema}"[:63]


async def announce_decision(
    conn: AsyncConnection[Any], schema: str, decision: dict[str, Any]
) -> None:
    """Notify every API instance of a decision, when (and only if) the caller's transaction commits.

    Args:
        conn: the connection of the decision's transaction.
        schema: the store's schema (instances of other stores in the same database do not hear).
        decision: ``class_id``, ``intervention_id``, ``status``, ``action``, ``by`` and ``note``.
    """
    await conn.execute(
        "SELECT pg_notify(%s, %s)",
        (decisions_channel(schema), orjson.dumps(decision).decode()[:7900]),
    )


class DecisionHub:
    """Tells every open queue page of a class what a tutor just decided, on any API instance.

    Decisions are announced with PostgreSQL's NOTIFY inside the decision's transaction (see
    :func:`announce_decision`); each instance LISTENs and passes them to its open pages.

    Args:
        url: the store's libpq URL.
        schema: the store's schema.
    """

    def __init__(self, url: str = "", schema: str = "public") -> None:
        self._followers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self.url = url
        self.channel = decisions_channel(schema)
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start listening for decisions."""
        if self.url:
            self._task = asyncio.create_task(self._listen(), name="console-decisions")

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        wait_s = 0.5
        while True:
            try:
                async with await AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.listening.set()
                    wait_s = 0.5
                    async for note in conn.notifies():
                        with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                            decision = orjson.loads(note.payload)
                            self.publish(str(decision["class_id"]), decision)
            except (psycopg.Error, OSError) as err:
                self.listening.clear()
                log.warning(
                    "console: listening for decisions failed (%s); again in %.0f s", err, wait_s
                )
                await asyncio.sleep(wait_s)
                wait_s = min(wait_s * 2, 30.0)

    @contextlib.asynccontextmanager
    async def follow(self, class_id: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """Yield a queue that receives the class's decisions while the block runs."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_MAX)
        self._followers.setdefault(class_id, set()).add(queue)
        try:
            yield queue
        finally:
            followers = self._followers.get(class_id, set())
            followers.discard(queue)
            if not followers:
                self._followers.pop(class_id, None)

    def publish(self, class_id: str, decision: dict[str, Any]) -> None:
        """Send a decision to every follower of its class (a full queue drops it: it reloads)."""
        for queue in self._followers.get(class_id, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(decision)


class EvidenceWords(OrderedDict[str, str]):
    """The evidence sentences of recent interventions, the least recently used dropped first."""

    def __init__(self, size: int = 50_000) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: str, value: str) -> None:
        """Remember a sentence, forgetting the oldest beyond the size."""
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass
class Console:
    """The console's parts.

    Attributes:
        settings: the API's settings.
        oidc: the client of the school's provider, or ``None`` when sign-in is not configured.
        cookies: signs the session and sign-in cookies.
        names: seals the roster's entries, or ``None`` when the roster is off.
        secrets: seals the classes' webhook secrets, or ``None`` when the roster key is unset.
        sender: the webhook sender, or ``None`` without a key to open secrets with.
        hub: live decisions.
        evidence: the evidence in words of recent interventions.
        evidence_computing: interventions whose evidence a request is computing now, with
            what the others wait on.
        templates: the pages.
    """

    settings: ApiSettings
    oidc: OpenIdClient | None
    cookies: CookieSigner
    names: Sealer | None
    secrets: Sealer | None
    sender: WebhookSender | None
    hub: DecisionHub = field(default_factory=DecisionHub)
    evidence: EvidenceWords = field(default_factory=EvidenceWords)
    evidence_computing: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(TEMPLATES))
    )

    @classmethod
    def build(cls, settings: ApiSettings, store: Store) -> Console:
        """Create the parts (nothing connects until :meth:`start`)."""
        options = settings.console
        oidc = None
        if options.oidc_issuer:
            oidc = OpenIdClient(
                options.oidc_issuer,
                options.oidc_client_id,
                options.oidc_client_secret.get_secret_value(),
                options.oidc_scopes,
                options.classes_claim,
                options.http_timeout_s,
            )
        key = settings.roster_key_bytes()
        names = Sealer(key, "roster names") if key else None
        secrets = Sealer(key, "webhook secrets") if key else None
        sender = (
            WebhookSender(
                store,
                secrets,
                options.webhook_attempts,
                options.webhook_backoff_s,
                options.webhook_timeout_s,
                options.webhook_poll_s,
            )
            if secrets
            else None
        )
        console = cls(
            settings=settings,
            oidc=oidc,
            cookies=CookieSigner(
                options.session_key.get_secret_value().encode(),
                options.session_max_age_s,
                options.cookie_secure,
            ),
            names=names,
            secrets=secrets,
            sender=sender,
            hub=DecisionHub(settings.database_url, settings.store.db_schema),
        )
        env = console.templates.env
        # The templates are part of the package: no stat of each file at every page.
        env.auto_reload = False
        env.globals["class_segment"] = class_segment
        env.globals["grafana_url"] = options.grafana_url.rstrip("/")
        env.filters["urlquote"] = lambda text: quote(str(text), safe="")
        return console

    def start(self) -> None:
        """Start the webhook sender and listening for decisions."""
        self.hub.start()
        if self.sender is not None:
            self.sender.start()

    async def stop(self) -> None:
        """Stop the sender and the listener, and close the provider's client."""
        await self.hub.stop()
        if self.sender is not None:
            await self.sender.stop()
        if self.oidc is not None:
            await self.oidc.close()


def console_of(connection: HTTPConnection) -> Console:
    """Return the console of the app serving ``connection``."""
    console: Console = connection.app.state.console
    return console

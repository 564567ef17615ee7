"""Who is calling: API keys checked against their stored hash, and a rate per key.

A checked key is trusted for ``TUTORSTREAM_API__KEY_CACHE_S`` seconds before it is read again,
so a busy producer costs one hash per request and no query; a revocation takes effect within
that time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from starlette.requests import HTTPConnection

from api.exceptions import ApiError, Forbidden, RateLimited, Unauthenticated
from api.keys import Principal, Scope, hash_matches, split_basic, split_token
from api.store import Store

_TOUCH_EVERY_S: Final = 60.0
_CHALLENGE: Final = 'Bearer realm="tutorstream"'


@dataclass(slots=True)
class _Cached:
    principal: Principal
    secret_hash: str
    checked_at: float


class _Bucket:
    """A token bucket: ``rate`` requests per second, ``burst`` at once."""

    __slots__ = ("last", "tokens")

    def __init__(self, burst: float) -> None:
        self.tokens = burst
        self.last = time.monotonic()


class Authenticator:
    """Checks bearer (or HTTP Basic) credentials and applies each key's rate.

    Args:
        store: where ``api_keys`` is.
        cache_s: how long a checked key is trusted before it is read again.
        rate_per_s: requests per second per key; 0 for no limit.
        burst: requests a key may send at once.
    """

    def __init__(self, store: Store, cache_s: float, rate_per_s: float, burst: int) -> None:
        self.store = store
        self.cache_s = cache_s
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._cache: dict[str, _Cached] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @staticmethod
    def credentials(connection: HTTPConnection) -> tuple[str, str]:
        """Return ``(key_id, secret)`` from the Authorization header.

        Raises:
            Unauthenticated: when the header is missing or malformed.
        """
        header = connection.headers.get("authorization")
        if not header:
            raise Unauthenticated("send an API key: Authorization: Bearer tsk_...")
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        found: tuple[str, str] | None = None
        if scheme.lower() == "bearer":
            found = split_token(value)
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            username, sep, password = decoded.partition(":")
            found = split_basic(username, password) if sep else None
        if found is None:
            raise Unauthenticated("the Authorization header does not hold a tutorstream API key")
        return found

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        """Return the caller of a request or WebSocket, after its key and rate are checked.

        Raises:
            Unauthenticated: for a missing, malformed, unknown or revoked key.
            RateLimited: when the key is over its rate.
        """
        key_id, secret = self.credentials(connection)
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is None or now - cached.checked_at > self.cache_s:
            cached = await self._load(key_id, now)
        if not hash_matches(key_id, secret, cached.secret_hash):
            raise Unauthenticated("the API key is unknown or revoked")
        self._take(key_id, now)
        if now - self._touched.get(key_id, -math.inf) > _TOUCH_EVERY_S:
            self._touched[key_id] = now
            task = asyncio.create_task(self._touch(key_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return cached.principal

    async def _touch(self, key_id: str) -> None:
        # Bookkeeping only: a database hiccup here must not fail or log as an error.
        with contextlib.suppress(ApiError, psycopg.Error):
            await self.store.touch_key(key_id)

    async def _load(self, key_id: str, now: float) -> _Cached:
        row = await self.store.key(key_id)
        if row is None or row["revoked_at"] is not None:
            self._cache.pop(key_id, None)
            raise Unauthenticated("the API key is unknown or revoked")
        principal = Principal(
            key_id=row["key_id"],
            name=row["name"],
            scopes=frozenset(Scope(scope) for scope in row["scopes"]),
            class_ids=frozenset(row["class_ids"]),
            profile=row["profile"],
        )
        cached = _Cached(principal, row["secret_hash"], now)
        self._cache[key_id] = cached
        return cached

    def _take(self, key_id: str, now: float) -> None:
        if self.rate_per_s <= 0:
            return
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(self.burst)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.last) * self.rate_per_s)
        bucket.last = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / self.rate_per_s
            raise RateLimited(
                f"more than {self.rate_per_s:g} requests/s for this key; retry later", wait
            )
        bucket.tokens -= 1.0


def challenge() -> str:
    """Return the ``WWW-Authenticate`` value sent with a 401."""
    return _CHALLENGE


def require_ingest(principal: Principal) -> None:
    """Check that the key may send learning events.

    Raises:
        Forbidden: when it may not.
    """
    if not principal.can_ingest():
        raise Forbidden("this key may not send learning events (it needs the ingest scope)")


def require_statement_reader(principal: Principal) -> None:
    """Check that the key may read stored xAPI statements.

    Raises:
        Forbidden: when it may not.
    """
    if not principal.can_read_statements():
        raise Forbidden("this key may not read statements (it needs the ingest scope)")


def require_class(principal: Principal, class_id: str) -> None:
    """Check that the key may see and act on ``class_id``.

    Raises:
        Forbidden: when it is not an admin key nor a tutor key bound to that class.
    """
    if not principal.can_tutor(class_id):
        raise Forbidden("this key may not see this class (it needs the tutor scope for it)")

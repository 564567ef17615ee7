"""Signed cookies: the tutor's session, and the secrets of a sign-in in progress.

A cookie's value is ``base64url(JSON) . base64url(HMAC-SHA256)`` under a key derived from
``TUTORSTREAM_CONSOLE__SESSION_KEY`` for its purpose, so a sign-in cookie can never be replayed
as a session. The cookies are HTTP-only, SameSite=Lax, and Secure unless turned off for plain
HTTP in development. The session holds the CSRF token every action must send back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.requests import HTTPConnection
from starlette.responses import Response

from api.console.oidc import Identity, LoginRequest

SESSION_COOKIE: Final = "tutorstream_console"
LOGIN_COOKIE: Final = "tutorstream_console_login"
_LOGIN_MAX_AGE_S: Final = 600
COOKIE_PATH: Final = "/console"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in tutor.

    Attributes:
        subject: the provider's ``sub``.
        name: the name shown.
        classes: the classes they may see.
        csrf: the token each action must carry.
        expires_at: when the session ends (seconds since the epoch).
    """

    subject: str
    name: str
    classes: frozenset[str]
    csrf: str
    expires_at: int

    @property
    def actor(self) -> str:
        """What the audit records as the actor of this tutor's actions."""
        return f"oidc:{self.subject}"

    def may_see(self, class_id: str) -> bool:
        """Whether the tutor may see and act on ``class_id``."""
        return class_id in self.classes


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CookieSigner:
    """Signs and checks the console's cookies.

    Args:
        key: ``TUTORSTREAM_CONSOLE__SESSION_KEY``.
        max_age_s: longest session.
        secure: whether cookies are sent over HTTPS only.
    """

    def __init__(self, key: bytes, max_age_s: int, secure: bool) -> None:
        self._keys = {
            purpose: hmac.new(key, f"tutorstream console {purpose}".encode(), "sha256").digest()
            for purpose in ("session", "login")
        }
        self.max_age_s = max_age_s
        self.secure = secure

    def _sign(self, purpose: str, payload: dict[str, Any]) -> str:
        body = _b64(orjson.dumps(payload))
        mac = hmac.new(self._keys[purpose], body.encode(), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def _open(self, purpose: str, value: str | None) -> dict[str, Any] | None:
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        expected = hmac.new(self._keys[purpose], body.encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64(mac), expected):
                return None
            payload = orjson.loads(_unb64(body))
        except (binascii.Error, ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(payload, dict) or float(payload.get("exp", 0)) <= time.time():
            return None
        return payload

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def start_session(self, response: Response, identity: Identity) -> Session:
        """Set the session cookie for a checked identity; it ends with the ID token at latest."""
        expires_at = min(int(time.time()) + self.max_age_s, identity.expires_at)
        session = Session(
            subject=identity.subject,
            name=identity.name,
            classes=identity.classes,
            csrf=secrets.token_urlsafe(32),
            expires_at=expires_at,
        )
        value = self._sign(
            "session",
            {
                "sub": session.subject,
                "name": session.name,
                "classes": sorted(session.classes),
                "csrf": session.csrf,
                "exp": expires_at,
            },
        )
        self._set(response, SESSION_COOKIE, value, max(1, expires_at - int(time.time())))
        return session

    def session(self, connection: HTTPConnection) -> Session | None:
        """Return the request's session, or ``None`` when absent, forged or expired."""
        payload = self._open("session", connection.cookies.get(SESSION_COOKIE))
        if payload is None:
            return None
        try:
            return Session(
                subject=str(payload["sub"]),
                name=str(payload["name"]),
                classes=frozenset(str(c) for c in payload["classes"]),
                csrf=str(payload["csrf"]),
                expires_at=int(payload["exp"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def end_session(self, response: Response) -> None:
        """Delete the session cookie."""
        response.delete_cookie(
            SESSION_COOKIE, path=COOKIE_PATH, secure=self.secure, httponly=True, samesite="lax"
        )

    def start_login(self, response: Response, login: LoginRequest) -> None:
        """Keep a sign-in's state, nonce and PKCE verifier until the provider sends the tutor back.

        SameSite=Lax lets the cookie come back on the provider's top-level redirect.
        """
        value = self._sign(
            "login",
            {
                "state": login.state,
                "nonce": login.nonce,
                "verifier": login.verifier,
                "next": login.next_path,
                "exp": int(time.time()) + _LOGIN_MAX_AGE_S,
            },
        )
        self._set(response, LOGIN_COOKIE, value, _LOGIN_MAX_AGE_S)

    def login(self, connection: HTTPConnection) -> LoginRequest | None:
        """Return the sign-in in progress, or ``None`` when absent, forged or too old."""
        payload = self._open("login", connection.cookies.get(LOGIN_COOKIE))
        if payload is None:
            return None
        try:
            return LoginRequest(
                state=str(payload["state"]),
                nonce=str(payload["nonce"]),
                verifier=str(payload["verifier"]),
                next_path=str(payload["next"]),
            )
        except KeyError:
            return None

    def end_login(self, response: Response) -> None:
        """Delete the sign-in cookie (a code is exchanged once)."""
        response.delete_cookie(
            LOGIN_COOKIE, path=COOKIE_PATH, secure=self.secure, httponly=True, samesite="lax"
        )


def csrf_matches(session: Session, token: str | None) -> bool:
    """Return whether ``token`` is the session's CSRF token (constant time)."""
    return token is not None and secrets.compare_digest(session.csrf, token)

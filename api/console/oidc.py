"""Sign-in with the school's OpenID Provider: authorization code with PKCE, and ID token checks.

The console is a confidential client: it sends the tutor to the provider's authorization
endpoint with a random ``state``, ``nonce`` and a PKCE challenge (S256), exchanges the code it
gets back (with the verifier and its client secret), and trusts the ID token only after checking
its signature against the provider's JWKS, its issuer, audience, authorized party, expiry and
nonce. The classes a tutor may see come from a claim of that token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import jwt

from api.console.exceptions import SignInFailed

_ALGORITHMS: Final = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
_LEEWAY_S: Final = 30
_JWKS_REFRESH_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class Provider:
    """What the console reads from the provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """The secrets of one sign-in attempt, kept in a signed cookie until the callback."""

    state: str
    nonce: str
    verifier: str
    next_path: str


@dataclass(frozen=True, slots=True)
class Identity:
    """A tutor as the checked ID token names them.

    Attributes:
        subject: ``sub``, stable at the provider; recorded as the actor of actions.
        name: a name to greet them with (``name``, else ``email``, else ``sub``).
        classes: the classes they may see, from the configured claim.
        expires_at: the ID token's ``exp`` (seconds since the epoch).
    """

    subject: str
    name: str
    classes: frozenset[str]
    expires_at: int


def pkce_challenge(verifier: str) -> str:
    """Return the S256 code challenge of a PKCE verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def new_login(next_path: str) -> LoginRequest:
    """Return fresh state, nonce and PKCE verifier for a sign-in that ends at ``next_path``."""
    return LoginRequest(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),
        next_path=next_path,
    )


def classes_of(claims: dict[str, Any], claim: str) -> frozenset[str]:
    """Return the classes named by ``claim`` (a list of strings, or one string; none if absent)."""
    value = claims.get(claim)
    if isinstance(value, str):
        return frozenset(part for part in value.replace(",", " ").split() if part)
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str) and item)
    return frozenset()


class OpenIdClient:
    """The console's client of one OpenID Provider.

    Args:
        issuer: the provider's issuer URL (``TUTORSTREAM_CONSOLE__OIDC_ISSUER``).
        client_id: the console's client id.
        client_secret: its secret.
        scopes: the scopes asked for.
        classes_claim: the claim that lists a tutor's classes.
        timeout_s: longest wait for the provider.
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        scopes: str,
        classes_claim: str,
        timeout_s: float,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self.classes_claim = classes_claim
        self.http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._provider: Provider | None = None
        self._jwks: jwt.PyJWKSet | None = None
        self._jwks_at = 0.0
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def provider(self) -> Provider:
        """Return the provider's endpoints, read once from its discovery document.

        Raises:
            SignInFailed: when the document cannot be read or names another issuer.
        """
        if self._provider is not None:
            return self._provider
        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            answer = await self.http.get(url)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as err:
            raise SignInFailed(f"the school's sign-in service cannot be reached ({err})") from err
        if document.get("issuer", "").rstrip("/") != self.issuer:
            raise SignInFailed("the sign-in service names another issuer than the configured one")
        self._provider = Provider(
            issuer=document["issuer"],
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            jwks_uri=document["jwks_uri"],
            end_session_endpoint=document.get("end_session_endpoint"),
        )
        return self._provider

    async def authorization_url(self, login: LoginRequest, redirect_uri: str) -> str:
        """Return where to send the tutor to sign in."""
        provider = await self.provider()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.scopes,
                "state": login.state,
                "nonce": login.nonce,
                "code_challenge": pkce_challenge(login.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{provider.authorization_endpoint}?{query}"

    async def exchange(self, code: str, login: LoginRequest, redirect_uri: str) -> str:
        """Trade an authorization code for the ID token (a JWT, not yet checked).

        Raises:
            SignInFailed: when the provider refuses the code or answers without an ID token.
        """
        provider = await self.provider()
        try:
            answer = await self.http.post(
                provider.token_endpoint,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": login.verifier,
                },
                auth=(self.client_id, self.client_secret),
            )
        except httpx.HTTPError as err:
            raise SignInFailed(f"the sign-in service did not answer ({err})") from err
        if answer.status_code != 200:
            raise SignInFailed(f"the sign-in service refused the code ({answer.status_code})")
        try:
            token = answer.json()["id_token"]
        except (ValueError, KeyError) as err:
            raise SignInFailed("the sign-in service answered without an ID token") from err
        if not isinstance(token, str):
            raise SignInFailed("the sign-in service answered without an ID token")
        return token

    async def _keys(self, refresh: bool) -> jwt.PyJWKSet:
        async with self._lock:
            stale = time.monotonic() - self._jwks_at > _JWKS_REFRESH_S
            if self._jwks is None or refresh or stale:
                provider = await self.provider()
                try:
                    answer = await self.http.get(provider.jwks_uri)
                    answer.raise_for_status()
                    self._jwks = jwt.PyJWKSet.from_dict(answer.json())
                except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as err:
                    raise SignInFailed(f"the provider's keys cannot be read ({err})") from err
                self._jwks_at = time.monotonic()
            return self._jwks

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as err:
            raise SignInFailed("the ID token is not a JWT") from err
        kid = header.get("kid")
        for refresh in (False, True):
            # A kid not seen yet may be a rotated key: read the JWKS again once before refusing.
            keys = await self._keys(refresh)
            for key in keys.keys:
                if kid is None or key.key_id == kid:
                    return key
        raise SignInFailed("the ID token is signed with a key the provider does not publish")

    async def verify(self, token: str, nonce: str, now: float | None = None) -> Identity:
        """Check an ID token and return who it names.

        Args:
            token: the ID token.
            nonce: the nonce this sign-in sent; the token must carry it.
            now: the time to check expiry against (seconds since the epoch); the clock's now
                when ``None``.

        Raises:
            SignInFailed: for a bad signature, another issuer or audience, an expired token, a
                wrong nonce or a missing subject.
        """
        key = await self._signing_key(token)
        provider = await self.provider()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=_ALGORITHMS,
                audience=self.client_id,
                issuer=provider.issuer,
                leeway=_LEEWAY_S,
                options={"require": ["iss", "aud", "exp", "iat", "sub"], "verify_exp": False},
            )
        except jwt.InvalidTokenError as err:
            raise SignInFailed(f"the ID token is not valid: {err}") from err
        moment = time.time() if now is None else now
        expires_at = int(claims["exp"])
        if expires_at + _LEEWAY_S <= moment:
            raise SignInFailed("the ID token has expired")
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
            claims["nonce"], nonce
        ):
            raise SignInFailed("the ID token does not carry this sign-in's nonce")
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise SignInFailed("the ID token was issued to another party")
        subject = str(claims["sub"])
        name = claims.get("name") or claims.get("email") or subject
        return Identity(
            subject=subject,
            name=str(name),
            classes=classes_of(claims, self.classes_claim),
            expires_at=expires_at,
        )

    async def logout_url(self, post_logout_redirect_uri: str) -> str | None:
        """Return the provider's end-session URL (RP-initiated logout), if it has one."""
        provider = await self.provider()
        if provider.end_session_endpoint is None:
            return None
        query = urlencode(
            {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        )
        return f"{provider.end_session_endpoint}?{query}"

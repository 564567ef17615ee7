"""API keys: bearer tokens whose secret is stored only as a hash.

A token reads ``tsk_<key id>_<secret>``: the key id (12 hex digits) is public, shown by
``tutorstream keys list`` and recorded as the actor of tutor actions; the secret is 32 random
bytes, shown once at creation. The table ``api_keys`` keeps SHA-256 of the key id and secret.
A slow password hash (scrypt, bcrypt) protects secrets people choose; a 256-bit random secret
cannot be guessed, so a fast hash loses nothing and keeps authentication off the hot path.

Scopes: ``ingest`` (LMS producers: the xAPI, Caliper and native endpoints), ``tutor`` (the
tutor endpoints of the classes the key is bound to) and ``admin`` (everything, every class).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

import psycopg
from psycopg.rows import dict_row

TOKEN_PREFIX: Final = "tsk_"
KEY_ID_LENGTH: Final = 12
_KEY_ID_RE: Final = re.compile(r"[0-9a-f]{12}")
_SECRET_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_CLASS_ID_RE: Final = re.compile(r"[^\s,]{1,200}")


class Scope(StrEnum):
    """What a key may do."""

    INGEST = "ingest"
    TUTOR = "tutor"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a checked key.

    Attributes:
        key_id: the key's public id; what the audit records as the actor.
        name: the key's label.
        scopes: what the key may do.
        class_ids: the classes a tutor key is bound to.
        profile: the statement profile an ingest key's statements are read with (``None``:
            the default profile).
    """

    key_id: str
    name: str
    scopes: frozenset[Scope]
    class_ids: frozenset[str] = field(default_factory=frozenset)
    profile: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the key has the ``admin`` scope."""
        return Scope.ADMIN in self.scopes

    def can_ingest(self) -> bool:
        """Whether the key may send learning events."""
        return Scope.INGEST in self.scopes or self.is_admin

    def can_read_statements(self) -> bool:
        """Whether the key may read stored xAPI statements (pseudonymised)."""
        return self.can_ingest()

    def can_tutor(self, class_id: str) -> bool:
        """Whether the key may see and act on class ``class_id``."""
        return self.is_admin or (Scope.TUTOR in self.scopes and class_id in self.class_ids)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A row of ``api_keys`` as ``tutorstream keys list`` shows it (no secret, no hash)."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    class_ids: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: the only time its token exists outside the caller's hands."""

    key_id: str
    token: str


def secret_hash(key_id: str, secret: str) -> str:
    """Return the stored form of a key's secret: hex SHA-256 of ``key_id:secret``."""
    return hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()


def hash_matches(key_id: str, secret: str, stored: str) -> bool:
    """Return whether ``secret`` is the one whose hash is ``stored`` (constant time)."""
    return hmac.compare_digest(secret_hash(key_id, secret), stored)


def new_token() -> tuple[str, str, str]:
    """Return a fresh ``(key_id, secret, token)``."""
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    return key_id, secret, f"{TOKEN_PREFIX}{key_id}_{secret}"


def split_token(token: str) -> tuple[str, str] | None:
    """Return ``(key_id, secret)`` of a well-formed token, ``None`` for anything else."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    rest = token[len(TOKEN_PREFIX) :]
    key_id, sep, secret = (
        rest[:KEY_ID_LENGTH],
        rest[KEY_ID_LENGTH : KEY_ID_LENGTH + 1],
        rest[KEY_ID_LENGTH + 1 :],
    )
    if sep != "_" or not _KEY_ID_RE.fullmatch(key_id) or not _SECRET_RE.fullmatch(secret):
        return None
    return key_id, secret


def split_basic(username: str, password: str) -> tuple[str, str] | None:
    """Return ``(key_id, secret)`` from HTTP Basic credentials (xAPI clients send those).

    The username is the key id (with or without ``tsk_``) and the password the secret.
    """
    key_id = username.removeprefix(TOKEN_PREFIX)
    if not _KEY_ID_RE.fullmatch(key_id) or not _SECRET_RE.fullmatch(password):
        return None
    return key_id, password


def check_scopes(scopes: list[str], class_ids: list[str]) -> tuple[list[str], list[str]]:
    """Validate the scopes and classes of a key to create; return them deduplicated, sorted.

    Raises:
        ValueError: for an unknown scope, no scope, a tutor key without classes, classes on a
            key without the tutor scope, or a malformed class id.
    """
    if not scopes:
        raise ValueError("give at least one scope: ingest, tutor or admin")
    known = {scope.value for scope in Scope}
    for scope in scopes:
        if scope not in known:
            raise ValueError(f"unknown scope {scope!r}: use ingest, tutor or admin")
    for class_id in class_ids:
        if not _CLASS_ID_RE.fullmatch(class_id):
            raise ValueError(f"class id {class_id[:40]!r} must be 1-200 characters, no spaces")
    if Scope.TUTOR in scopes and not class_ids:
        raise ValueError("a tutor key needs the classes it may see (--class, repeatable)")
    if class_ids and Scope.TUTOR not in scopes:
        raise ValueError("classes bind a tutor key; add the tutor scope or drop --class")
    return sorted(set(scopes)), sorted(set(class_ids))


_PROFILE_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


def create_key(
    conn: psycopg.Connection,
    name: str,
    scopes: list[str],
    class_ids: list[str] | None = None,
    profile: str | None = None,
) -> NewKey:
    """Create a key and return its token (shown once; only its hash is stored).

    Args:
        conn: a connection whose search path reaches ``api_keys``.
        name: a label for people (who or what uses the key).
        scopes: ``ingest``, ``tutor``, ``admin``.
        class_ids: the classes of a tutor key.
        profile: the statement profile the key's statements are read with (its id); the
            API's default profile when ``None``.

    Raises:
        ValueError: when the scopes, classes, profile or name are not acceptable.
    """
    if not name.strip() or len(name) > 200:
        raise ValueError("the name must be 1-200 characters")
    if profile is not None and _PROFILE_ID.fullmatch(profile) is None:
        raise ValueError(f"profile id {profile[:40]!r} must be lower case letters, digits, . _ -")
    scope_list, class_list = check_scopes(scopes, class_ids or [])
    key_id, secret, token = new_token()
    conn.execute(
        "INSERT INTO api_keys (key_id, name, secret_hash, scopes, class_ids, profile) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (key_id, name.strip(), secret_hash(key_id, secret), scope_list, class_list, profile),
    )
    return NewKey(key_id, token)


def list_keys(conn: psycopg.Connection, *, include_revoked: bool = True) -> list[KeyRecord]:
    """Return every key, oldest first, without secrets."""
    query = (
        "SELECT key_id, name, scopes, class_ids, created_at, revoked_at, last_used_at FROM api_keys"
    )
    if not include_revoked:
        query += " WHERE revoked_at IS NULL"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query + " ORDER BY created_at, key_id").fetchall()
    return [
        KeyRecord(
            key_id=row["key_id"],
            name=row["name"],
            scopes=tuple(row["scopes"]),
            class_ids=tuple(row["class_ids"]),
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
            last_used_at=row["last_used_at"],
        )
        for row in rows
    ]


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    """Revoke a key; return ``False`` when no key has that id or it is already revoked."""
    key_id = key_id.removeprefix(TOKEN_PREFIX)
    row = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL "
        "RETURNING key_id",
        (key_id,),
    ).fetchone()
    return row is not None

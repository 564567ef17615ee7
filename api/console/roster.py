"""The roster: learners' names, kept apart from the pipeline and encrypted at rest.

A school sends names with the identifiers its LMS uses (a CSV import in the console, or a JSON
push with an admin API key). Each identifier becomes the pipeline's pseudonym with the same
keyed HMAC (:mod:`schemas.pseudonym`), and each name is sealed with AES-GCM under a key derived
from ``TUTORSTREAM_ROSTER_KEY``, with the class and pseudonym as associated data. Only the
console opens names, and only for the class's tutors.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.console.exceptions import RosterError
from schemas.pseudonym import Pseudonymiser

COLUMNS: Final = ("learner", "name")
"""The CSV's columns: the LMS's identifier of the learner, and the name shown to tutors.

An optional third column ``kind`` says what the identifier is, as the LMS sends it in events:
``mbox`` (``mailto:…``), ``openid``, ``account`` (``homePage|name``), ``caliper`` (the actor's
IRI) or ``native`` (a native event's ``learner_id``). Without it, ``mailto:`` identifiers are
mboxes, ``http(s)://`` ones Caliper actors, and the rest native ids.
"""
KINDS: Final = ("mbox", "openid", "account", "caliper", "native")
_MAX_NAME: Final = 200
_MAX_ID: Final = 500
_MAX_ROWS: Final = 20_000


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One learner of the roster: the LMS's identifier, its kind and the name."""

    learner: str
    name: str
    kind: str = ""

    def pseudonym(self, pseudonymiser: Pseudonymiser) -> str:
        """Return the learner's pseudonym, as the pipeline computes it from their events."""
        kind = self.kind or (
            "mbox"
            if self.learner.startswith("mailto:")
            else "caliper"
            if self.learner.startswith(("http://", "https://"))
            else "native"
        )
        if kind == "mbox":
            return pseudonymiser.mbox(self.learner)
        if kind == "openid":
            return pseudonymiser.xapi_identifier(openid=self.learner)
        if kind == "account":
            home_page, _, name = self.learner.rpartition("|")
            return pseudonymiser.account(home_page, name)
        if kind == "caliper":
            return pseudonymiser.caliper_actor(self.learner)
        return pseudonymiser.native_learner(self.learner)


def check_entry(learner: str, name: str, kind: str, row: int | None) -> RosterEntry:
    """Return a checked roster entry.

    Raises:
        RosterError: naming the row (when given) and the column at fault.
    """
    for column, value, limit in (("learner", learner, _MAX_ID), ("name", name, _MAX_NAME)):
        if not value:
            raise RosterError("is empty", row, column)
        if len(value) > limit:
            raise RosterError(f"is longer than {limit} characters", row, column)
        if any(ord(ch) < 32 for ch in value):
            raise RosterError("holds a control character", row, column)
    if kind and kind not in KINDS:
        raise RosterError(f"must be one of {', '.join(KINDS)}", row, "kind")
    if kind == "account" and "|" not in learner:
        raise RosterError("an account is written homePage|name", row, "learner")
    return RosterEntry(learner, name, kind)


class Sealer:
    """AES-GCM under a key of its own purpose, derived from the roster key with HKDF.

    Args:
        key: ``TUTORSTREAM_ROSTER_KEY``.
        purpose: what the derived key seals (names, webhook secrets).
    """

    def __init__(self, key: bytes, purpose: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=f"tutorstream {purpose}".encode(),
        ).derive(key)
        self._aead = AESGCM(derived)

    def seal(self, plain: str, context: str) -> tuple[bytes, bytes]:
        """Return ``(nonce, sealed)`` of ``plain``, bound to ``context``."""
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, plain.encode(), context.encode())

    def open(self, nonce: bytes, sealed: bytes, context: str) -> str:
        """Return what :meth:`seal` sealed.

        Raises:
            RosterError: when the key or context is not the one it was sealed with.
        """
        try:
            return self._aead.decrypt(nonce, sealed, context.encode()).decode()
        except InvalidTag as err:
            raise RosterError("a sealed value does not open with this key") from err


def parse_csv(text: str) -> list[RosterEntry]:
    """Read a roster file: a header ``learner,name`` and one learner a row.

    Raises:
        RosterError: naming the row (the header is row 1) and column of the first problem; a
            file with any problem yields nothing.
    """
    # Spreadsheets often save UTF-8 with a byte-order mark; it is not part of the header.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise RosterError("the file is empty; it needs a header: learner,name", 1) from None
    except csv.Error as err:
        raise RosterError(f"the header is not CSV ({err})", 1) from err
    names = [cell.strip().lower() for cell in header]
    for column in COLUMNS:
        if column not in names:
            raise RosterError(f"the header lacks the column {column!r} (learner,name)", 1, column)
    where = {column: names.index(column) for column in COLUMNS}
    kind_at = names.index("kind") if "kind" in names else None
    entries: list[RosterEntry] = []
    seen: dict[str, int] = {}
    row_number = 1
    try:
        for row_number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                raise RosterError(
                    f"has {len(row)} cells where the header has {len(names)}", row_number
                )
            values = {column: row[where[column]].strip() for column in COLUMNS}
            kind = row[kind_at].strip().lower() if kind_at is not None else ""
            entry = check_entry(values["learner"], values["name"], kind, row_number)
            if entry.learner in seen:
                raise RosterError(
                    f"repeats the learner of row {seen[entry.learner]}", row_number, "learner"
                )
            seen[entry.learner] = row_number
            entries.append(entry)
            if len(entries) > _MAX_ROWS:
                raise RosterError(f"the file has more than {_MAX_ROWS} learners", row_number)
    except csv.Error as err:
        raise RosterError(f"is not CSV ({err})", row_number + 1) from err
    return entries


async def store_roster(
    conn: AsyncConnection[Any],
    class_id: str,
    entries: list[RosterEntry],
    pseudonymiser: Pseudonymiser,
    sealer: Sealer,
) -> int:
    """Add or replace the names of ``entries`` in a class's roster (in the caller's transaction).

    Returns:
        How many learners were written.
    """
    rows = []
    for entry in entries:
        learner_id = entry.pseudonym(pseudonymiser)
        plain = orjson.dumps({"name": entry.name, "learner": entry.learner, "kind": entry.kind})
        nonce, sealed = sealer.seal(plain.decode(), f"{class_id}\x1f{learner_id}")
        rows.append((class_id, learner_id, nonce, sealed))
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO roster (class_id, learner_id, entry_nonce, entry_sealed) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (class_id, learner_id) DO UPDATE SET "
            "entry_nonce = EXCLUDED.entry_nonce, entry_sealed = EXCLUDED.entry_sealed, "
            "updated_at = now()",
            rows,
        )
    return len(rows)


async def entries_of(
    conn: AsyncConnection[Any], class_id: str, learner_ids: list[str], sealer: Sealer
) -> dict[str, RosterEntry]:
    """Return the roster's entries of the given pseudonyms of a class (those it holds)."""
    if not learner_ids:
        return {}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT learner_id, entry_nonce, entry_sealed FROM roster "
            "WHERE class_id = %s AND learner_id = ANY(%s)",
            (class_id, list(set(learner_ids))),
        )
        rows = await cur.fetchall()
    return open_entries(class_id, rows, sealer)


def open_entries(
    class_id: str, rows: Iterable[Mapping[str, Any]], sealer: Sealer
) -> dict[str, RosterEntry]:
    """Open the roster rows of a class (``learner_id``, ``entry_nonce``, ``entry_sealed``).

    Rows whose ``entry_sealed`` is null (a query's outer join found no entry) are skipped.

    Raises:
        RosterError: when an entry does not open with the key (sealed under another one).
    """
    found: dict[str, RosterEntry] = {}
    for row in rows:
        if row["entry_sealed"] is None or row["learner_id"] in found:
            continue
        plain = orjson.loads(
            sealer.open(
                bytes(row["entry_nonce"]),
                bytes(row["entry_sealed"]),
                f"{class_id}\x1f{row['learner_id']}",
            )
        )
        found[row["learner_id"]] = RosterEntry(plain["learner"], plain["name"], plain["kind"])
    return found


async def roster_size(conn: AsyncConnection[Any], class_id: str) -> int:
    """Return how many learners a class's roster names."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT count(*) FROM roster WHERE class_id = %s", (class_id,))
        found = await cur.fetchone()
    return int(found[0]) if found else 0

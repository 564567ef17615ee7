"""Opening connections to the store: its schema on the search path, and what the server can do."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

Target = str | psycopg.Connection
"""A database URL, or an open connection that the caller keeps ownership of."""


def check_schema(schema: str) -> str:
    """Return ``schema`` when it is a plain lower-case identifier.

    Raises:
        ValueError: for anything else, so a schema name never needs quoting rules to be safe.
    """
    if not SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_"):
        raise ValueError(
            f"schema {schema!r}: use lower-case letters, digits and underscores (at most 63), "
            "not starting with pg_"
        )
    return schema


def search_path(schema: str) -> sql.Composed:
    """Return ``SET search_path`` for ``schema``; ``public`` stays reachable for extensions."""
    check_schema(schema)
    if schema == "public":
        return sql.SQL("SET search_path TO public").format()
    return sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema))


def connect(
    url: str, *, schema: str = "public", autocommit: bool = True, connect_timeout: float = 5.0
) -> psycopg.Connection:
    """Open a connection to the store with ``schema`` first on its search path.

    Args:
        url: a ``postgresql://`` URL.
        schema: the schema holding the store's tables.
        autocommit: each statement commits on its own unless wrapped in ``transaction()``.
        connect_timeout: seconds to wait for the server.

    Returns:
        The open connection; the caller closes it.

    Raises:
        psycopg.OperationalError: when no connection could be made within ``connect_timeout``.
    """
    deadline = time.monotonic() + connect_timeout
    pause = 0.02
    while True:
        try:
            conn = psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, round(connect_timeout))
            )
            break
        except psycopg.OperationalError:
            # The WASM server takes a moment to release its single connection slot after a
            # client leaves, and refuses the next client meanwhile.
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
    try:
        row = conn.execute("SELECT version()").fetchone()
        if row is not None and is_wasm_server(str(row[0])):
            forget_previous_sessions(conn)
        conn.execute(search_path(schema))
        # The WASM build sends DEBUG notices by default; keep only what deserves attention.
        conn.execute("SET client_min_messages TO warning")
        conn.autocommit = autocommit
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def session(target: Target, *, schema: str = "public") -> Iterator[psycopg.Connection]:
    """Yield an autocommit connection with ``schema`` on its search path.

    A URL is opened and closed here. A connection passed in is used as it is, in autocommit
    mode for the duration, and handed back with its autocommit flag and search path restored.
    """
    if isinstance(target, str):
        with connect(target, schema=schema) as conn:
            yield conn
        return
    conn = target
    was_autocommit = conn.autocommit
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("pass a connection that is not inside a transaction")
    conn.autocommit = True
    row = conn.execute("SELECT current_setting('search_path')").fetchone()
    previous = row[0] if row else "public"
    conn.execute(search_path(schema))
    try:
        yield conn
    finally:
        if not conn.closed and not conn.broken:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            conn.execute("SELECT set_config('search_path', %s, false)", (previous,))
            conn.autocommit = was_autocommit


def forget_previous_sessions(conn: psycopg.Connection) -> None:
    """Reset the WASM server's single backend, which outlives each client's connection.

    Every client of the WASM server shares one PostgreSQL session: prepared statements,
    settings and temporary tables left by an earlier client are still there, and psycopg's
    automatic prepared statements would collide with them. Start clean and prepare nothing.
    """
    conn.execute("DISCARD ALL")
    conn.prepare_threshold = None


def is_wasm_server(version: str) -> bool:
    """Return whether ``version()`` text comes from the PGlite WASM build, which has no COPY."""
    return "emscripten" in version.lower()

"""`tutorstream keys create | list | revoke`: the API's bearer keys.

Only a hash of each key's secret is stored; the token is printed once, at creation. The
database is ``--url``, else ``TUTORSTREAM_DATABASE_URL``, else the embedded stack's PostgreSQL;
the schema is ``TUTORSTREAM_STORE__DB_SCHEMA`` (``--schema``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import psycopg
import typer

from api.keys import Scope, create_key, list_keys, revoke_key
from streams.store import StoreSettings, connect
from tutorstream.cli.db import SchemaOption, UrlOption, database_url

app = typer.Typer(
    no_args_is_help=True,
    help="API keys: create (the token is shown once), list, revoke.",
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def _connection(url: str | None, schema: str | None) -> Iterator[psycopg.Connection]:
    target = database_url(url)
    chosen = schema or StoreSettings().db_schema
    try:
        with connect(target, schema=chosen) as conn:
            yield conn
    except psycopg.errors.UndefinedTable:
        _fail(f"no api_keys table in schema {chosen}; run `tutorstream db migrate` first")
    except psycopg.OperationalError as err:
        _fail(f"cannot reach the database: {err.diag.message_primary or err}")


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what uses the key (a label).")],
    scope: Annotated[
        list[Scope],
        typer.Option("--scope", help="ingest, tutor or admin (repeat for several)."),
    ],
    class_id: Annotated[
        list[str] | None,
        typer.Option("--class", help="A class a tutor key may see (repeat for several)."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="The statement profile an ingest key's statements are read with (its id); "
            "the default profile when left out.",
        ),
    ] = None,
    url: UrlOption = None,
    schema: SchemaOption = None,
) -> None:
    """Create a key and print its token: store it now, it is never shown again."""
    with _connection(url, schema) as conn:
        try:
            made = create_key(conn, name, [s.value for s in scope], class_id or [], profile)
        except ValueError as err:
            _fail(str(err))
    typer.echo(f"key id  {made.key_id}")
    typer.echo(f"token   {made.token}")
    typer.echo("Send it as `Authorization: Bearer <token>`; it is not stored and not shown again.")


@app.command("list")
def list_command(
    url: UrlOption = None,
    schema: SchemaOption = None,
    active: Annotated[bool, typer.Option("--active", help="Leave out revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List keys (ids, names, scopes, classes, dates); secrets are never shown."""
    with _connection(url, schema) as conn:
        keys = list_keys(conn, include_revoked=not active)
    if as_json:
        rows = [
            {
                "key_id": k.key_id,
                "name": k.name,
                "scopes": list(k.scopes),
                "class_ids": list(k.class_ids),
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
            }
            for k in keys
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    header = (
        f"{'key id':<12}  {'name':<24}  {'scopes':<20}  {'classes':<20}  {'created':<16}  state"
    )
    typer.echo(header)
    for k in keys:
        state = (
            f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
            if k.revoked_at
            else (f"used {k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never used")
        )
        typer.echo(
            f"{k.key_id:<12}  {k.name[:24]:<24}  {','.join(k.scopes)[:20]:<20}  "
            f"{','.join(k.class_ids)[:20]:<20}  {k.created_at:%Y-%m-%d %H:%M}  {state}"
        )
    if not keys:
        typer.echo("(no keys yet: tutorstream keys create --name ... --scope ...)")


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (as `keys list` shows it).")],
    url: UrlOption = None,
    schema: SchemaOption = None,
) -> None:
    """Revoke a key; the API refuses it within TUTORSTREAM_API__KEY_CACHE_S seconds."""
    with _connection(url, schema) as conn:
        if not revoke_key(conn, key_id):
            _fail(f"no active key with id {key_id}")
    typer.echo(f"revoked {key_id}")

"""Every row of every table in a schema, for comparing the store before and after a replay."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

UNCOMPARED = ("aggregate_invalidations",)
"""Tables whose rows record how the writes were batched (the time range of each statement),
not what was written: two runs that store the same rows in other batches differ there."""


def snapshot(url: str, schema: str, drop: Sequence[str] = ()) -> dict[str, list[str]]:
    """Return each base table's rows as sorted JSON text, without the columns in ``drop``.

    The tables of :data:`UNCOMPARED` are left out.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE' "
                "AND NOT table_name = ANY(%s) ORDER BY 1",
                (schema, list(UNCOMPARED)),
            ).fetchall()
        ]
        found = {}
        for table in tables:
            rows = conn.execute(
                sql.SQL("SELECT (to_jsonb(t) - %s::text[])::text FROM {}.{} AS t").format(
                    sql.Identifier(schema), sql.Identifier(table)
                ),
                (list(drop),),
            ).fetchall()
            found[table] = sorted(str(r[0]) for r in rows)
        return found

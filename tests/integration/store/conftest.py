"""Store fixtures: a schema of the test's own on native PostgreSQL and on TimescaleDB (WASM).

The servers are the session's (``postgres_url``, ``timescale_url``) and the schemas come from
``pg_schema``, all in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.store import StoreMode

# What the store fixtures give a test: the server's URL, its kind, and a schema of its own.
# A plain tuple, so test modules need no import from this file.
Store = tuple[str, StoreMode, str]
# ``pg_schema`` of tests/conftest.py: URL in, a named tuple with the schema's ``name`` out.
SchemaFactory = Callable[[str], Any]


@pytest.fixture
def pg_store(postgres_url: str, pg_schema: SchemaFactory) -> Store:
    """A fresh schema on native PostgreSQL, where the store runs its fallback mode."""
    return postgres_url, StoreMode.POSTGRESQL, str(pg_schema(postgres_url).name)


@pytest.fixture
def ts_store(timescale_url: str, pg_schema: SchemaFactory) -> Store:
    """A fresh schema on the TimescaleDB WASM build (one connection at a time)."""
    return timescale_url, StoreMode.TIMESCALEDB, str(pg_schema(timescale_url).name)


@pytest.fixture(
    params=[StoreMode.POSTGRESQL, StoreMode.TIMESCALEDB], ids=["postgresql", "timescaledb"]
)
def store(request: pytest.FixtureRequest) -> Store:
    """A fresh schema on each kind of server in turn."""
    name = "pg_store" if request.param is StoreMode.POSTGRESQL else "ts_store"
    value: Store = request.getfixturevalue(name)
    return value

"""The store: TimescaleDB (or plain PostgreSQL) tables, their migrations, and the sink.

Public API:

* :func:`migrate` and :func:`status` -- versioned, idempotent migrations from ``schemas/sql``
  and what ``tutorstream db status`` reports;
* :class:`StoreSink` with :class:`StoreBatch` -- durable, idempotent batched writes;
* :func:`maintain`, :func:`refresh_aggregates`, :func:`apply_retention` -- the fallback's
  stand-ins for TimescaleDB's background jobs;
* :func:`connect` -- a connection with the store's schema on the search path.
"""

from streams.store.connection import connect
from streams.store.exceptions import (
    MigrationError,
    RejectedBatch,
    StoreError,
    StoreUnavailable,
)
from streams.store.maintenance import (
    AggregateRefresh,
    MaintenanceReport,
    apply_retention,
    maintain,
    refresh_aggregates,
)
from streams.store.migrations import (
    AGGREGATES,
    HYPERTABLES,
    AggregateStatus,
    MigrationRun,
    StoreStatus,
    migrate,
    status,
)
from streams.store.settings import StoreMode, StoreSettings, WriteMethod
from streams.store.sink import StoreBatch, StoreSink, WriteResult, is_transient

__all__ = [
    "AGGREGATES",
    "HYPERTABLES",
    "AggregateRefresh",
    "AggregateStatus",
    "MaintenanceReport",
    "MigrationError",
    "MigrationRun",
    "RejectedBatch",
    "StoreBatch",
    "StoreError",
    "StoreMode",
    "StoreSettings",
    "StoreSink",
    "StoreStatus",
    "StoreUnavailable",
    "WriteMethod",
    "WriteResult",
    "apply_retention",
    "connect",
    "is_transient",
    "maintain",
    "migrate",
    "refresh_aggregates",
    "status",
]

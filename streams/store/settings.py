"""Settings of the store and its sink, read from ``TUTORSTREAM_STORE__*`` environment variables."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreMode(StrEnum):
    """How the store runs: on TimescaleDB, or the plain-PostgreSQL fallback."""

    TIMESCALEDB = "timescaledb"
    POSTGRESQL = "postgresql"


class WriteMethod(StrEnum):
    """How the sink loads a batch into its staging table."""

    AUTO = "auto"
    """``copy`` unless the server is the TimescaleDB WASM build, which has no COPY."""
    COPY = "copy"
    """Binary ``COPY ... FROM STDIN`` into a temporary staging table."""
    INSERT = "insert"
    """One ``INSERT ... SELECT`` from a JSON array parameter per batch."""


class StoreSettings(BaseSettings):
    """Settings of the store: migrations, policies and the sink.

    Durations accept ``7 days``, ``7d`` or ISO 8601 (``P7D``).

    Attributes:
        db_schema: ``TUTORSTREAM_STORE__DB_SCHEMA``, the PostgreSQL schema holding the tables.
        mode: ``TUTORSTREAM_STORE__MODE``; ``None`` picks TimescaleDB when the extension is
            available and the plain-PostgreSQL fallback otherwise.
        compression_after: ``TUTORSTREAM_STORE__COMPRESSION_AFTER``, age at which TimescaleDB
            compresses chunks.
        retention: ``TUTORSTREAM_STORE__RETENTION``, age at which raw rows are dropped; must lie
            beyond every aggregate's refresh window and beyond ``compression_after``.
        write_method: ``TUTORSTREAM_STORE__WRITE_METHOD``, ``auto``, ``copy`` or ``insert``.
        retry_initial: ``TUTORSTREAM_STORE__RETRY_INITIAL``, first wait after a failed write.
        retry_max: ``TUTORSTREAM_STORE__RETRY_MAX``, longest wait between write attempts.
        retry_deadline: ``TUTORSTREAM_STORE__RETRY_DEADLINE``, give up on a batch after this
            long; ``None`` waits for the database however long it is down.
        connect_timeout: ``TUTORSTREAM_STORE__CONNECT_TIMEOUT``, per connection attempt.
        maintenance_interval: ``TUTORSTREAM_STORE__MAINTENANCE_INTERVAL``, how often the
            pipeline refreshes the fallback's aggregates.
        retention_interval: ``TUTORSTREAM_STORE__RETENTION_INTERVAL``, how often the pipeline
            applies the fallback's retention (at a maintenance, at most this often): rows age
            out by the day, and each pass reads the time indexes' new pages.
    """

    model_config = SettingsConfigDict(
        env_prefix="TUTORSTREAM_STORE__", env_nested_delimiter="__", extra="ignore"
    )

    db_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    mode: StoreMode | None = None
    compression_after: timedelta = timedelta(days=7)
    retention: timedelta = timedelta(days=400)
    write_method: WriteMethod = WriteMethod.AUTO
    retry_initial: timedelta = timedelta(milliseconds=200)
    retry_max: timedelta = timedelta(seconds=10)
    retry_deadline: timedelta | None = None
    connect_timeout: timedelta = timedelta(seconds=5)
    maintenance_interval: timedelta = timedelta(seconds=30)
    retention_interval: timedelta = timedelta(hours=1)

    @model_validator(mode="after")
    def _check_horizons(self) -> StoreSettings:
        if self.compression_after <= timedelta(0):
            raise ValueError("compression_after must be positive")
        if self.retention <= self.compression_after:
            raise ValueError("retention must be longer than compression_after")
        if self.retry_initial <= timedelta(0) or self.retry_max < self.retry_initial:
            raise ValueError("retry_initial must be positive and at most retry_max")
        return self

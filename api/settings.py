"""Settings of the API, read from ``TUTORSTREAM_*`` environment variables."""

from __future__ import annotations

import os
import socket
import uuid

from pydantic import BaseModel, Field, SecretStr, model_validator

from api.console.options import DEV_ROSTER_KEY, DEV_SESSION_KEY, ConsoleOptions
from common.settings import LOCAL_DATABASE_URL, LOCAL_KAFKA_BOOTSTRAP, CommonSettings, Mode
from schemas.profiles import ProfileSettings


def _instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class ApiOptions(BaseModel):
    """What only the API reads: ``TUTORSTREAM_API__*``.

    Attributes:
        host: ``TUTORSTREAM_API__HOST``, the address ``tutorstream api`` listens on.
        port: ``TUTORSTREAM_API__PORT``.
        instance_id: ``TUTORSTREAM_API__INSTANCE_ID``; names this instance's consumer group on
            ``tutor.interventions.v1``, so every instance sees every intervention. Unique per
            process by default.
        max_body_bytes: ``TUTORSTREAM_API__MAX_BODY_BYTES``, the largest request body, after
            gzip decompression (413 beyond it).
        rate_per_s: ``TUTORSTREAM_API__RATE_PER_S``, requests per second allowed per API key
            (429 beyond it); 0 turns the limit off.
        rate_burst: ``TUTORSTREAM_API__RATE_BURST``, requests a key may send at once.
        heartbeat_s: ``TUTORSTREAM_API__HEARTBEAT_S``, seconds between heartbeats on a quiet
            live feed.
        feed_queue_max: ``TUTORSTREAM_API__FEED_QUEUE_MAX``, interventions held for one slow
            live-feed client before it is disconnected (it resumes from its cursor).
        feed_replay_timeout_s: ``TUTORSTREAM_API__FEED_REPLAY_TIMEOUT_S``, longest wait for
            the broker while replaying what a reconnecting client missed.
        key_cache_s: ``TUTORSTREAM_API__KEY_CACHE_S``, how long a checked API key is trusted
            before it is read again (a revocation takes effect within this time).
        pool_min: ``TUTORSTREAM_API__POOL_MIN``, database connections kept open.
        pool_max: ``TUTORSTREAM_API__POOL_MAX``, most database connections.
        delivery_timeout_s: ``TUTORSTREAM_API__DELIVERY_TIMEOUT_S``, longest wait for the
            broker to confirm a record before the request fails with 503.
        page_max: ``TUTORSTREAM_API__PAGE_MAX``, most items in one page of history.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    instance_id: str = Field(default_factory=_instance_id, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    rate_per_s: float = Field(default=200.0, ge=0)
    rate_burst: int = Field(default=400, ge=1)
    heartbeat_s: float = Field(default=15.0, gt=0)
    feed_queue_max: int = Field(default=10_000, ge=1)
    feed_replay_timeout_s: float = Field(default=15.0, gt=0)
    key_cache_s: float = Field(default=5.0, ge=0)
    pool_min: int = Field(default=2, ge=1)
    pool_max: int = Field(default=10, ge=1)
    delivery_timeout_s: float = Field(default=10.0, gt=0)
    page_max: int = Field(default=500, ge=1)


class StoreLocation(BaseModel):
    """Where the store's tables are: ``TUTORSTREAM_STORE__DB_SCHEMA``, shared with the workers."""

    db_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")


class ApiSettings(CommonSettings):
    """Everything the API needs; each field names its environment variable.

    The mode, pseudonym key and topic prefix (the stream workers read the same variables), and
    the production refusal of the development key, are
    :class:`~common.settings.CommonSettings`'.

    Attributes:
        kafka_bootstrap: ``TUTORSTREAM_KAFKA_BOOTSTRAP``, ``host:port[,host:port]``.
        database_url: ``TUTORSTREAM_DATABASE_URL``, libpq URL of the store.
        public_url: ``TUTORSTREAM_PUBLIC_URL``, base URL the API is reached at; names the
            ``authority`` of stored xAPI statements and the home page of learner pseudonyms.
        api: ``TUTORSTREAM_API__*``, see :class:`ApiOptions`.
        store: ``TUTORSTREAM_STORE__DB_SCHEMA``, see :class:`StoreLocation`.
        profiles: ``TUTORSTREAM_PROFILES__FILES`` and ``TUTORSTREAM_PROFILES__DEFAULT``, the
            statement profiles ingest keys read statements with (as for the worker).
        roster_key: ``TUTORSTREAM_ROSTER_KEY``, the key the roster's names are encrypted with
            (AES-GCM, derived with HKDF), kept apart from every other key; unset in development
            uses a development key, unset in production turns the roster off.
        console: ``TUTORSTREAM_CONSOLE__*``, see :class:`api.console.options.ConsoleOptions`.
    """

    kafka_bootstrap: str = LOCAL_KAFKA_BOOTSTRAP
    database_url: str = LOCAL_DATABASE_URL
    public_url: str = Field(default="https://tutorstream.invalid", pattern=r"^https?://\S+$")
    api: ApiOptions = Field(default_factory=ApiOptions)
    store: StoreLocation = Field(default_factory=StoreLocation)
    profiles: ProfileSettings = Field(default_factory=ProfileSettings)
    roster_key: SecretStr | None = None
    console: ConsoleOptions = Field(default_factory=ConsoleOptions)

    @model_validator(mode="after")
    def _refuse_dev_console_keys_in_production(self) -> ApiSettings:
        if self.mode is not Mode.PRODUCTION:
            return self
        roster = self.roster_key.get_secret_value() if self.roster_key else None
        if roster is not None and (roster == DEV_ROSTER_KEY or len(roster) < 32):
            raise ValueError(
                "TUTORSTREAM_ROSTER_KEY must be a secret of at least 32 characters in "
                "production mode (or unset: no roster)"
            )
        session = self.console.session_key.get_secret_value()
        if self.console.oidc_issuer and (session == DEV_SESSION_KEY or len(session) < 32):
            raise ValueError(
                "TUTORSTREAM_CONSOLE__SESSION_KEY must be a secret of at least 32 characters "
                "in production mode"
            )
        if not self.console.cookie_secure:
            raise ValueError("TUTORSTREAM_CONSOLE__COOKIE_SECURE cannot be off in production")
        return self

    def roster_key_bytes(self) -> bytes | None:
        """Return the roster's key as bytes, or ``None`` when the roster is off."""
        if self.roster_key is not None:
            return self.roster_key.get_secret_value().encode()
        return DEV_ROSTER_KEY.encode() if self.mode is Mode.DEV else None

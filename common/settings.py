"""The settings every deployable shares, read from ``TUTORSTREAM_*`` environment variables."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PSEUDONYM_KEY: Final = "tutorstream-dev-pseudonym-key-change-me"
"""Key of development setups; production settings refuse it."""

MIN_PSEUDONYM_KEY_LENGTH: Final = 32
"""Shortest pseudonym key production accepts (characters)."""

LOCAL_KAFKA_BOOTSTRAP: Final = "127.0.0.1:9092"
"""Broker a component reaches when ``TUTORSTREAM_KAFKA_BOOTSTRAP`` is unset."""

LOCAL_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Store a component reaches when ``TUTORSTREAM_DATABASE_URL`` is unset."""


class Mode(StrEnum):
    """Where tutorstream runs; production refuses development defaults."""

    DEV = "dev"
    PRODUCTION = "production"


class CommonSettings(BaseSettings):
    """What every deployable reads; each component's settings extend it.

    ``kafka_bootstrap`` and ``database_url`` are unset here: the wiring reads that as "start the
    embedded stack", while the workers and the API, which cannot start one, narrow them to
    :data:`LOCAL_KAFKA_BOOTSTRAP` and :data:`LOCAL_DATABASE_URL`.

    Attributes:
        mode: ``TUTORSTREAM_MODE``; ``production`` refuses the development pseudonym key.
        kafka_bootstrap: ``TUTORSTREAM_KAFKA_BOOTSTRAP``, ``host:port[,host:port]``.
        database_url: ``TUTORSTREAM_DATABASE_URL``, libpq URL of the store.
        pseudonym_key: ``TUTORSTREAM_PSEUDONYM_KEY``, HMAC key for learner pseudonyms.
        topic_prefix: ``TUTORSTREAM_TOPIC_PREFIX``, put before every catalogue topic name
            (several pipelines, or tests, on one cluster).
    """

    model_config = SettingsConfigDict(
        env_prefix="TUTORSTREAM_", env_nested_delimiter="__", extra="ignore"
    )

    mode: Mode = Mode.DEV
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")

    @model_validator(mode="after")
    def _refuse_dev_key_in_production(self) -> Self:
        key = self.pseudonym_key.get_secret_value()
        if self.mode is Mode.PRODUCTION and (
            key == DEV_PSEUDONYM_KEY or len(key) < MIN_PSEUDONYM_KEY_LENGTH
        ):
            raise ValueError(
                f"TUTORSTREAM_PSEUDONYM_KEY must be set to a secret of at least "
                f"{MIN_PSEUDONYM_KEY_LENGTH} characters in production mode"
            )
        return self

    def topic(self, name: str) -> str:
        """Return the name of catalogue topic ``name`` on this deployment."""
        return f"{self.topic_prefix}{name}"

    def pseudonym_key_bytes(self) -> bytes:
        """Return the pseudonym key as bytes for HMAC."""
        return self.pseudonym_key.get_secret_value().encode()

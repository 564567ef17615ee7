"""Settings of the wiring package, read from ``TUTORSTREAM_*`` environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.pseudonym import DEV_PSEUDONYM_KEY


class Mode(StrEnum):
    """Where tutorstream runs; production refuses development defaults."""

    DEV = "dev"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Top-level settings shared by the command line.

    Attributes:
        mode: ``TUTORSTREAM_MODE``; ``production`` refuses the development pseudonym key.
        kafka_bootstrap: ``TUTORSTREAM_KAFKA_BOOTSTRAP``; when unset the embedded broker is used.
        database_url: ``TUTORSTREAM_DATABASE_URL``; when unset the embedded PostgreSQL is used.
        pseudonym_key: ``TUTORSTREAM_PSEUDONYM_KEY``, the HMAC key for learner pseudonyms.
        state_dir: ``TUTORSTREAM_STATE_DIR``, where the embedded stack keeps its data.
    """

    model_config = SettingsConfigDict(
        env_prefix="TUTORSTREAM_", env_nested_delimiter="__", extra="ignore"
    )

    mode: Mode = Mode.DEV
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    state_dir: Path = Path(".state")

    @model_validator(mode="after")
    def _refuse_dev_key_in_production(self) -> Settings:
        if self.mode is Mode.PRODUCTION and (
            self.pseudonym_key.get_secret_value() == DEV_PSEUDONYM_KEY
            or len(self.pseudonym_key.get_secret_value()) < 32
        ):
            raise ValueError(
                "TUTORSTREAM_PSEUDONYM_KEY must be set to a secret of at least 32 characters "
                "in production mode"
            )
        return self

    def pseudonym_key_bytes(self) -> bytes:
        """Return the pseudonym key as bytes for HMAC."""
        return self.pseudonym_key.get_secret_value().encode()

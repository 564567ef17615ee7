"""Settings of the wiring package, read from ``TUTORSTREAM_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from common.settings import CommonSettings


class Settings(CommonSettings):
    """Top-level settings shared by the command line.

    Attributes:
        kafka_bootstrap: ``TUTORSTREAM_KAFKA_BOOTSTRAP``; when unset the embedded broker is used.
        database_url: ``TUTORSTREAM_DATABASE_URL``; when unset the embedded PostgreSQL is used.
        state_dir: ``TUTORSTREAM_STATE_DIR``, where the embedded stack keeps its data.

    The mode, pseudonym key and topic prefix are :class:`~common.settings.CommonSettings`'.
    """

    state_dir: Path = Path(".state")

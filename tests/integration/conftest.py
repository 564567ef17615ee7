"""Fixtures for integration tests: the command line run as a real process.

The services themselves (``kafka_bootstrap``, ``postgres_url``, ``timescale_url``) and the
per-test namespaces (``topic_factory``, ``read_topic``, ``pg_schema``) come from
``tests/conftest.py``, shared with the end-to-end tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tutorstream.settings import Settings
from tutorstream.stack import Stack

RunCli = Callable[..., subprocess.CompletedProcess[str]]

# Variables that would point a command at services other than the test's own.
_SERVICE_VARIABLES = ("TUTORSTREAM_KAFKA_BOOTSTRAP", "TUTORSTREAM_DATABASE_URL")


def _command() -> list[str]:
    script = shutil.which("tutorstream", path=str(Path(sys.executable).parent))
    if script is not None:
        return [script]
    return [sys.executable, "-c", "from tutorstream.cli import main; main()"]


@pytest.fixture
def cli_state_dir(tmp_path: Path) -> Path:
    """The ``TUTORSTREAM_STATE_DIR`` of this test's command-line runs."""
    return tmp_path / "state"


@pytest.fixture
def run_cli(cli_state_dir: Path) -> Iterator[RunCli]:
    """Run ``tutorstream ARGS...`` as a subprocess and return the completed process.

    Call it as ``run_cli("topics", "create", env={...}, input="...", timeout=120)``. The run
    gets its own state folder and no inherited ``TUTORSTREAM_KAFKA_BOOTSTRAP`` or
    ``TUTORSTREAM_DATABASE_URL``; pass them in ``env`` to point it at the session's services.
    Whatever embedded stack a test started in its state folder is stopped afterwards.
    """

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 180.0,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARIABLES}
        full_env["TUTORSTREAM_STATE_DIR"] = str(cli_state_dir)
        full_env.update(env or {})
        return subprocess.run(
            [*_command(), *args],
            env=full_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    yield run
    if (cli_state_dir / "stack.json").exists():
        Stack(Settings(state_dir=cli_state_dir)).down()

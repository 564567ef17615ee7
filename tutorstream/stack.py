"""The embedded stack: a Kafka-protocol broker and PostgreSQL on loopback, kept in a state folder.

``tutorstream stack up`` starts what is not configured from outside, detached, and records each
service (pid, port, URL, log) in ``<state_dir>/stack.json``; the other commands read that file to
find the broker and the database. When ``TUTORSTREAM_KAFKA_BOOTSTRAP`` or
``TUTORSTREAM_DATABASE_URL`` is set, that service is used instead of starting one, so the same
commands run against Apache Kafka and TimescaleDB.

State folder layout::

    <state_dir>/stack.json    running services
    <state_dir>/logs/         broker.log, postgres.log, timescale.log
    <state_dir>/postgres/     the PostgreSQL cluster (kept across `down` / `up`)
    <state_dir>/timescale/    the TimescaleDB WASM database (kept across `down` / `up`)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from common.settings import KafkaProtocol
from tutorstream import services
from tutorstream.services import ServiceError, ServiceHandle
from tutorstream.settings import Settings

BROKER = "broker"
POSTGRES = "postgres"
TIMESCALE = "timescale"
SERVICES = (BROKER, POSTGRES, TIMESCALE)


class StackError(RuntimeError):
    """Raised when the stack cannot start, or a command needs a service that is not running."""


class Origin(StrEnum):
    """Where a service comes from."""

    EMBEDDED = "embedded"
    EXTERNAL = "external"


class Health(StrEnum):
    """What a status check found."""

    RUNNING = "running"
    NOT_ANSWERING = "not answering"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One service of the stack as seen by ``up`` or ``status``.

    Attributes:
        name: ``broker``, ``postgres`` or ``timescale``.
        origin: started here (embedded) or configured by environment (external).
        health: running and answering, running but not answering, or stopped.
        url: what clients use; ``None`` when it is not running.
        pid: the embedded process; ``None`` for an external service.
        log_path: the embedded service's log file.
    """

    name: str
    origin: Origin
    health: Health
    url: str | None = None
    pid: int | None = None
    log_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "name": self.name,
            "origin": self.origin.value,
            "health": self.health.value,
            "url": self.url,
            "pid": self.pid,
            "log_path": str(self.log_path) if self.log_path else None,
        }


def _answers(name: str, url: str) -> bool:
    if name == BROKER:
        return services.kafka_answers(url, timeout=3.0)
    return services.postgres_answers(url, timeout=3.0)


class Stack:
    """The embedded stack of one state folder.

    Args:
        settings: where the state folder is (``TUTORSTREAM_STATE_DIR``) and which services are
            external (``TUTORSTREAM_KAFKA_BOOTSTRAP``, ``TUTORSTREAM_DATABASE_URL``).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.expanduser().absolute()
        self.stack_file = self.state_dir / "stack.json"
        self.log_dir = self.state_dir / "logs"

    # ----------------------------------------------------------------- records

    def _read(self) -> dict[str, ServiceHandle]:
        try:
            raw = json.loads(self.stack_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise StackError(f"cannot read {self.stack_file}: {err}") from err
        return {
            name: ServiceHandle.from_record(record)
            for name, record in raw.get("services", {}).items()
        }

    def _write(self, handles: dict[str, ServiceHandle]) -> None:
        if not handles:
            self.stack_file.unlink(missing_ok=True)
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        body = {"services": {name: handle.to_record() for name, handle in handles.items()}}
        partial = self.stack_file.with_suffix(".json.partial")
        partial.write_text(json.dumps(body, indent=2) + "\n")
        partial.replace(self.stack_file)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the state folder's lock, so two ``up`` or ``down`` never interleave."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _external(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.settings.kafka_bootstrap:
            found[BROKER] = self.settings.kafka_bootstrap
        if self.settings.database_url:
            found[POSTGRES] = self.settings.database_url
        return found

    # ----------------------------------------------------------------- commands

    def up(self, *, timescale: bool = False, timeout: float = 90.0) -> list[ServiceStatus]:
        """Start what is not running yet and wait until every service answers.

        Idempotent: services already running are left as they are.

        Args:
            timescale: also start the TimescaleDB WASM server.
            timeout: seconds to wait for each service.

        Returns:
            The status of every service of the stack.

        Raises:
            StackError: when a service cannot be started, or an external one does not answer
                (services started by this call are stopped again).
        """
        external = self._external()
        for name, url in external.items():
            if not _answers(name, url):
                variable = (
                    "TUTORSTREAM_KAFKA_BOOTSTRAP" if name == BROKER else "TUTORSTREAM_DATABASE_URL"
                )
                raise StackError(f"{variable} is set but nothing answers at {redact_url(url)}")
        wanted = [BROKER, POSTGRES] + ([TIMESCALE] if timescale else [])
        with self._locked():
            handles = self._read()
            started: list[ServiceHandle] = []
            try:
                for name in wanted:
                    if name in external:
                        continue
                    known = handles.get(name)
                    if known is not None and known.is_running() and _answers(name, known.url):
                        continue
                    if known is not None:
                        known.stop(timeout=10.0)
                    handle = self._start(name, known.port if known else None, timeout)
                    started.append(handle)
                    handles[name] = handle
                    self._write(handles)
            except ServiceError as err:
                for handle in started:
                    handle.stop()
                    handles.pop(handle.name, None)
                self._write(handles)
                raise StackError(str(err)) from err
        return self.status()

    def _start(self, name: str, port: int | None, timeout: float) -> ServiceHandle:
        # A port used by the previous run is tried again, so URLs stay the same across restarts.
        if port is not None and services.port_answers(services.LOOPBACK, port):
            port = None
        if name == BROKER:
            return services.start_broker(self.log_dir, port=port, attached=False, timeout=timeout)
        if name == POSTGRES:
            return services.start_postgres(
                self.state_dir / "postgres",
                self.log_dir,
                port=port,
                attached=False,
                timeout=timeout,
            )
        return services.start_timescale(
            self.log_dir,
            data_dir=self.state_dir / "timescale",
            port=port,
            attached=False,
            timeout=timeout,
        )

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop the embedded services cleanly; external ones are left alone.

        Args:
            purge: also delete the databases and logs in the state folder.

        Returns:
            The names of the services stopped.
        """
        with self._locked():
            handles = self._read()
            stopped = []
            for name, handle in handles.items():
                if handle.is_running():
                    stopped.append(name)
                handle.stop()
            self._write({})
            if purge:
                for folder in ("postgres", "timescale", "logs"):
                    shutil.rmtree(self.state_dir / folder, ignore_errors=True)
        return stopped

    def status(self) -> list[ServiceStatus]:
        """Return what runs: each embedded service recorded, each external one configured."""
        found: list[ServiceStatus] = []
        external = self._external()
        handles = self._read()
        for name in SERVICES:
            if name in external:
                url = external[name]
                health = Health.RUNNING if _answers(name, url) else Health.NOT_ANSWERING
                found.append(ServiceStatus(name, Origin.EXTERNAL, health, url))
                continue
            handle = handles.get(name)
            if handle is None:
                if name != TIMESCALE:
                    found.append(ServiceStatus(name, Origin.EMBEDDED, Health.STOPPED))
                continue
            if not handle.is_running():
                health = Health.STOPPED
            elif _answers(name, handle.url):
                health = Health.RUNNING
            else:
                health = Health.NOT_ANSWERING
            found.append(
                ServiceStatus(
                    name,
                    Origin.EMBEDDED,
                    health,
                    handle.url if health is not Health.STOPPED else None,
                    handle.pid,
                    handle.log_path,
                )
            )
        return found

    # ----------------------------------------------------------------- lookups

    def url_of(self, name: str) -> str:
        """Return the URL of a service: the environment's when set, else the running stack's.

        Raises:
            StackError: when the service is neither configured nor running.
        """
        external = self._external()
        if name in external:
            return external[name]
        protocol = self.settings.kafka_security.protocol
        if name == BROKER and protocol is not KafkaProtocol.PLAINTEXT:
            # the embedded broker would cut off every client at its first request
            raise StackError(
                f"the embedded broker speaks plaintext, not {protocol.value}: set "
                "TUTORSTREAM_KAFKA_BOOTSTRAP to the cluster the TUTORSTREAM_KAFKA_SECURITY__* "
                "settings are for, or unset them"
            )
        handle = self._read().get(name)
        if handle is None or not handle.is_running():
            flag = " --timescale" if name == TIMESCALE else ""
            raise StackError(
                f"no {name} is running for state folder {self.state_dir}: run "
                f"`tutorstream stack up{flag}` or set "
                + ("TUTORSTREAM_KAFKA_BOOTSTRAP" if name == BROKER else "TUTORSTREAM_DATABASE_URL")
            )
        return handle.url


def kafka_bootstrap(settings: Settings) -> str:
    """Return the broker to use: ``TUTORSTREAM_KAFKA_BOOTSTRAP``, else the embedded stack's.

    Raises:
        StackError: when neither is available.
    """
    return Stack(settings).url_of(BROKER)


def database_url(settings: Settings) -> str:
    """Return the database to use: ``TUTORSTREAM_DATABASE_URL``, else the embedded PostgreSQL.

    Raises:
        StackError: when neither is available.
    """
    return Stack(settings).url_of(POSTGRES)


def timescale_url(settings: Settings) -> str:
    """Return the URL of the embedded TimescaleDB WASM server (``stack up --timescale``).

    Raises:
        StackError: when it is not running.
    """
    return Stack(settings).url_of(TIMESCALE)


def redact_url(url: str) -> str:
    """Return ``url`` without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def child_environment(settings: Settings) -> dict[str, str]:
    """Return ``os.environ`` plus the stack's broker and database as ``TUTORSTREAM_*`` variables.

    For processes started by the demo (workers, API) so they find the same services.
    """
    env = dict(os.environ)
    env["TUTORSTREAM_KAFKA_BOOTSTRAP"] = kafka_bootstrap(settings)
    env["TUTORSTREAM_DATABASE_URL"] = database_url(settings)
    return env

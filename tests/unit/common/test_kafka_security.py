"""TLS and SASL settings of the Kafka clients: bad combinations refused, clients built from them.

librdkafka checks every setting when a client is constructed (an unknown key, a bad value or an
unreadable CA file raises there), so building a real ``Producer`` from the settings checks them
without a broker. The connections themselves are tested in
tests/integration/test_kafka_tls_sasl.py.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr, ValidationError

from common.kafka import (
    admin_config,
    aiokafka_config,
    consumer_config,
    producer_config,
    security_config,
    ssl_context,
)
from common.settings import CommonSettings, KafkaProtocol, KafkaSecurity, SaslMechanism
from streams.app import broker_credentials
from tests.kafka_tls import Pki, make_pki

pytestmark = pytest.mark.unit

ENV = "TUTORSTREAM_KAFKA_SECURITY__"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def sasl_ssl(pki: Pki, **changes: object) -> KafkaSecurity:
    values: dict[str, object] = {
        "protocol": KafkaProtocol.SASL_SSL,
        "sasl_mechanism": SaslMechanism.SCRAM_SHA_256,
        "sasl_username": "tutorstream",
        "sasl_password": SecretStr("s3cret-pass"),
        "ssl_ca_file": pki.ca_file,
    }
    return KafkaSecurity.model_validate(values | changes)


def settings_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(ENV + name, value)
    with pytest.raises(ValidationError) as caught:
        CommonSettings()
    return str(caught.value)


def test_the_default_is_the_embedded_brokers_plaintext() -> None:
    security = CommonSettings().kafka_security
    assert security == KafkaSecurity()
    assert security_config(security) == {"security.protocol": "PLAINTEXT"}
    assert ssl_context(security) is None
    assert broker_credentials(security) is None


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv(ENV + "PROTOCOL", "SASL_SSL")
    monkeypatch.setenv(ENV + "SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv(ENV + "SASL_USERNAME", "tutorstream")
    monkeypatch.setenv(ENV + "SASL_PASSWORD", "s3cret-pass")
    monkeypatch.setenv(ENV + "SSL_CA_FILE", str(pki.ca_file))
    monkeypatch.setenv(ENV + "SSL_CHECK_HOSTNAME", "false")
    assert CommonSettings().kafka_security == sasl_ssl(pki, ssl_check_hostname=False)
    # a client made without a component's settings reads the same variables
    assert producer_config("b:9093")["sasl.username"] == "tutorstream"
    assert consumer_config("b:9093", "g")["security.protocol"] == "SASL_SSL"
    assert admin_config("b:9093")["ssl.ca.location"] == str(pki.ca_file)
    assert aiokafka_config("b:9093")["sasl_mechanism"] == "SCRAM-SHA-256"


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_a_username_is_refused(monkeypatch: pytest.MonkeyPatch, protocol: str) -> None:
    message = settings_error(monkeypatch, PROTOCOL=protocol, SASL_PASSWORD="s3cret-pass")
    assert f"{ENV}SASL_USERNAME must be set when {ENV}PROTOCOL={protocol}" in message
    # the refused input is not printed: it holds the password
    assert "s3cret-pass" not in message


def test_sasl_without_a_password_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, PROTOCOL="SASL_PLAINTEXT", SASL_USERNAME="tutorstream")
    assert f"{ENV}SASL_PASSWORD must be set when {ENV}PROTOCOL=SASL_PLAINTEXT" in message


def test_credentials_a_plain_protocol_would_not_send_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = settings_error(
        monkeypatch, PROTOCOL="SSL", SASL_USERNAME="tutorstream", SASL_PASSWORD="s3cret-pass"
    )
    assert "only used by the SASL protocols" in message
    assert "s3cret-pass" not in message


@pytest.mark.parametrize("setting", ["SSL_CA_FILE", "SSL_CERT_FILE", "SSL_KEY_FILE"])
def test_a_missing_tls_file_is_named(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, tmp_path: Path, setting: str
) -> None:
    files = {
        "SSL_CA_FILE": str(pki.ca_file),
        "SSL_CERT_FILE": str(pki.client_cert),
        "SSL_KEY_FILE": str(pki.client_key),
    }
    missing = tmp_path / "nowhere.pem"
    message = settings_error(monkeypatch, PROTOCOL="SSL", **(files | {setting: str(missing)}))
    assert f"{ENV}{setting}: no such file: {missing}" in message


def test_a_folder_is_not_a_tls_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    message = settings_error(monkeypatch, PROTOCOL="SSL", SSL_CA_FILE=str(tmp_path))
    assert f"{ENV}SSL_CA_FILE: no such file" in message


def test_a_client_certificate_needs_its_key(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    message = settings_error(monkeypatch, PROTOCOL="SSL", SSL_CERT_FILE=str(pki.client_cert))
    assert f"{ENV}SSL_CERT_FILE and {ENV}SSL_KEY_FILE go together" in message


def test_tls_files_a_plain_protocol_would_ignore_are_refused(
    monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    message = settings_error(monkeypatch, PROTOCOL="PLAINTEXT", SSL_CA_FILE=str(pki.ca_file))
    assert f"{ENV}SSL_CA_FILE only apply to the TLS protocols" in message


@pytest.mark.parametrize(("name", "value"), [("PROTOCOL", "TLS"), ("SASL_MECHANISM", "GSSAPI")])
def test_an_unknown_protocol_or_mechanism_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    message = settings_error(monkeypatch, **{name: value})
    assert f"kafka_security.{name.lower()}" in message


def test_librdkafka_gets_sasl_and_tls_and_accepts_them(pki: Pki) -> None:
    security = sasl_ssl(
        pki, ssl_cert_file=pki.client_cert, ssl_key_file=pki.client_key, ssl_check_hostname=False
    )
    config = producer_config("127.0.0.1:1", security=security)
    assert config | security_config(security) == config
    assert security_config(security) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "tutorstream",
        "sasl.password": "s3cret-pass",
        "ssl.ca.location": str(pki.ca_file),
        "ssl.certificate.location": str(pki.client_cert),
        "ssl.key.location": str(pki.client_key),
        "ssl.endpoint.identification.algorithm": "none",
    }
    # librdkafka loads the CA, certificate and key and checks every key when a client is made
    Producer(producer_config("127.0.0.1:1", security=security)).flush(0)
    Consumer(consumer_config("127.0.0.1:1", "g", security=security)).close()
    AdminClient(admin_config("127.0.0.1:1", security=security))


def test_the_hostname_is_checked_unless_turned_off(pki: Pki) -> None:
    assert security_config(sasl_ssl(pki))["ssl.endpoint.identification.algorithm"] == "https"
    checked = ssl_context(sasl_ssl(pki))
    unchecked = ssl_context(sasl_ssl(pki, ssl_check_hostname=False))
    assert checked is not None and unchecked is not None
    assert checked.check_hostname and not unchecked.check_hostname
    # the chain is verified either way
    assert checked.verify_mode is unchecked.verify_mode is ssl.CERT_REQUIRED


def test_the_tls_context_trusts_the_ca_file(pki: Pki) -> None:
    context = ssl_context(sasl_ssl(pki))
    assert context is not None
    subjects = [dict(item[0] for item in ca["subject"]) for ca in context.get_ca_certs()]
    assert subjects == [{"commonName": "test-kafka-ca"}]


def test_a_key_that_is_not_the_certificates_is_refused_when_the_context_is_made(
    pki: Pki,
) -> None:
    security = KafkaSecurity(
        protocol=KafkaProtocol.SSL,
        ssl_ca_file=pki.ca_file,
        ssl_cert_file=pki.client_cert,
        ssl_key_file=pki.broker_key,
    )
    with pytest.raises(ssl.SSLError):
        ssl_context(security)


def test_sasl_plaintext_has_no_tls() -> None:
    security = KafkaSecurity(
        protocol=KafkaProtocol.SASL_PLAINTEXT,
        sasl_mechanism=SaslMechanism.PLAIN,
        sasl_username="tutorstream",
        sasl_password=SecretStr("s3cret-pass"),
    )
    assert "ssl.ca.location" not in security_config(security)
    assert ssl_context(security) is None
    assert aiokafka_config("b:1", security=security) == {
        "bootstrap_servers": "b:1",
        "security_protocol": "SASL_PLAINTEXT",
        "ssl_context": None,
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "tutorstream",
        "sasl_plain_password": "s3cret-pass",
    }


@pytest.mark.parametrize("protocol", list(KafkaProtocol))
def test_faust_hands_aiokafka_what_common_kafka_gives_it(pki: Pki, protocol: KafkaProtocol) -> None:
    """The worker's Faust clients and every aiokafka client reach the brokers the same way."""
    values: dict[str, object] = {"protocol": protocol}
    if protocol in (KafkaProtocol.SASL_PLAINTEXT, KafkaProtocol.SASL_SSL):
        values |= {"sasl_username": "tutorstream", "sasl_password": SecretStr("s3cret-pass")}
    if protocol in (KafkaProtocol.SSL, KafkaProtocol.SASL_SSL):
        values |= {"ssl_ca_file": pki.ca_file}
    security = KafkaSecurity.model_validate(values)
    faust_auth = dict(credentials_to_aiokafka_auth(broker_credentials(security)))
    ours = aiokafka_config("b:1", security=security)
    assert faust_auth.pop("security_protocol") == ours["security_protocol"] == protocol.value
    context = faust_auth.pop("ssl_context", None)
    assert (context is None) == (ours["ssl_context"] is None)
    if context is not None:
        assert context.get_ca_certs() == ours["ssl_context"].get_ca_certs()
    assert faust_auth == {key: value for key, value in ours.items() if key.startswith("sasl_")}


def test_faust_credentials_carry_the_mechanism(pki: Pki) -> None:
    credentials = broker_credentials(sasl_ssl(pki))
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.protocol.value == "SASL_SSL"
    # Faust prints credentials in its logs: the password stays out
    assert "s3cret-pass" not in repr(credentials)


def test_the_password_stays_out_of_reprs(pki: Pki) -> None:
    assert "s3cret-pass" not in repr(sasl_ssl(pki))
    assert "s3cret-pass" not in repr(CommonSettings(kafka_security=sasl_ssl(pki)))

"""The Kafka client settings every producer, consumer and admin client of tutorstream starts from.

Settings for librdkafka (``confluent_kafka``) clients, and for aiokafka and Faust where they
are the client. They work on any Kafka-protocol broker (Tansu here, Apache Kafka in production)
and carry what the embedded broker needs to be quick: a short fetch wait and large fetch sizes,
or a consumer polls in small slices and crawls. A caller passes only what differs for its use as
``overrides``.

Every client gets the deployment's TLS and SASL settings (:class:`common.settings.KafkaSecurity`)
here: passed as ``security`` by a component that holds its settings, read from
``TUTORSTREAM_KAFKA_SECURITY__*`` otherwise. ``tests/unit/test_kafka_clients.py`` fails when a
client is made anywhere without these functions.
"""

from __future__ import annotations

import ssl
from typing import Any

from common.settings import KafkaSecurity, kafka_security_from_environment


def _password(security: KafkaSecurity) -> str:
    # KafkaSecurity refuses a SASL protocol without a password
    return "" if security.sasl_password is None else security.sasl_password.get_secret_value()


def security_config(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """Return the librdkafka settings of ``security``: ``security.protocol``, ``sasl.*``, ``ssl.*``.

    Args:
        security: TLS and SASL settings; ``None`` reads ``TUTORSTREAM_KAFKA_SECURITY__*``.
    """
    security = kafka_security_from_environment() if security is None else security
    config: dict[str, Any] = {"security.protocol": security.protocol.value}
    if security.uses_sasl:
        config["sasl.mechanism"] = security.sasl_mechanism.value
        config["sasl.username"] = security.sasl_username
        config["sasl.password"] = _password(security)
    if security.uses_tls:
        if security.ssl_ca_file is not None:
            config["ssl.ca.location"] = str(security.ssl_ca_file)
        if security.ssl_cert_file is not None and security.ssl_key_file is not None:
            config["ssl.certificate.location"] = str(security.ssl_cert_file)
            config["ssl.key.location"] = str(security.ssl_key_file)
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if security.ssl_check_hostname else "none"
        )
    return config


def ssl_context(security: KafkaSecurity | None = None) -> ssl.SSLContext | None:
    """Return the TLS context of aiokafka and Faust clients, or ``None`` for the plain protocols.

    The broker's certificate is always verified (against ``ssl_ca_file``, or the system's CAs);
    ``ssl_check_hostname`` only decides whether it must also name the host.

    Args:
        security: TLS and SASL settings; ``None`` reads ``TUTORSTREAM_KAFKA_SECURITY__*``.
    """
    security = kafka_security_from_environment() if security is None else security
    if not security.uses_tls:
        return None
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH,
        cafile=None if security.ssl_ca_file is None else str(security.ssl_ca_file),
    )
    if security.ssl_cert_file is not None and security.ssl_key_file is not None:
        context.load_cert_chain(str(security.ssl_cert_file), str(security.ssl_key_file))
    context.check_hostname = security.ssl_check_hostname
    return context


def aiokafka_config(
    bootstrap: str, *, security: KafkaSecurity | None = None, **overrides: Any
) -> dict[str, Any]:
    """Return keyword arguments of an aiokafka client: the brokers, TLS and SASL.

    Args:
        bootstrap: the brokers, ``host:port[,host:port]``.
        security: TLS and SASL settings; ``None`` reads ``TUTORSTREAM_KAFKA_SECURITY__*``.
        **overrides: aiokafka keyword arguments that replace or add to these.
    """
    security = kafka_security_from_environment() if security is None else security
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "security_protocol": security.protocol.value,
        "ssl_context": ssl_context(security),
    }
    if security.uses_sasl:
        config["sasl_mechanism"] = security.sasl_mechanism.value
        config["sasl_plain_username"] = security.sasl_username
        config["sasl_plain_password"] = _password(security)
    config.update(overrides)
    return config


def admin_config(
    bootstrap: str, *, security: KafkaSecurity | None = None, **overrides: Any
) -> dict[str, Any]:
    """Return settings for an admin client (topics, configs, offsets).

    Args:
        bootstrap: the brokers, ``host:port[,host:port]``.
        security: TLS and SASL settings; ``None`` reads ``TUTORSTREAM_KAFKA_SECURITY__*``.
        **overrides: librdkafka settings that replace or add to the defaults.
    """
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, **security_config(security)}
    config.update(overrides)
    return config


def producer_config(
    bootstrap: str, *, security: KafkaSecurity | None = None, **overrides: Any
) -> dict[str, Any]:
    """Return settings for an idempotent, ordered producer (``acks=all``, lz4).

    Idempotence keeps retries from duplicating or reordering a learner's events on a partition.

    Args:
        bootstrap: the brokers, ``host:port[,host:port]``.
        security: TLS and SASL settings; ``None`` reads ``TUTORSTREAM_KAFKA_SECURITY__*``.
        **overrides: librdkafka settings that replace or add to the defaults.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        **security_config(security),
        "enable.idempotence": True,
        "acks": "all",
        # Java's and aiokafka's partitioner (common.partitioning.partition_for): a learner's
        # records land on the partition whose stream worker holds that learner's state
        # (librdkafka's default hashes differently).
        "partitioner": "murmur2_random",
        "compression.type": "lz4",
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 200_000,
    }
    config.update(overrides)
    return config


def consumer_config(
    bootstrap: str, group_id: str, *, security: KafkaSecurity | None = None, **overrides: Any
) -> dict[str, Any]:
    """Return consumer settings that read quickly from the start of the log, never auto-committing.

    Large fetch sizes and a short fetch wait: with the defaults a consumer on Tansu receives a
    few records per round trip.

    Args:
        bootstrap: the brokers, ``host:port[,host:port]``.
        group_id: the consumer group.
        security: TLS and SASL settings; ``None`` reads ``TUTORSTREAM_KAFKA_SECURITY__*``.
        **overrides: librdkafka settings that replace or add to the defaults.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        **security_config(security),
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 50,
        "fetch.min.bytes": 1,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "queued.max.messages.kbytes": 256 * 1024,
    }
    config.update(overrides)
    return config

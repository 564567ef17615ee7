"""The settings every deployable shares, read from ``TUTORSTREAM_*`` environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PSEUDONYM_KEY: Final = "tutorstream-dev-pseudonym-key-change-me"
"""Key of development setups; production settings refuse it."""

MIN_PSEUDONYM_KEY_LENGTH: Final = 32
"""Shortest pseudonym key production accepts (characters)."""

LOCAL_KAFKA_BOOTSTRAP: Final = "127.0.0.1:9092"
"""Broker a component reaches when ``TUTORSTREAM_KAFKA_BOOTSTRAP`` is unset."""

LOCAL_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Store a component reaches when ``TUTORSTREAM_DATABASE_URL`` is unset."""


class Mode(StrEnum):
    """Where tutorstream runs; production refuses development defaults."""

    DEV = "dev"
    PRODUCTION = "production"


KAFKA_SECURITY_ENV: Final = "TUTORSTREAM_KAFKA_SECURITY__"
"""Prefix of the environment variables of :class:`KafkaSecurity` (``...PROTOCOL`` and so on)."""


class KafkaProtocol(StrEnum):
    """How clients reach the brokers: Kafka's ``security.protocol``."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    """How clients prove who they are under SASL: Kafka's ``sasl.mechanism``."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class KafkaSecurity(BaseModel):
    """How every Kafka client of tutorstream authenticates and encrypts.

    The defaults (plaintext, no credentials) are the embedded broker's. Each attribute is read
    from ``TUTORSTREAM_KAFKA_SECURITY__<NAME>`` (for instance
    ``TUTORSTREAM_KAFKA_SECURITY__SASL_PASSWORD``). :mod:`common.kafka` turns it into the settings
    of librdkafka, aiokafka and Faust.

    Attributes:
        protocol: ``...PROTOCOL``: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
        sasl_mechanism: ``...SASL_MECHANISM``: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``
            (the SASL protocols only).
        sasl_username: ``...SASL_USERNAME``; required by the SASL protocols.
        sasl_password: ``...SASL_PASSWORD``; required by the SASL protocols.
        ssl_ca_file: ``...SSL_CA_FILE``, PEM file of the CAs that sign the brokers' certificates;
            unset, the system's CAs.
        ssl_cert_file: ``...SSL_CERT_FILE``, PEM client certificate for mutual TLS (with
            ``ssl_key_file``).
        ssl_key_file: ``...SSL_KEY_FILE``, PEM private key of ``ssl_cert_file``, unencrypted.
        ssl_check_hostname: ``...SSL_CHECK_HOSTNAME``: whether a broker's certificate must name
            the host the client dialled. The certificate chain is verified either way.
    """

    # the input of a failed validation holds the password
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    protocol: KafkaProtocol = KafkaProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_check_hostname: bool = True

    @field_validator(
        "sasl_username", "sasl_password", "ssl_ca_file", "ssl_cert_file", "ssl_key_file",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes an optional variable the operator left out as ""
        return None if value == "" else value

    @property
    def uses_sasl(self) -> bool:
        """Whether clients authenticate with SASL."""
        return self.protocol in (KafkaProtocol.SASL_PLAINTEXT, KafkaProtocol.SASL_SSL)

    @property
    def uses_tls(self) -> bool:
        """Whether the connections to the brokers are encrypted."""
        return self.protocol in (KafkaProtocol.SSL, KafkaProtocol.SASL_SSL)

    @model_validator(mode="after")
    def _check_combination(self) -> Self:
        env = KAFKA_SECURITY_ENV
        protocol = f"{env}PROTOCOL={self.protocol.value}"
        if self.uses_sasl:
            for name in ("sasl_username", "sasl_password"):
                value = getattr(self, name)
                secret = value.get_secret_value() if isinstance(value, SecretStr) else value
                if not secret:
                    raise ValueError(f"{env}{name.upper()} must be set when {protocol}")
        elif self.sasl_username is not None or self.sasl_password is not None:
            # credentials the clients would silently not send
            raise ValueError(
                f"{env}SASL_USERNAME and {env}SASL_PASSWORD are only used by the SASL "
                f"protocols (SASL_PLAINTEXT, SASL_SSL), not with {protocol}"
            )
        files = {"ssl_ca_file": self.ssl_ca_file, "ssl_cert_file": self.ssl_cert_file,
                 "ssl_key_file": self.ssl_key_file}  # fmt: skip
        given = {name: path for name, path in files.items() if path is not None}
        if given and not self.uses_tls:
            raise ValueError(
                f"{', '.join(env + name.upper() for name in given)} only apply to the TLS "
                f"protocols (SSL, SASL_SSL), not with {protocol}"
            )
        for name, path in given.items():
            if not path.is_file():
                raise ValueError(f"{env}{name.upper()}: no such file: {path}")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError(
                f"{env}SSL_CERT_FILE and {env}SSL_KEY_FILE go together (mutual TLS): set both "
                "or neither"
            )
        return self


class CommonSettings(BaseSettings):
    """What every deployable reads; each component's settings extend it.

    ``kafka_bootstrap`` and ``database_url`` are unset here: the wiring reads that as "start the
    embedded stack", while the workers and the API, which cannot start one, narrow them to
    :data:`LOCAL_KAFKA_BOOTSTRAP` and :data:`LOCAL_DATABASE_URL`.

    Attributes:
        mode: ``TUTORSTREAM_MODE``; ``production`` refuses the development pseudonym key.
        kafka_bootstrap: ``TUTORSTREAM_KAFKA_BOOTSTRAP``, ``host:port[,host:port]``.
        database_url: ``TUTORSTREAM_DATABASE_URL``, libpq URL of the store.
        pseudonym_key: ``TUTORSTREAM_PSEUDONYM_KEY``, HMAC key for learner pseudonyms.
        topic_prefix: ``TUTORSTREAM_TOPIC_PREFIX``, put before every catalogue topic name
            (several pipelines, or tests, on one cluster).
        kafka_security: ``TUTORSTREAM_KAFKA_SECURITY__*``, TLS and SASL of every Kafka client
            (:class:`KafkaSecurity`).
    """

    # A failed validation would print its input: the pseudonym key, the Kafka password.
    model_config = SettingsConfigDict(
        env_prefix="TUTORSTREAM_", env_nested_delimiter="__", extra="ignore",
        hide_input_in_errors=True,
    )  # fmt: skip

    mode: Mode = Mode.DEV
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    kafka_security: KafkaSecurity = Field(default_factory=KafkaSecurity)

    @model_validator(mode="after")
    def _refuse_dev_key_in_production(self) -> Self:
        key = self.pseudonym_key.get_secret_value()
        if self.mode is Mode.PRODUCTION and (
            key == DEV_PSEUDONYM_KEY or len(key) < MIN_PSEUDONYM_KEY_LENGTH
        ):
            raise ValueError(
                f"TUTORSTREAM_PSEUDONYM_KEY must be set to a secret of at least "
                f"{MIN_PSEUDONYM_KEY_LENGTH} characters in production mode"
            )
        return self

    def topic(self, name: str) -> str:
        """Return the name of catalogue topic ``name`` on this deployment."""
        return f"{self.topic_prefix}{name}"

    def pseudonym_key_bytes(self) -> bytes:
        """Return the pseudonym key as bytes for HMAC."""
        return self.pseudonym_key.get_secret_value().encode()


class _KafkaSecurityEnvironment(BaseSettings):
    """The Kafka security settings alone, read as :class:`CommonSettings` reads them."""

    model_config = SettingsConfigDict(
        env_prefix="TUTORSTREAM_", env_nested_delimiter="__", extra="ignore"
    )

    kafka_security: KafkaSecurity = Field(default_factory=KafkaSecurity)


def kafka_security_from_environment() -> KafkaSecurity:
    """Return the ``TUTORSTREAM_KAFKA_SECURITY__*`` settings of this process.

    For a client made where no component's settings are at hand (the CLI's tools, benchmarks);
    components pass their own ``settings.kafka_security``, read from the same variables.

    Raises:
        pydantic.ValidationError: the variables make a bad combination; the message names them.
    """
    return _KafkaSecurityEnvironment().kafka_security

"""The embedded broker speaks plaintext: TLS or SASL settings with no cluster named fail early."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from common.settings import KafkaProtocol, KafkaSecurity
from tutorstream.settings import Settings
from tutorstream.stack import StackError, kafka_bootstrap

pytestmark = pytest.mark.unit

SASL = KafkaSecurity(
    protocol=KafkaProtocol.SASL_PLAINTEXT,
    sasl_username="tutorstream",
    sasl_password=SecretStr("s3cret-pass"),
)


def test_security_settings_without_a_cluster_name_what_to_set(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, kafka_bootstrap=None, kafka_security=SASL)
    with pytest.raises(StackError, match="embedded broker speaks plaintext, not SASL_PLAINTEXT"):
        kafka_bootstrap(settings)


def test_security_settings_go_with_the_cluster_they_name(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, kafka_bootstrap="kafka:9093", kafka_security=SASL)
    assert kafka_bootstrap(settings) == "kafka:9093"


def test_plaintext_without_a_cluster_asks_for_the_embedded_stack(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="tutorstream stack up"):
        kafka_bootstrap(Settings(state_dir=tmp_path, kafka_bootstrap=None))

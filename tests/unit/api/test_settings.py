from __future__ import annotations

import pytest

from api.settings import ApiSettings

pytestmark = pytest.mark.unit


def test_settings_come_from_tutorstream_variables(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TUTORSTREAM_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("TUTORSTREAM_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("TUTORSTREAM_API__RATE_PER_S", "7.5")
    monkeypatch.setenv("TUTORSTREAM_API__MAX_BODY_BYTES", "65536")
    monkeypatch.setenv("TUTORSTREAM_STORE__DB_SCHEMA", "tenant_a")
    settings = ApiSettings()
    assert settings.kafka_bootstrap == "broker:9092"
    assert settings.topic("tutor.interventions.v1") == "staging.tutor.interventions.v1"
    assert settings.api.rate_per_s == 7.5 and settings.api.max_body_bytes == 65536
    assert settings.store.db_schema == "tenant_a"


def test_each_process_gets_its_own_instance_id():
    assert ApiSettings().api.instance_id != ApiSettings().api.instance_id


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TUTORSTREAM_STORE__DB_SCHEMA", "Robert'); DROP")
    with pytest.raises(ValueError):
        ApiSettings()


def test_production_refuses_the_development_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TUTORSTREAM_MODE", "production")
    with pytest.raises(ValueError, match="PSEUDONYM_KEY"):
        ApiSettings()
    monkeypatch.setenv("TUTORSTREAM_PSEUDONYM_KEY", "x" * 40)
    assert ApiSettings().pseudonym_key_bytes() == b"x" * 40

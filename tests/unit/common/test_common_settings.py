from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import ApiSettings
from common.settings import DEV_PSEUDONYM_KEY, CommonSettings, Mode
from streams.settings import StreamSettings
from tutorstream.settings import Settings

pytestmark = pytest.mark.unit

EVERY_SETTINGS = [CommonSettings, Settings, StreamSettings, ApiSettings]


@pytest.mark.parametrize("cls", EVERY_SETTINGS, ids=lambda cls: cls.__name__)
def test_every_deployable_reads_the_same_variables(
    cls: type[CommonSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTORSTREAM_MODE", "production")
    monkeypatch.setenv("TUTORSTREAM_KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("TUTORSTREAM_DATABASE_URL", "postgresql://store/tutorstream")
    monkeypatch.setenv("TUTORSTREAM_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("TUTORSTREAM_TOPIC_PREFIX", "staging.")
    settings = cls()
    assert settings.mode is Mode.PRODUCTION
    assert settings.kafka_bootstrap == "broker-a:9092,broker-b:9092"
    assert settings.database_url == "postgresql://store/tutorstream"
    assert settings.pseudonym_key_bytes() == b"k" * 32
    assert settings.topic("lms.events.v1") == "staging.lms.events.v1"


@pytest.mark.parametrize("cls", EVERY_SETTINGS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("key", [None, DEV_PSEUDONYM_KEY, "s" * 31])
def test_production_refuses_the_development_key_and_short_keys(
    cls: type[CommonSettings], key: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTORSTREAM_MODE", "production")
    if key is not None:
        monkeypatch.setenv("TUTORSTREAM_PSEUDONYM_KEY", key)
    with pytest.raises(ValidationError, match="TUTORSTREAM_PSEUDONYM_KEY"):
        cls()


@pytest.mark.parametrize("cls", EVERY_SETTINGS, ids=lambda cls: cls.__name__)
def test_development_mode_runs_on_the_development_key(cls: type[CommonSettings]) -> None:
    settings = cls()
    assert settings.mode is Mode.DEV
    assert settings.pseudonym_key_bytes() == DEV_PSEUDONYM_KEY.encode()
    assert settings.topic("lms.events.v1") == "lms.events.v1"


def test_the_stream_workers_refuse_the_development_key_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUTORSTREAM_MODE", "production")
    with pytest.raises(ValidationError, match="at least 32 characters in production mode"):
        StreamSettings()
    monkeypatch.setenv("TUTORSTREAM_PSEUDONYM_KEY", "w" * 40)
    assert StreamSettings().pseudonym_key_bytes() == b"w" * 40


def test_the_wiring_leaves_services_unset_and_the_components_default_to_localhost() -> None:
    wiring = Settings()
    # unset: the wiring starts the embedded broker and database
    assert wiring.kafka_bootstrap is None and wiring.database_url is None
    for component in (StreamSettings(), ApiSettings()):
        assert component.kafka_bootstrap == "127.0.0.1:9092"
        assert component.database_url == "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.mark.parametrize("cls", EVERY_SETTINGS, ids=lambda cls: cls.__name__)
def test_a_topic_prefix_outside_topic_name_characters_is_refused(
    cls: type[CommonSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTORSTREAM_TOPIC_PREFIX", "bad prefix/")
    with pytest.raises(ValidationError, match="topic_prefix"):
        cls()

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from streams.store import StoreMode, StoreSettings, WriteMethod

pytestmark = pytest.mark.unit


def test_defaults_are_seven_days_compression_and_400_days_retention() -> None:
    settings = StoreSettings()
    assert settings.compression_after == timedelta(days=7)
    assert settings.retention == timedelta(days=400)
    assert settings.mode is None
    assert settings.write_method is WriteMethod.AUTO
    assert settings.retry_deadline is None


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTORSTREAM_STORE__COMPRESSION_AFTER", "3 days")
    monkeypatch.setenv("TUTORSTREAM_STORE__RETENTION", "P90D")
    monkeypatch.setenv("TUTORSTREAM_STORE__MODE", "postgresql")
    monkeypatch.setenv("TUTORSTREAM_STORE__WRITE_METHOD", "insert")
    monkeypatch.setenv("TUTORSTREAM_STORE__DB_SCHEMA", "tutoring")
    settings = StoreSettings()
    assert settings.compression_after == timedelta(days=3)
    assert settings.retention == timedelta(days=90)
    assert settings.mode is StoreMode.POSTGRESQL
    assert settings.write_method is WriteMethod.INSERT
    assert settings.db_schema == "tutoring"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retention", timedelta(days=5)),
        ("compression_after", timedelta(0)),
        ("retry_initial", timedelta(0)),
        ("retry_max", timedelta(milliseconds=1)),
        ("db_schema", "Bad-Name"),
    ],
)
def test_settings_that_cannot_work_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        StoreSettings.model_validate({field: value})

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from contract_data import payloads_of
from hypothesis import given, settings
from pydantic import BaseModel, ValidationError

from schemas.exceptions import InvalidEvent
from schemas.records import (
    RECORD_MODELS,
    BehaviouralState,
    DeadLetter,
    FeatureVector,
    Intervention,
    LearnerPrompt,
    Prediction,
    Recommendation,
    intervention_id,
)

pytestmark = pytest.mark.unit

NOW = datetime(2024, 3, 1, 10, 15, tzinfo=UTC)
LEARNER = "a" * 64


def intervention(**changes: Any) -> Intervention:
    fields: dict[str, Any] = {
        "learner_id": LEARNER,
        "event_id": "e-1",
        "state": BehaviouralState.GAMING,
        "confidence": 0.83,
        "prompt": "Before the next hint, what do you already know about this step?",
        "model_name": "learner-states",
        "model_version": "1.0.0",
        "created_at": NOW,
        "class_id": "7b",
        "evidence": {"hints_in_30s": 4, "answer_changes": [1, 2]},
        "prompt_id": "gaming.2",
    }
    return Intervention.create(**{**fields, **changes})


def test_behavioural_states_are_the_closed_set() -> None:
    assert [state.value for state in BehaviouralState] == [
        "none",
        "overconfidence",
        "anchoring",
        "confirmation",
        "gaming",
        "wheel_spinning",
    ]


def test_intervention_ids_are_deterministic_per_learner_state_and_event() -> None:
    first = intervention()
    assert first.intervention_id == intervention().intervention_id
    assert first.intervention_id == intervention_id(LEARNER, BehaviouralState.GAMING, "e-1")
    assert (
        intervention(state=BehaviouralState.WHEEL_SPINNING).intervention_id != first.intervention_id
    )
    assert intervention(event_id="e-2").intervention_id != first.intervention_id
    assert intervention(learner_id="b" * 64).intervention_id != first.intervention_id
    assert first.status == "pending_review"


def test_intervention_status_is_one_of_four() -> None:
    for status in ("pending_review", "sent", "dismissed", "escalated"):
        assert intervention(status=status).status == status
    with pytest.raises(ValidationError):
        intervention(status="approved")
    with pytest.raises(ValidationError):
        intervention(confidence=1.2)


def test_approved_intervention_becomes_a_prompt_with_a_derived_id() -> None:
    approved = intervention()
    prompt = LearnerPrompt.from_intervention(approved, approved_by="key-17", approved_at=NOW)
    assert prompt.text == approved.prompt
    assert prompt.learner_id == approved.learner_id
    again = LearnerPrompt.from_intervention(approved, "key-9", NOW)
    assert prompt.learner_prompt_id == again.learner_prompt_id
    assert prompt.learner_prompt_id != approved.intervention_id
    assert prompt.prompt_id == approved.prompt_id == "gaming.2"


def test_dead_letters_keep_the_original_bytes_and_the_error() -> None:
    original = b'{"verb": "broken\xff'
    error = InvalidEvent("verb", "must be an object, got string", "xapi")
    letter = DeadLetter.from_error(
        original, error, topic="lms.events.v1", partition=3, offset=1042, failed_at=NOW, key=b"k"
    )
    assert letter.original() == original
    assert base64.b64decode(letter.key_b64 or "") == b"k"
    assert (letter.error_path, letter.error_reason, letter.error_source) == (
        "verb",
        "must be an object, got string",
        "xapi",
    )
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter
    with pytest.raises(ValidationError):
        DeadLetter.from_error(original, error, topic="t", partition=-1, offset=0, failed_at=NOW)


def test_recommendation_reasons_are_one_line() -> None:
    item = {"item_id": "frac-12", "predicted_success": 0.7, "reason": "Next step on fractions.add"}
    fields = {
        "learner_id": LEARNER,
        "event_id": "e-1",
        "model_name": "m",
        "model_version": "1",
        "created_at": NOW,
    }
    Recommendation(**fields, items=(item,))
    with pytest.raises(ValidationError):
        Recommendation(**fields, items=({**item, "reason": "two\nlines"},))
    with pytest.raises(ValidationError):
        Recommendation(**fields, items=())
    with pytest.raises(ValidationError):
        Recommendation(**fields, items=({**item, "predicted_success": 1.5},))


def test_feature_vectors_refuse_non_finite_features() -> None:
    fields = {
        "learner_id": LEARNER,
        "event_id": "e-1",
        "timestamp": NOW,
        "feature_set": "v1",
    }
    assert FeatureVector(**fields, features={"rt_z": -0.4}).features == {"rt_z": -0.4}
    with pytest.raises(ValidationError, match="finite"):
        FeatureVector(**fields, features={"rt_z": float("nan")})


def test_predictions_bound_their_probabilities() -> None:
    fields = {
        "learner_id": LEARNER,
        "event_id": "e-1",
        "timestamp": NOW,
        "model_name": "m",
        "model_version": "1",
        "state": "gaming",
        "confidence": 0.6,
    }
    prediction = Prediction(**fields, probabilities={"gaming": 0.6, "none": 0.4})
    assert prediction.probabilities[BehaviouralState.GAMING] == 0.6
    with pytest.raises(ValidationError):
        Prediction(**fields, probabilities={"bored": 1.0})
    with pytest.raises(ValidationError):
        Prediction(**{**fields, "confidence": -0.1}, probabilities={})


@pytest.mark.parametrize("name", sorted(RECORD_MODELS))
def test_records_round_trip_through_json(name: str) -> None:
    model: type[BaseModel] = RECORD_MODELS[name]
    valid = 0

    @settings(max_examples=40, deadline=None)
    @given(payload=payloads_of(model))
    def round_trip(payload: dict[str, Any]) -> None:
        nonlocal valid
        try:
            record = model.model_validate(payload)
        except ValidationError:
            return  # a field-level draw can still break a model-level rule
        valid += 1
        assert model.model_validate_json(record.model_dump_json()) == record

    round_trip()
    assert valid > 0, "the strategy drew no valid record"


def test_a_dead_letter_too_large_for_its_topic_is_truncated_with_size_and_hash() -> None:
    import hashlib

    original = b'{"padding": "' + b"a" * 2_000_000 + b'"}'
    error = InvalidEvent("", "not a statement", "unknown")
    letter = DeadLetter.from_error(original, error, topic="t", partition=3, offset=9, failed_at=NOW)
    assert len(letter.model_dump_json()) > 2_000_000

    fitted = letter.fitted(512 * 1024, 64 * 1024)
    assert len(fitted.model_dump_json()) < 512 * 1024
    digest = hashlib.sha256(original).hexdigest()
    assert fitted.truncated and fitted.original_size == len(original)
    assert fitted.original_sha256 == digest
    assert fitted.original() == original[: 64 * 1024]
    assert "truncated" in fitted.error_reason and digest in fitted.error_reason
    assert fitted.error_reason.startswith("not a statement")
    assert (fitted.topic, fitted.partition, fitted.offset) == ("t", 3, 9)
    assert DeadLetter.model_validate_json(fitted.model_dump_json()) == fitted

    small = DeadLetter.from_error(b"{", error, topic="t", partition=0, offset=0, failed_at=NOW)
    assert small.fitted(512 * 1024, 64 * 1024) is small
    assert not small.truncated and small.original_size is None

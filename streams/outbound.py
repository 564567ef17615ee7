"""From a processed micro-batch to store rows and topic records."""

from __future__ import annotations

from datetime import UTC, datetime

from inference.features import EVENT_FEATURES
from inference.registry import ModelSpec
from inference.states import STATES
from schemas.events import EventType
from schemas.records import (
    BehaviouralState,
    DeadLetter,
    Intervention,
    LearnerPrompt,
    Recommendation,
    RecommendedItem,
)
from streams.processor import BatchResult, DeadLetterOut, InterventionOut, RecommendationOut
from streams.store.sink import StoreBatch

FEATURE_SET = f"v1/{len(EVENT_FEATURES)}"


def store_batch(result: BatchResult, spec: ModelSpec) -> StoreBatch:
    """Return the rows of one micro-batch for :meth:`StoreSink.write`.

    Every new event is stored; decision points also store their features and prediction, and
    answers store the learner's mastery of the item's skills.
    """
    batch = StoreBatch().add_events(result.events)
    prediction = result.prediction
    version = spec.ref
    for row, index in enumerate(result.scored):
        event = result.events[index]
        batch.add_features(event, result.feature_vectors[index].tolist(), FEATURE_SET)
        if prediction is None:
            continue
        state_index = int(prediction.state[row])
        probs = prediction.state_probs[row]
        mastery = result.mastery.get(index) if event.event_type is EventType.ANSWER_SUBMIT else None
        batch.add_prediction(
            event,
            state=STATES[state_index],
            confidence=float(probs[state_index]),
            state_probs=probs.tolist(),
            p_correct=float(prediction.p_correct[row]),
            model_version=version,
            mastery=mastery,
        )
    for item in result.interventions:
        d = item.decision
        batch.add_intervention(
            item.event,
            intervention_id=d.intervention_id,
            state=d.state,
            confidence=d.confidence,
            status=d.status.value,
            prompt=d.prompt.text,
            prompt_id=d.prompt.prompt_id,
            reason=_reason(item),
            model_version=version,
            created_at=datetime.fromtimestamp(item.produced_at, UTC),
        )
    for rec in result.recommendations:
        batch.add_recommendation(
            rec.event,
            item_id=rec.item_id,
            skill_ids=rec.skill_ids,
            p_success=rec.p_success,
            reason=rec.reason,
            model_version=version,
        )
    return batch


def _reason(item: InterventionOut) -> str:
    top = sorted(item.evidence.items(), key=lambda kv: kv[1], reverse=True)[:2]
    return f"{item.decision.state} at {item.decision.confidence:.0%}; " + ", ".join(
        f"{k} {v:.0%}" for k, v in top
    )


def dead_letter(letter: DeadLetterOut) -> DeadLetter:
    """Return the dead-letter record of a record that failed validation."""
    r = letter.record
    return DeadLetter.from_error(
        r.value,
        letter.error,
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        failed_at=datetime.now(UTC),
        key=r.key,
    )


def intervention(item: InterventionOut, spec: ModelSpec) -> Intervention:
    """Return the topic record of an intervention raised in a batch."""
    d = item.decision
    return Intervention(
        intervention_id=d.intervention_id,
        learner_id=item.event.learner_id,
        class_id=item.event.class_id,
        event_id=item.event.event_id,
        state=BehaviouralState(d.state),
        confidence=min(1.0, max(0.0, d.confidence)),
        prompt=d.prompt.text,
        prompt_id=d.prompt.prompt_id,
        model_name=spec.name,
        model_version=spec.version,
        evidence={"state_probabilities": dict(item.evidence), "reason": _reason(item)},
        status=d.status.value,
        created_at=datetime.fromtimestamp(item.produced_at, UTC),
    )


def learner_prompt(record: Intervention, approved_by: str = "policy:auto-send") -> LearnerPrompt:
    """Return the prompt of an intervention the policy sent without waiting for review."""
    return LearnerPrompt.from_intervention(record, approved_by, record.created_at)


def recommendation(rec: RecommendationOut, spec: ModelSpec) -> Recommendation:
    """Return the topic record of a next-item recommendation."""
    items = [
        RecommendedItem(item_id=rec.item_id, predicted_success=_p(rec.p_success), reason=rec.reason)
    ]
    items.extend(
        RecommendedItem(
            item_id=item_id,
            predicted_success=_p(p),
            reason=f"alternative: predicted success {p:.0%}",
        )
        for item_id, p in rec.alternatives
    )
    return Recommendation(
        learner_id=rec.event.learner_id,
        class_id=rec.event.class_id,
        event_id=rec.event.event_id,
        model_name=spec.name,
        model_version=spec.version,
        items=tuple(items),
        created_at=datetime.now(UTC),
    )


def _p(value: float) -> float:
    return min(1.0, max(0.0, float(value)))

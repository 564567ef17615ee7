"""From a processed micro-batch to store rows and topic records."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from pydantic import JsonValue

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
from streams.store.binary import pack_float4_rows
from streams.store.sink import StoreBatch
from streams.store.tables import (
    EVENTS,
    FEATURES,
    PREDICTIONS,
    SKILL_MASTERY,
    Row,
    feature_row,
    prediction_row,
    skill_mastery_rows,
    unmodelled_row,
)

FEATURE_SET = f"v1/{len(EVENT_FEATURES)}"


def store_batch(result: BatchResult, spec: ModelSpec) -> StoreBatch:
    """Return the rows of one micro-batch for :meth:`StoreSink.write`.

    Every new event is stored; decision points also store their features and prediction, and
    answers store the learner's mastery of the item's skills.
    """
    batch = taken_rows(result)
    return batch.merge(decided_rows(result, spec))


def taken_rows(result: BatchResult) -> StoreBatch:
    """Return the rows a batch has once its events are taken: the events and the features.

    They do not wait for the model, so the worker writes them while it runs (see
    :func:`decided_rows`).
    """
    events = result.events
    batch = StoreBatch().add_events(events)
    if result.unmodelled:
        batch.add_rows(EVENTS, (unmodelled_row(e) for e in result.unmodelled))
    if result.scored:
        # the arrays of a batch are encoded for COPY at once, not row by row
        packed = pack_float4_rows(result.feature_vectors[result.scored])
        batch.add_rows(
            FEATURES,
            (
                feature_row(events[i], packed[row], FEATURE_SET)
                for row, i in enumerate(result.scored)
            ),
        )
    return batch


def decided_rows(result: BatchResult, spec: ModelSpec) -> StoreBatch:
    """Return the rows of what the model and the policy decided for a batch."""
    batch = StoreBatch()
    events = result.events
    prediction = result.prediction
    version = spec.ref
    predictions: list[Row] = []
    mastery_rows: list[Row] = []
    if prediction is not None:
        # numpy scalars cost more to read one by one than to convert once per batch
        states = prediction.state.tolist()
        p_correct = prediction.p_correct.tolist()
        all_probs = prediction.state_probs
        confidences = all_probs[np.arange(len(states)), prediction.state].tolist()
        packed_probs = pack_float4_rows(all_probs)
        for row, index in enumerate(result.scored):
            event = events[index]
            predictions.append(
                prediction_row(
                    event,
                    state=STATES[states[row]],
                    confidence=confidences[row],
                    state_probs=packed_probs[row],
                    p_correct=p_correct[row],
                    model_version=version,
                )
            )
            if event.event_type is EventType.ANSWER_SUBMIT:
                mastery = result.mastery.get(index)
                if mastery:
                    mastery_rows.extend(skill_mastery_rows(event, mastery, version))
    # one call per table: the rows of a table in event order, as one event at a time gave
    batch.add_rows(PREDICTIONS, predictions).add_rows(SKILL_MASTERY, mastery_rows)
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
    rule = item.rule
    if rule is not None:
        # the model's probability is reported as it is: the definition, not it, raised this
        return (
            f"{item.decision.state} by definition: {rule.definition}; "
            f"the model's probability {item.decision.confidence:.0%}"
        )
    top = sorted(item.evidence.items(), key=lambda kv: kv[1], reverse=True)[:2]
    return f"{item.decision.state} at {item.decision.confidence:.0%}; " + ", ".join(
        f"{k} {v:.0%}" for k, v in top
    )


def _evidence(item: InterventionOut) -> dict[str, JsonValue]:
    evidence: dict[str, JsonValue] = {
        "state_probabilities": dict(item.evidence),
        "reason": _reason(item),
    }
    if item.rule is not None:
        evidence["rule"] = {
            "name": item.rule.rule,
            "definition": item.rule.definition,
            **item.rule.facts,
        }
    return evidence


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
        evidence=_evidence(item),
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

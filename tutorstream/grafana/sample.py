"""A simulated class written to the store, so the boards have something true to show.

The learner simulator's events (:func:`tutorstream.cohort.labelled_cohort`) are pseudonymised
and normalised like any inbound record, then stored with the model-side rows a worker would
write: a prediction per event on an item (the simulator's true state, mislabelled now and then,
with a confidence), per-skill mastery, interventions under a cooldown, and recommendations. A
share of the interventions is then acted on by a tutor, as the API does.

This is for boards, tests, previews and benchmarks; it stands in for the model and policies, so
its figures say nothing about their quality.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from inference.lab.simulator import EventColumns
from inference.states import STATES
from schemas.events import LearningEvent
from schemas.normalise import normalise
from streams.store import StoreBatch, StoreSettings, StoreSink, connect
from tutorstream.cohort import labelled_cohort

Progress = Callable[[int], None]
"""Called with the number of rows of each batch written."""

MODEL_VERSIONS = ("tutorstream-learner@1", "tutorstream-learner@2")
# Status an intervention ends in, with its weight.
STATUS_WEIGHTS = {"sent": 4, "dismissed": 2, "pending_review": 3, "escalated": 1}
COOLDOWN_EVENTS = 8
MIN_CONFIDENCE = 0.7


@dataclass(slots=True)
class SampleSummary:
    """What :func:`write_sample` stored."""

    events: int = 0
    predictions: int = 0
    interventions: int = 0
    recommendations: int = 0
    acted: int = 0
    classes: set[str] = field(default_factory=set)
    learners: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None


def _labelled_events(
    learners: int, problems: int, seed: int, start: datetime, key: bytes
) -> Iterator[tuple[LearningEvent, str]]:
    for native, state in labelled_cohort(learners, problems, seed, start=start):
        for event in normalise(native, key):
            yield event, state


def stretched_events(
    columns: EventColumns, *, end: datetime, span: timedelta
) -> Iterator[tuple[LearningEvent, str]]:
    """Yield a simulated class's events with their true states, stretched to end at ``end``.

    The simulator packs a course into days; its timestamps are spread linearly over ``span``
    (order kept) so the store holds, say, a year of history. Learner ids are the simulator's
    synthetic pseudonyms.
    """
    order = columns.time_order()
    if len(order) == 0:
        return
    first = columns.learning_event(int(order[0])).timestamp
    last = columns.learning_event(int(order[-1])).timestamp
    stretch = span / max(last - first, timedelta(seconds=1))
    for row in order.tolist():
        event = columns.learning_event(row)
        moved = end - span + (event.timestamp - first) * stretch
        yield event.model_copy(update={"timestamp": moved}), STATES[int(columns.state[row])]


def sample_batches(
    events: Iterable[tuple[LearningEvent, str]],
    *,
    seed: int,
    version_switch: datetime,
    batch_events: int = 2000,
    summary: SampleSummary | None = None,
) -> Iterator[StoreBatch]:
    """Yield store batches of labelled events with plausible model-side rows.

    Args:
        events: learning events in time order, each with the learner's true state.
        seed: seed of the model stand-in.
        version_switch: events from this time on are scored by the second model version.
        batch_events: events per batch.
        summary: filled in as batches are made.
    """
    rng = random.Random(seed)
    # The learner's last event on an item; when the learner moves to another item, a
    # recommendation is recorded at it (the next item most of the time, so "followed" varies).
    pending: dict[str, LearningEvent] = {}
    items: list[str] = []
    seen_items: set[str] = set()
    since_last: dict[str, int] = defaultdict(lambda: COOLDOWN_EVENTS)
    right: dict[tuple[str, str], list[int]] = defaultdict(lambda: [1, 2])
    statuses, weights = zip(*STATUS_WEIGHTS.items(), strict=True)
    summary = summary if summary is not None else SampleSummary()
    batch = StoreBatch()
    count = 0
    for event, true_state in events:
        batch.add_events([event])
        count += 1
        summary.events += 1
        summary.learners.add(event.learner_id)
        if event.class_id is not None:
            summary.classes.add(event.class_id)
        summary.first = summary.first or event.timestamp
        summary.last = event.timestamp
        if event.item_id is not None:
            if event.item_id not in seen_items:
                seen_items.add(event.item_id)
                items.append(event.item_id)
            version = MODEL_VERSIONS[event.timestamp >= version_switch]
            earlier = pending.get(event.learner_id)
            if earlier is not None and earlier.item_id != event.item_id:
                recommended = event.item_id if rng.random() < 0.7 else rng.choice(items)
                batch.add_recommendation(
                    earlier,
                    item_id=recommended,
                    skill_ids=earlier.skill_ids,
                    p_success=round(rng.uniform(0.4, 0.9), 3),
                    reason="closest to 70% predicted success",
                    model_version=version,
                )
                summary.recommendations += 1
            pending[event.learner_id] = event
            state = true_state if rng.random() < 0.85 else rng.choice(STATES)
            confidence = round(rng.uniform(0.55, 0.97), 3)
            rest = (1.0 - confidence) / (len(STATES) - 1)
            probs = [confidence if s == state else rest for s in STATES]
            mastery = {}
            for skill in event.skill_ids:
                tally = right[(event.learner_id, skill)]
                if event.correct is not None:
                    tally[0] += int(event.correct)
                    tally[1] += 1
                mastery[skill] = tally[0] / tally[1]
            batch.add_prediction(
                event,
                state=state,
                confidence=confidence,
                state_probs=probs,
                p_correct=round(rng.uniform(0.2, 0.9), 3),
                model_version=version,
                mastery=mastery,
            )
            summary.predictions += 1
            since_last[event.learner_id] += 1
            if (
                state != "none"
                and confidence >= MIN_CONFIDENCE
                and since_last[event.learner_id] >= COOLDOWN_EVENTS
            ):
                since_last[event.learner_id] = 0
                batch.add_intervention(
                    event,
                    intervention_id=f"iv-{event.event_id}",
                    state=state,
                    confidence=confidence,
                    status=rng.choices(statuses, weights)[0],
                    prompt_id=f"{state}.{rng.randint(1, 2)}",
                    prompt="What would you check before your next answer?",
                    reason=f"{state} detected at {confidence:.2f}",
                    model_version=version,
                    created_at=event.timestamp,
                )
                summary.interventions += 1
        if count >= batch_events:
            yield batch
            batch, count = StoreBatch(), 0
    if len(batch):
        yield batch


def write_batches(
    url: str, schema: str, batches: Iterable[StoreBatch], *, progress: Progress | None = None
) -> None:
    """Write batches through the sink (COPY on PostgreSQL, INSERT on the WASM build)."""

    async def load() -> None:
        async with StoreSink(url, StoreSettings(db_schema=schema)) as sink:
            for batch in batches:
                await sink.write(batch)
                if progress is not None:
                    progress(len(batch))

    asyncio.run(load())


def act_on_interventions(url: str, schema: str) -> int:
    """Give interventions that ended sent, dismissed or escalated a tutor's action.

    ``acted_at`` falls 30 s to 30 min after the intervention was raised and ``acted_by`` is
    set, as the API's action endpoint sets them. Returns how many were updated.
    """
    with connect(url, schema=schema, connect_timeout=30) as conn:
        cursor = conn.execute(
            "UPDATE interventions SET acted_by = 'tutor-sample', acted_at = created_at + "
            "make_interval(secs => 30 + (abs(hashtext(intervention_id)) % 1770)) "
            "WHERE status <> 'pending_review' AND acted_at IS NULL"
        )
        return cursor.rowcount


def write_sample(
    url: str,
    *,
    schema: str = "public",
    learners: int = 60,
    problems: int = 6,
    seed: int = 7,
    start: datetime,
    key: bytes = b"tutorstream-sample-pseudonym-key",
) -> SampleSummary:
    """Write a simulated class to the store at ``url`` and act on some of its interventions.

    The class's native events are pseudonymised and normalised as at ingest; see
    :func:`act_on_interventions` for the tutors' actions.

    Returns:
        What was written.
    """
    labelled = list(_labelled_events(learners, problems, seed, start, key))
    summary = SampleSummary()
    if labelled:
        switch = labelled[len(labelled) // 2][0].timestamp
        batches = sample_batches(labelled, seed=seed, version_switch=switch, summary=summary)
        write_batches(url, schema, batches)
    summary.acted = act_on_interventions(url, schema)
    return summary


def sample_window(summary: SampleSummary) -> tuple[datetime, datetime]:
    """Return a dashboard time range covering the sample, padded by a minute each side."""
    if summary.first is None or summary.last is None:
        raise ValueError("the sample is empty")
    pad = timedelta(minutes=1)
    return summary.first - pad, summary.last + pad

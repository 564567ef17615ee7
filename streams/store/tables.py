"""What the sink writes: each table's columns and how a record becomes a row.

The column lists mirror ``schemas/sql``; a test checks them against a migrated database, so a
migration that changes a table without changing this module fails the build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.events import LearningEvent, UnmodelledEvent
from streams.store.binary import PackedFloat4Array

Row = tuple[Any, ...]
FloatArray = npt.NDArray[np.float32]
"""A ``float4[]`` column's value in a row: a flat float32 array."""
Floats = Sequence[float] | npt.NDArray[np.floating[Any]] | PackedFloat4Array
"""Numbers for a ``float4[]`` column: a sequence, or a flat float32 array or packed value
(kept as they are)."""


@dataclass(frozen=True, slots=True)
class Column:
    """A column the sink fills.

    Attributes:
        name: the column's name.
        pg_type: its PostgreSQL type as psycopg names it (``timestamptz``, ``text[]``), which
            binary COPY needs because the server applies no casts to binary input.
    """

    name: str
    pg_type: str


@dataclass(frozen=True, slots=True)
class Table:
    """A table the sink writes, keyed so that a repeated row is a conflict, not a duplicate.

    Attributes:
        name: the table's name.
        columns: the columns the sink fills, in row order; the rest take their defaults.
        key: the unique key that makes writes idempotent.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    def __hash__(self) -> int:
        # a batch looks its table up once per row: hashing every column spec each time was
        # a measurable share of building a batch, and names are unique
        return hash(self.name)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Return the names of :attr:`columns`."""
        return tuple(c.name for c in self.columns)

    @property
    def pg_types(self) -> tuple[str, ...]:
        """Return the types of :attr:`columns`."""
        return tuple(c.pg_type for c in self.columns)

    @property
    def stage(self) -> str:
        """Return the name of this table's temporary staging table."""
        return f"stage_{self.name}"


def _columns(spec: str) -> tuple[Column, ...]:
    """Parse ``"name type, name type"`` into columns (keeps the table specs readable)."""
    columns = []
    for part in spec.split(","):
        name, pg_type = part.split()
        columns.append(Column(name, pg_type))
    return tuple(columns)


EVENTS = Table(
    "events",
    _columns(
        "time timestamptz, event_id text, learner_id text, class_id text, session_id text, "
        "item_id text, skill_ids text[], event_type text, correct bool, response_hash text, "
        "attempt int4, duration_s float8, hint_level int4, hint_count int4, "
        "item_difficulty float8, resource_relation text, score_scaled float8, source text, "
        "profile text, verb text"
    ),
    key=("event_id", "time"),
)

FEATURES = Table(
    "features",
    _columns(
        "time timestamptz, event_id text, learner_id text, class_id text, item_id text, "
        "vector float4[], feature_set text"
    ),
    key=("event_id", "time"),
)

PREDICTIONS = Table(
    "predictions",
    _columns(
        "time timestamptz, event_id text, learner_id text, class_id text, item_id text, "
        "skill_ids text[], state text, confidence float4, state_probs float4[], "
        "p_correct float4, model_version text"
    ),
    key=("event_id", "time"),
)

SKILL_MASTERY = Table(
    "skill_mastery",
    _columns(
        "time timestamptz, event_id text, skill_id text, learner_id text, class_id text, "
        "mastery float4, model_version text"
    ),
    key=("event_id", "skill_id", "time"),
)

INTERVENTIONS = Table(
    "interventions",
    _columns(
        "time timestamptz, intervention_id text, event_id text, learner_id text, "
        "class_id text, state text, confidence float4, status text, prompt_id text, "
        "prompt text, reason text, model_version text, created_at timestamptz"
    ),
    key=("intervention_id", "time"),
)

RECOMMENDATIONS = Table(
    "recommendations",
    _columns(
        "time timestamptz, event_id text, learner_id text, class_id text, item_id text, "
        "skill_ids text[], p_success float4, reason text, model_version text"
    ),
    key=("event_id", "time"),
)

TABLES: tuple[Table, ...] = (
    EVENTS,
    FEATURES,
    PREDICTIONS,
    SKILL_MASTERY,
    INTERVENTIONS,
    RECOMMENDATIONS,
)
"""Every table the sink writes, in the order a batch writes them."""


def utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC.

    Raises:
        ValueError: for a naive datetime, whose instant is unknown.
    """
    zone = moment.tzinfo
    if zone is UTC:
        return moment  # the normaliser's output: nothing to convert
    if zone is None:
        raise ValueError("naive datetime: the store keeps instants, give a timezone")
    return moment.astimezone(UTC)


def event_row(event: LearningEvent) -> Row:
    """Return the ``events`` row of ``event``."""
    return (
        utc(event.timestamp),
        event.event_id,
        event.learner_id,
        event.class_id,
        event.session_id,
        event.item_id,
        list(event.skill_ids),
        event.event_type.value,
        event.correct,
        event.response_hash,
        event.attempt,
        event.duration_s,
        event.hint_level,
        event.hint_count,
        event.item_difficulty,
        None if event.resource_relation is None else event.resource_relation.value,
        event.score_scaled,
        event.source.value,
        event.profile,
        None,
    )


UNMODELLED_TYPE = "unmodelled"
"""The ``events.event_type`` of a valid statement the model does not use."""


def unmodelled_row(event: UnmodelledEvent) -> Row:
    """Return the ``events`` row of a valid statement the model does not use."""
    return (
        utc(event.timestamp),
        event.event_id,
        event.learner_id,
        event.class_id,
        event.session_id,
        event.item_id,
        [],
        UNMODELLED_TYPE,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        event.source.value,
        event.profile,
        event.verb,
    )


def feature_row(event: LearningEvent, vector: Floats, feature_set: str) -> Row:
    """Return the ``features`` row of the feature vector computed at ``event``.

    Args:
        event: the event the vector was computed at.
        vector: the per-event features, in the order ``feature_set`` names.
        feature_set: names the layout (for instance the model's feature-set version).
    """
    return (
        utc(event.timestamp),
        event.event_id,
        event.learner_id,
        event.class_id,
        event.item_id,
        _floats(vector),
        feature_set,
    )


def prediction_row(
    event: LearningEvent,
    *,
    state: str,
    confidence: float,
    state_probs: Floats,
    p_correct: float | None,
    model_version: str,
) -> Row:
    """Return the ``predictions`` row of the model's output at decision ``event``.

    Args:
        event: the decision event.
        state: the detected state (``none`` when nothing reached its threshold).
        confidence: the model's probability of ``state``.
        state_probs: the probability of every state, in the model's state order.
        p_correct: predicted success on the next item, when computed.
        model_version: ``name@version`` of the model.
    """
    return (
        utc(event.timestamp),
        event.event_id,
        event.learner_id,
        event.class_id,
        event.item_id,
        list(event.skill_ids),
        state,
        float(confidence),
        _floats(state_probs),
        None if p_correct is None else float(p_correct),
        model_version,
    )


def _floats(values: Floats) -> FloatArray | PackedFloat4Array:
    # a float32 array or a packed value goes to the binary COPY dumper as it is (see
    # streams.store.binary); anything else is checked and copied into an array
    if type(values) is PackedFloat4Array:
        return values
    if isinstance(values, np.ndarray) and values.dtype == np.float32 and values.ndim == 1:
        return values
    out = np.array([float(v) for v in values], dtype=np.float32)
    out.flags.writeable = False
    return out


def skill_mastery_rows(
    event: LearningEvent, mastery: Mapping[str, float], model_version: str
) -> list[Row]:
    """Return one ``skill_mastery`` row per skill of ``mastery`` at decision ``event``."""
    time = utc(event.timestamp)
    return [
        (time, event.event_id, skill, event.learner_id, event.class_id, float(value), model_version)
        for skill, value in mastery.items()
    ]


def intervention_row(
    event: LearningEvent,
    *,
    intervention_id: str,
    state: str,
    confidence: float,
    status: str,
    prompt: str,
    prompt_id: str | None = None,
    reason: str | None = None,
    model_version: str | None = None,
    created_at: datetime | None = None,
) -> Row:
    """Return the ``interventions`` row of an intervention raised at decision ``event``.

    Its time is the event's, so a replay produces the same key. ``created_at`` is when the
    policy raised it (wall clock), the start of the tutor's time to review.
    """
    return (
        utc(event.timestamp),
        intervention_id,
        event.event_id,
        event.learner_id,
        event.class_id,
        state,
        float(confidence),
        status,
        prompt_id,
        prompt,
        reason,
        model_version,
        utc(created_at) if created_at is not None else datetime.now(UTC),
    )


def recommendation_row(
    event: LearningEvent,
    *,
    item_id: str,
    skill_ids: Sequence[str] = (),
    p_success: float | None = None,
    reason: str | None = None,
    model_version: str | None = None,
) -> Row:
    """Return the ``recommendations`` row of the next item recommended at ``event``."""
    return (
        utc(event.timestamp),
        event.event_id,
        event.learner_id,
        event.class_id,
        item_id,
        list(skill_ids),
        None if p_success is None else float(p_success),
        reason,
        model_version,
    )

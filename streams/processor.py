"""The pipeline's per-batch logic, free of Faust so tests, replay and benchmarks can drive it.

One call of :meth:`EventProcessor.process` takes the raw records of a micro-batch and returns
everything the worker must make durable or publish before it acknowledges them: store rows,
dead letters, events to forward to their learner's partition, interventions and
recommendations. The worker (``streams.app``) owns the I/O and the acknowledgements.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from inference.features import FeatureExtractor, ItemNorms
from inference.policy import DEFAULT_TARGET, CourseItem, CourseMap, NextItemPolicy
from inference.rules import BehaviourRules, Finding
from inference.runtime import LearnerModel, Prediction
from inference.states import STATES
from schemas.events import EventType, LearningEvent, SourceFormat, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from schemas.profiles.compiled import CompiledProfile, builtin
from streams import metrics
from streams.carried import CarriedModel, CarriedSteps, StepGatherer
from streams.learner_state import LearnerRecord
from streams.policy import Decision, InterventionPolicy, SuppressReason
from streams.snapshots import HeldWrites

logger = logging.getLogger(__name__)

# Media events say little about the states and arrive in bursts: they update the features
# but are not scored, which keeps the model's load proportional to problem-solving work.
_UNSCORED = frozenset(
    {EventType.MEDIA_PLAY, EventType.MEDIA_PAUSE, EventType.MEDIA_SEEK, EventType.MEDIA_COMPLETE}
)
# Recommend the next item when a learner finishes one (or submits a correct answer).
_RECOMMEND_ON = frozenset({EventType.PROBLEM_COMPLETE})
_PROBLEM_START = EventType.PROBLEM_START
_ANSWER_SUBMIT = EventType.ANSWER_SUBMIT
_MASTERY_INDEX = 2  # position of the BKT mastery in a skill's statistics (inference.features)
_MAX_CATALOGUE = 256
_MAX_WRITTEN = 200_000

WINDOW_FALLBACK = 32
"""Events per window for a model that declares none (its ``window`` is 0)."""
"""Learners whose decoded state a StateView keeps between batches (then it starts afresh)."""
_EMPTY_2D = np.zeros((0, 0), dtype=np.float32)
_EMPTY_2D.flags.writeable = False


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """A Kafka record as the processor needs it.

    Attributes:
        value: the record's bytes as the producer sent them.
        key: the record's key as the producer sent it.
        topic: source topic.
        partition: source partition.
        offset: source offset.
        timestamp: the record's Kafka timestamp, epoch seconds.
        normalised: True when the value is a :class:`LearningEvent` forwarded by another
            worker (already validated and pseudonymised).
        origin: ``topic/partition`` the event first arrived on, when that is not this
            record's own (a forwarded event, or a replay that places a learner's state on
            another partition); empty otherwise.
        origin_offset: the offset it first arrived at, with ``origin``.
        profile: the statement profile the producer named in the record's
            ``tutorstream-profile`` header; empty for the worker's default.
    """

    value: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: float
    normalised: bool = False
    origin: str = ""
    origin_offset: int = -1
    profile: str = ""

    @property
    def source(self) -> tuple[str, int]:
        """Return the ``topic/partition`` and offset the record's events first arrived at."""
        if self.origin:
            return self.origin, self.origin_offset
        return f"{self.topic}/{self.partition}", self.offset


@dataclass(frozen=True, slots=True)
class DeadLetterOut:
    """A record that failed validation, with where it came from and why.

    ``kind`` labels it in ``tutorstream_dlq_total``, counted once the topic has it.
    """

    record: InboundRecord
    error: InvalidEvent
    kind: str = "unreadable"


@dataclass(frozen=True, slots=True)
class InterventionOut:
    """An intervention raised in this batch, with what the sinks and topics need."""

    decision: Decision
    event: LearningEvent
    evidence: dict[str, float]
    produced_at: float
    record_timestamp: float
    rule: Finding | None = None
    """The literature definition that raised it (``inference.rules``); ``None``: the model."""


@dataclass(frozen=True, slots=True)
class RecommendationOut:
    """A next-item recommendation made in this batch."""

    event: LearningEvent
    item_id: str
    skill_ids: tuple[str, ...]
    p_success: float
    reason: str
    alternatives: tuple[tuple[str, float], ...]


@dataclass(slots=True)
class BatchResult:
    """Everything one micro-batch produced.

    ``feature_vectors`` has one row per new event (``[len(events), F]``); ``windows``,
    ``masks`` and ``queries`` one row per scored event, in the order of ``scored``: the
    model's inputs, filled in place as events are featurised rather than stacked afterwards.
    For a model that carries each learner's state, ``steps`` replaces ``windows`` and
    ``masks`` (:mod:`streams.carried`).
    """

    events: list[LearningEvent] = field(default_factory=list)
    event_records: list[InboundRecord] = field(default_factory=list)
    feature_vectors: npt.NDArray[np.float32] = field(default_factory=lambda: _EMPTY_2D)
    scored: list[int] = field(default_factory=list)
    windows: npt.NDArray[np.float32] | None = None
    masks: npt.NDArray[np.bool_] | None = None
    queries: npt.NDArray[np.float32] | None = None
    steps: CarriedSteps | None = None
    mastery: dict[int, dict[str, float]] = field(default_factory=dict)
    findings: dict[int, Finding] = field(default_factory=dict)
    """Per scored row (position in ``scored``): a literature definition that came to hold."""
    vetoes: dict[int, frozenset[str]] = field(default_factory=dict)
    """Per scored row: states the evidence so far cannot support (``inference.rules``)."""
    prediction: Prediction | None = None
    dead_letters: list[DeadLetterOut] = field(default_factory=list)
    unmodelled: list[UnmodelledEvent] = field(default_factory=list)
    """Valid statements the model does not use: stored, counted, never dead letters."""
    forwards: list[tuple[str, bytes, InboundRecord]] = field(default_factory=list)
    interventions: list[InterventionOut] = field(default_factory=list)
    recommendations: list[RecommendationOut] = field(default_factory=list)
    duplicates: int = 0
    """Events dropped because their id was seen already (a producer's retry)."""
    redelivered: int = 0
    """Events skipped because the learner's state took in their record already."""
    late: int = 0
    """Events whose learner's state had passed their record without taking it in."""
    first_late: tuple[str, int, int, str, str] | None = None
    """The first of them: source, offset, the state's last offset there, event, learner."""
    touched_learners: dict[str, InboundRecord] = field(default_factory=dict)
    touched_items: dict[str, InboundRecord] = field(default_factory=dict)
    touched_catalogues: dict[str, InboundRecord] = field(default_factory=dict)

    @property
    def for_model(self) -> bool:
        """Whether the model has work: events to score, or learners' states to carry."""
        return bool(self.scored) or self.steps is not None


class StateView:
    """Per-learner and per-item state the processor reads and updates during a batch.

    The worker backs it with Faust tables (bytes) and ``held``: a batch's writes wait there
    for the next snapshot (:mod:`streams.snapshots`), and reads look there first. Tests and
    replays back it with plain dicts, written at the end of each batch.
    """

    LEARNERS, ITEMS, CATALOGUES = range(3)
    """Index of each table in ``held``."""

    def __init__(
        self,
        learners: MutableMapping[str, Any],
        items: MutableMapping[str, Any],
        catalogues: MutableMapping[str, Any],
        window: int,
        held: HeldWrites | None = None,
    ) -> None:
        self.window = window
        self._tables = (learners, items, catalogues)
        self.held = held
        self.learner_cache: dict[str, LearnerRecord] = {}
        # Across batches: each learner's last written bytes and the record they encode, so a
        # learner seen again is not decoded again (the window's base64 alone costs more than
        # the rest of the record). Used only while the table still holds those very bytes.
        self._written: dict[str, tuple[bytes, LearnerRecord]] = {}
        self.item_cache: dict[str, ItemNorms] = {}
        self.peek_cache: dict[str, ItemNorms | None] = {}
        self.catalogue_cache: dict[str, dict[str, list[str]]] = {}

    def learner(self, learner_id: str) -> LearnerRecord:
        """Return a learner's record, decoding it once per batch."""
        found = self.learner_cache.get(learner_id)
        if found is None:
            raw = self._read(self.LEARNERS, learner_id)
            kept = self._written.get(learner_id)
            if kept is not None and raw is not None and kept[0] is raw:
                found = kept[1]
            else:
                found = LearnerRecord.from_bytes(raw) if raw else LearnerRecord.new(self.window)
            self.learner_cache[learner_id] = found
        return found

    def item(self, key: str) -> ItemNorms:
        """Return the norms of an item (``key`` is partition-scoped, see the worker)."""
        found = self.item_cache.get(key)
        if found is None:
            found = _item_norms(self._read(self.ITEMS, key)) or ItemNorms()
            self.item_cache[key] = found
        return found

    def peek_item(self, key: str) -> ItemNorms | None:
        """Return the norms of an item without creating them."""
        if key in self.item_cache:
            return self.item_cache[key]
        if key not in self.peek_cache:
            self.peek_cache[key] = _item_norms(self._read(self.ITEMS, key))
        return self.peek_cache[key]

    def catalogue(self, key: str) -> dict[str, list[str]]:
        """Return the items seen in a class on this partition: item id -> skill ids."""
        found = self.catalogue_cache.get(key)
        if found is None:
            raw = self._read(self.CATALOGUES, key)
            found = orjson.loads(raw) if raw else {}
            self.catalogue_cache[key] = found
        return found

    def _read(self, table: int, key: str) -> Any:
        if self.held is not None:
            found = self.held.get(table, key)
            if found is not None:
                return found
        return self._tables[table].get(key)

    def write_back(self, result: BatchResult) -> None:
        """Write what the batch touched (to ``held`` when set) and forget the decoded copies.

        A held value goes to the changelog partition of the record that touched its key last,
        which is the partition that owns the key.
        """
        touched: tuple[tuple[Mapping[str, Any], dict[str, InboundRecord]], ...] = (
            (self.learner_cache, result.touched_learners),
            (self.item_cache, result.touched_items),
            (self.catalogue_cache, result.touched_catalogues),
        )
        if len(self._written) > _MAX_WRITTEN:
            self._written.clear()
        held = self.held
        for table, (cache, keys) in enumerate(touched):
            store = self._tables[table]
            for key, record in keys.items():
                value = cache[key]
                raw = value.to_bytes() if hasattr(value, "to_bytes") else orjson.dumps(value)
                if held is None:
                    store[key] = raw
                else:
                    held.put(table, key, raw, record.partition)
                if isinstance(value, LearnerRecord):
                    self._written[key] = (raw, value)
        self._end_batch()

    def forget(self) -> None:
        """Drop every decoded copy; the next batch reads the stored state again.

        For a batch that failed: its records were changed in place and were not written.
        """
        self._written.clear()
        self._end_batch()

    def _end_batch(self) -> None:
        self.learner_cache.clear()
        self.item_cache.clear()
        self.peek_cache.clear()
        self.catalogue_cache.clear()


def _item_norms(raw: bytes | None) -> ItemNorms | None:
    return ItemNorms.from_dict(orjson.loads(raw)) if raw else None


InputsReady = Callable[
    [npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]], None
]
"""``(events [n, T, F], mask [n, T], query [n, Q]) -> None``: model inputs of consecutive
scored events, final when passed (see :meth:`EventProcessor.ingest_events`)."""

CandidateScorer = Callable[
    [npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]],
    npt.NDArray[np.float32],
]
"""``(events [L, T, F], mask [L, T], queries [L, K, Q]) -> p_correct [L, K]``, such as
:meth:`inference.runtime.LearnerModel.score_candidates`."""

StateScorer = Callable[[npt.NDArray[np.float32], npt.NDArray[np.float32]], npt.NDArray[np.float32]]
"""``(hidden [L, layers, H], queries [L, K, Q]) -> p_correct [L, K]``, such as
:meth:`inference.runtime.LearnerModel.score_candidates_from_state`."""


def _epoch(moment: datetime) -> float:
    # an aware datetime's timestamp() is its instant whatever its zone; events are always aware
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC).timestamp()
    return moment.timestamp()


class EventProcessor:
    """Normalise, dedupe, featurise, score, decide: the pipeline for one micro-batch.

    Args:
        pseudonym_key: HMAC key for learner pseudonyms.
        owns: tells whether a learner's state lives on the record's partition; events of other
            learners are forwarded to their own partition.
        policy: the intervention policy.
        dedupe_window_s: how long an event id is remembered per learner.
        dedupe_max_ids: most ids remembered per learner.
        target_success: predicted success the next-item policy
            (:class:`inference.policy.NextItemPolicy`, the one ``tutorstream model eval``
            runs in closed loop) aims for.
        profiles: the statement profiles records are read with, by id
            (``TUTORSTREAM_PROFILES__FILES``); the built-in one when ``None``.
        default_profile: the profile of records whose producer names none
            (``TUTORSTREAM_PROFILES__DEFAULT``).
        carried: the model whose recurrent state each learner's record carries
            (:meth:`CarriedModel.of`); ``None`` keeps a window of feature rows as the model's
            input instead.
    """

    def __init__(
        self,
        *,
        pseudonym_key: bytes,
        owns: Callable[[str, InboundRecord], bool],
        policy: InterventionPolicy,
        dedupe_window_s: float = 3600.0,
        dedupe_max_ids: int = 2048,
        target_success: float = DEFAULT_TARGET,
        profiles: Mapping[str, CompiledProfile] | None = None,
        default_profile: str = "builtin",
        carried: CarriedModel | None = None,
    ) -> None:
        self.carried = carried
        self._pseudonymiser = pseudonymiser_for(pseudonym_key)
        self._profiles = dict(profiles) if profiles is not None else {"builtin": builtin()}
        if default_profile not in self._profiles:
            raise ValueError(
                f"default profile {default_profile!r} is not loaded: {sorted(self._profiles)}"
            )
        self._default_profile = self._profiles[default_profile]
        self._owns = owns
        self._policy = policy
        self._extractor = FeatureExtractor()
        self._rules = BehaviourRules()
        self._dedupe_window_s = dedupe_window_s
        self._dedupe_max_ids = dedupe_max_ids
        self.target_success = target_success
        self._policies: dict[str, NextItemPolicy] = {}

    # -- stage 1: records -> new events and their features -------------------------------
    def ingest(
        self,
        records: list[InboundRecord],
        state: StateView,
        stored: Collection[str] = (),
    ) -> BatchResult:
        """Normalise and dedupe ``records``, update features, gather the model's inputs.

        ``stored``: ids of events known to be in the store (see :meth:`doubtful`); without
        them a record the learner's state seems to have passed is processed again, never
        skipped, and the store's unique keys drop what was already there.
        """
        result = BatchResult()
        self._featurise(self.parse(records, result), state, result, stored=stored)
        return result

    def parse(
        self, records: list[InboundRecord], result: BatchResult
    ) -> list[tuple[LearningEvent, InboundRecord]]:
        """Normalise ``records`` and return the events this partition owns, with their records.

        Bad records become ``result``'s dead letters, other partitions' events its forwards.
        """
        with metrics.stage("normalise"):
            metrics.RECORDS_IN.inc(len(records))
            return self._parse(records, result)

    def ingest_parsed(
        self,
        parsed: Sequence[tuple[LearningEvent, InboundRecord]],
        state: StateView,
        result: BatchResult,
        stored: Collection[str] = (),
    ) -> None:
        """Dedupe and featurise events from :meth:`parse` into ``result`` (see :meth:`ingest`)."""
        self._featurise(parsed, state, result, stored=stored)

    @staticmethod
    def doubtful(
        parsed: Sequence[tuple[LearningEvent, InboundRecord]], state: StateView
    ) -> list[str]:
        """Return ids of events whose learner state passed their offset and may have forgotten them.

        Such a record is either one delivered again long after its event (its id has left
        the dedupe window) or one the state jumped over (records delivered out of order,
        or not at all, before a later one was taken): only the store can tell which, and
        :meth:`ingest` skips it only when the store holds it. A record the state passed whose
        event is later than any id it pruned is not asked about: not remembered, it was never
        taken, and it is taken now (late) even if a worker that died stored its rows.
        """
        out = []
        for event, record in parsed:
            learner = state.learner(event.learner_id)
            origin, offset = record.source
            if (
                offset <= learner.offsets.get(origin, -1)
                and not learner.remembers(event.event_id)
                and learner.may_have_forgotten(_epoch(event.timestamp))
            ):
                out.append(event.event_id)
        return out

    def ingest_events(
        self,
        events: Sequence[tuple[LearningEvent, InboundRecord]],
        state: StateView,
        *,
        ready: InputsReady | None = None,
        chunk: int = 1024,
        stored: Collection[str] = (),
    ) -> BatchResult:
        """Dedupe and featurise events already normalised, each with the record it came in.

        A replay normalises records as it reads them (to filter them); this spares it a
        second round through JSON. Every event is taken as owned by its record's partition.

        Args:
            events: the events, each with the record it came in (whose partition keys the
                item norms and catalogues).
            state: learner and item state.
            ready: called with the model inputs of each ``chunk`` scored events (and of the
                rest at the end) as soon as they are final, so the model can score them
                while the next ones are featurised; together, in order, they are
                :meth:`model_inputs`. Not called when the records carry the model's state:
                :meth:`score` steps the whole batch at once.
            chunk: scored events per call of ``ready``.
            stored: ids of events known to be in the store (see :meth:`ingest`).
        """
        result = BatchResult()
        self._featurise(events, state, result, ready, max(1, chunk), stored)
        return result

    def _parse(
        self, records: list[InboundRecord], result: BatchResult
    ) -> list[tuple[LearningEvent, InboundRecord]]:
        parsed: list[tuple[LearningEvent, InboundRecord]] = []
        unmodelled = result.unmodelled
        default_class: dict[str, int] = {}
        for record in records:
            try:
                if record.normalised:
                    events = [LearningEvent.model_validate_json(record.value)]
                else:
                    profile = self._profile(record)
                    events = normalise(
                        record.value,
                        self._pseudonymiser,
                        profile=profile,
                        unmodelled=unmodelled,
                        # a statement with neither timestamp nor stored: when Kafka took it
                        received=datetime.fromtimestamp(record.timestamp, UTC),
                    )
                    fallback = profile.default_class
                    if fallback is not None:
                        for event in events:
                            if event.class_id == fallback:
                                default_class[profile.label] = (
                                    default_class.get(profile.label, 0) + 1
                                )
            except InvalidEvent as err:
                result.dead_letters.append(DeadLetterOut(record, err, _reason_class(err)))
                continue
            except ValueError as err:  # a forwarded event that no longer validates
                bad = InvalidEvent("", f"forwarded event is invalid: {err}", None)
                result.dead_letters.append(DeadLetterOut(record, bad, "forwarded"))
                continue
            for event in events:
                if record.normalised or self._owns(event.learner_id, record):
                    parsed.append((event, record))
                else:
                    result.forwards.append(
                        (event.learner_id, event.model_dump_json().encode(), record)
                    )
        for label, count in default_class.items():
            metrics.DEFAULT_CLASS.labels(label).inc(count)
        for stored in unmodelled:
            metrics.UNMODELLED.labels(metrics.verb_label(stored.verb), stored.profile or "").inc()
        return parsed

    def _profile(self, record: InboundRecord) -> CompiledProfile:
        """Return the profile the record's producer named, or the worker's default.

        Raises:
            InvalidEvent: when the record names a profile this worker does not load; the
                record goes to the DLQ and can be replayed once the profile is deployed.
        """
        if not record.profile:
            return self._default_profile
        found = self._profiles.get(record.profile)
        if found is None:
            raise InvalidEvent(
                "header.tutorstream-profile",
                f"names profile {record.profile[:80]!r}, which this worker does not load "
                f"(it loads {', '.join(sorted(self._profiles))})",
                None,
            )
        return found

    def _featurise(
        self,
        parsed: Sequence[tuple[LearningEvent, InboundRecord]],
        state: StateView,
        result: BatchResult,
        ready: InputsReady | None = None,
        chunk: int = 1024,
        stored: Collection[str] = (),
    ) -> None:
        extractor = self._extractor
        rules = self._rules
        findings, vetoes = result.findings, result.vetoes
        window, n_features = state.window, extractor.n_event_features
        size = len(parsed)
        # the model's inputs are written in place, row by row, for the events that turn out
        # to be decision points: no per-event copies to stack afterwards
        vectors = np.empty((size, n_features), dtype=np.float32)
        steps = None if self.carried is None else StepGatherer(self.carried)
        # a carried state needs no window per decision: the step takes the event's own row
        windows = np.empty((size, window, n_features), dtype=np.float32) if steps is None else None
        masks = np.zeros((size, window), dtype=np.bool_) if steps is None else None
        queries = np.empty((size, extractor.n_query_features), dtype=np.float32)
        horizon, max_ids = self._dedupe_window_s, self._dedupe_max_ids
        events, event_records, scored = result.events, result.event_records, result.scored
        touched_learners, touched_items = result.touched_learners, result.touched_items
        # counted per batch: a labelled counter per event is a measurable share of ingest
        by_source: dict[SourceFormat, int] = {}
        handed = 0  # scored rows already given to ``ready``
        # (learner, source, offset) this batch moved a learner's offset to: the other events
        # of that same record still count, a redelivered record does not
        claimed: set[tuple[str, str, int]] = set()
        # (learner, event id) taken by this batch: a second copy in the same batch (a seek back,
        # or a record forwarded again by a worker that died) may come after a later event has
        # pushed the first out of the dedupe window, and the store does not hold it yet
        taken: set[tuple[str, str]] = set()
        # Each learner's dedupe window is pruned once the batch has taken its events, not as
        # each comes: an id the state remembered when the batch began (so the store was not
        # asked about it) must stay remembered for a copy behind newer events of the batch.
        newest: dict[str, tuple[LearnerRecord, float]] = {}
        with metrics.stage("features"):
            for event, record in parsed:
                learner = state.learner(event.learner_id)
                key = (event.learner_id, event.event_id)
                # A record at or before the last offset this learner's state took from its
                # source may be a redelivery (a worker died or a partition moved before the
                # commit). It is skipped only when its results are known durable: the state
                # remembers its event (a state reaches the changelog only after its batch's
                # rows are committed) or the store holds it. Otherwise the state passed it
                # without taking it (records that came out of order, or a batch lost
                # between fetch and processing), and it is processed now, late.
                origin, offset = record.source
                last = learner.offsets.get(origin, -1)
                at = _epoch(event.timestamp)
                if offset <= last and (
                    offset < last or (event.learner_id, origin, offset) not in claimed
                ):
                    event_id = event.event_id
                    # the store speaks only for ids the state may have taken and forgotten
                    if (
                        key in taken
                        or learner.remembers(event_id)
                        or (event_id in stored and learner.may_have_forgotten(at))
                    ):
                        result.redelivered += 1
                        continue
                    result.late += 1
                    if result.first_late is None:
                        result.first_late = (origin, offset, last, event_id, event.learner_id)
                elif offset != last:
                    learner.offsets[origin] = offset
                    claimed.add((event.learner_id, origin, offset))
                # a producer's retry: another record, the same event id
                if key in taken or not learner.take_id(event.event_id, at):
                    result.duplicates += 1
                    continue
                taken.add(key)
                latest = newest.get(event.learner_id)
                if latest is None or at > latest[1]:
                    newest[event.learner_id] = (learner, at)
                # the member, not its value: an enum's .value is a Python-level descriptor
                source = event.source
                by_source[source] = by_source.get(source, 0) + 1
                item_id = event.item_id
                norms = None
                if item_id is not None:
                    item_key = f"{record.partition}/{item_id}"
                    norms = state.item(item_key)
                    touched_items[item_key] = record
                    if event.class_id is not None and event.event_type is _PROBLEM_START:
                        self._catalogue(state, result, event, record)
                row = len(events)
                features = learner.features
                vector = vectors[row]
                vector[:] = extractor.observe_event(features, norms, event)
                if steps is not None:
                    steps.add(event.learner_id, learner)  # before the window moves on
                learner.push(vector)
                observed = rules.observe(learner.rules, event)
                if event.class_id is not None:
                    learner.class_id = event.class_id
                touched_learners[event.learner_id] = record
                events.append(event)
                event_records.append(record)
                event_type = event.event_type
                if event_type is _ANSWER_SUBMIT and event.skill_ids:
                    skills = features.skills
                    result.mastery[row] = {
                        sid: float(skills[sid][_MASTERY_INDEX])
                        for sid in event.skill_ids
                        if sid in skills
                    }
                if event_type not in _UNSCORED:
                    at = len(scored)
                    scored.append(row)
                    if observed.finding is not None:
                        findings[at] = observed.finding
                    if observed.vetoes:
                        vetoes[at] = observed.vetoes
                    query_item = item_id or features.cur_item
                    queries[at] = extractor.query_list(
                        features,
                        norms if query_item == item_id else None,
                        query_item or "",
                        event.skill_ids,
                    )
                    if windows is not None and masks is not None:
                        windows[at] = learner.window
                        masks[at, window - learner.filled :] = True
                        if ready is not None and at + 1 - handed >= chunk:
                            upto = at + 1
                            ready(windows[handed:upto], masks[handed:upto], queries[handed:upto])
                            handed = upto
        for learner, at in newest.values():
            learner.prune(at, horizon, max_ids)
        if result.duplicates:
            metrics.DUPLICATES.inc(result.duplicates)
        if result.redelivered:
            metrics.REDELIVERED.inc(result.redelivered)
        if result.late:
            metrics.LATE.inc(result.late)
            origin, offset, last, event_id, learner_id = result.first_late or ("", -1, -1, "", "")
            logger.warning(
                "%d records taken late: the state had passed them without taking them (first: "
                "%s@%d, event %s of learner %s, whose state had taken %s up to %d)",
                result.late,
                origin,
                offset,
                event_id,
                learner_id,
                origin,
                last,
            )
        for member, count in by_source.items():
            metrics.EVENTS_IN.labels(member.value).inc(count)
        result.feature_vectors = vectors[: len(events)]
        n_scored = len(scored)
        if steps is not None:
            result.queries = queries[:n_scored]
            result.steps = steps.build(result.feature_vectors, scored, result.queries)
            return
        assert windows is not None and masks is not None
        if ready is not None and handed < n_scored:
            ready(windows[handed:n_scored], masks[handed:n_scored], queries[handed:n_scored])
        result.windows, result.masks, result.queries = (
            windows[:n_scored],
            masks[:n_scored],
            queries[:n_scored],
        )

    def _catalogue(
        self, state: StateView, result: BatchResult, event: LearningEvent, record: InboundRecord
    ) -> None:
        key = f"{record.partition}/{event.class_id}"
        catalogue = state.catalogue(key)
        if event.item_id not in catalogue and len(catalogue) < _MAX_CATALOGUE:
            catalogue[str(event.item_id)] = list(event.skill_ids)
            result.touched_catalogues[key] = record

    def model_inputs(
        self, result: BatchResult
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Return ``events [n, T, F]``, ``mask [n, T]``, ``query [n, Q]`` for scored events.

        Each scored event is a decision point: its window is the learner's history up to and
        including it, snapshotted when it was featurised, and its query describes the item the
        learner is working on, the best guess at the next answer's item.
        """
        if not result.scored or result.windows is None:
            n_f, n_q = self._extractor.n_event_features, self._extractor.n_query_features
            return (
                np.zeros((0, 1, n_f), np.float32),
                np.zeros((0, 1), np.bool_),
                np.zeros((0, n_q), np.float32),
            )
        assert result.masks is not None and result.queries is not None
        return result.windows, result.masks, result.queries

    def score(self, result: BatchResult, model: LearnerModel) -> Prediction:
        """Run the model over the batch; return the scored events' predictions.

        With carried states, every event of the batch takes one recurrent step and the states
        after the batch go back into the learners' records: run it before :meth:`decide`, and
        whenever :attr:`BatchResult.for_model`, even with nothing scored. It runs on the
        model's thread; nothing else touches those records until the batch is decided.
        """
        steps = result.steps
        if steps is None:
            return model.predict(*self.model_inputs(result))
        prediction, after = model.step_events(
            steps.events, steps.slots, steps.hidden, steps.queries, steps.scored
        )
        steps.keep(after)
        return prediction

    # -- stage 3: predictions -> interventions and recommendations ------------------------
    def decide_with(
        self, result: BatchResult, state: StateView, prediction: Prediction, model: LearnerModel
    ) -> None:
        """:meth:`decide`, with ``model`` scoring the next-item candidates (either way)."""
        self.decide(
            result, state, prediction, model.score_candidates, model.score_candidates_from_state
        )

    def decide(
        self,
        result: BatchResult,
        state: StateView,
        prediction: Prediction,
        score_candidates: CandidateScorer | None = None,
        score_from_state: StateScorer | None = None,
    ) -> None:
        """Apply the intervention policy (and, given a scorer, the next-item policy).

        ``score_from_state`` scores the candidate items of learners whose records carry the
        model's state (after :meth:`score`); ``score_candidates`` those of the others.
        """
        result.prediction = prediction
        now = time.time()
        with metrics.stage("policy"):
            states = prediction.state
            findings, vetoes = result.findings, result.vetoes
            # most decision points detect nothing (state 0) and meet no rule: visit the others
            rows = sorted({*np.flatnonzero(states).tolist(), *findings})
            for row in rows:
                state_index = int(states[row])
                name = STATES[state_index]
                if state_index and name in vetoes.get(row, ()):
                    metrics.SUPPRESSED.labels(SuppressReason.NOT_SUPPORTED.value).inc()
                    state_index, name = 0, STATES[0]
                finding = findings.get(row)
                if finding is not None and finding.state != name:
                    # a definition holds that the model does not raise here: the rule raises it
                    name, state_index = finding.state, STATES.index(finding.state)
                elif finding is not None:
                    finding = None  # the model raises it already; it keeps its own detection
                if not state_index:
                    continue
                index = result.scored[row]
                event = result.events[index]
                learner = state.learner(event.learner_id)
                confidence = float(prediction.state_probs[row, state_index])
                outcome = self._policy.decide(
                    learner.alerts,
                    learner_id=event.learner_id,
                    event_id=event.event_id,
                    event_time=_epoch(event.timestamp),
                    state=name,
                    confidence=confidence,
                    by_rule=finding is not None,
                )
                if isinstance(outcome, SuppressReason):
                    metrics.SUPPRESSED.labels(outcome.value).inc()
                    continue
                metrics.INTERVENTIONS.labels(name, outcome.status.value).inc()
                evidence = {
                    STATES[k]: round(float(prediction.state_probs[row, k]), 4)
                    for k in range(len(STATES))
                }
                result.interventions.append(
                    InterventionOut(
                        outcome,
                        event,
                        evidence,
                        now,
                        result.event_records[index].timestamp,
                        finding,
                    )
                )
        if score_candidates is not None:
            with metrics.stage("recommend"):
                self._recommend(result, state, score_candidates, score_from_state)

    def _recommend(
        self,
        result: BatchResult,
        state: StateView,
        score_candidates: CandidateScorer,
        score_from_state: StateScorer | None,
    ) -> None:
        # Every finished item gets a recommendation, so the rows a replay finds again do not
        # depend on where its batches start. The choice is made once per learner and batch,
        # from the learner's state after the batch: an earlier one would be stale before
        # anyone could read it (live, a learner seldom finishes two items in one batch).
        finished: dict[str, list[int]] = {}
        for index, event in enumerate(result.events):
            if event.event_type in _RECOMMEND_ON and event.class_id is not None:
                finished.setdefault(event.learner_id, []).append(index)
        asks: list[tuple[list[int], NextItemPolicy, LearnerRecord]] = []
        queries: list[npt.NDArray[np.float32]] = []
        for learner_id, indices in finished.items():
            event = result.events[indices[-1]]
            partition = result.event_records[indices[-1]].partition
            key = f"{partition}/{event.class_id}"
            catalogue = state.catalogue(key)
            if len(catalogue) < 2:
                continue  # nothing to choose between yet
            if not any(catalogue.values()):
                # the policy chooses a skill first; a class whose items name none (an LMS
                # that sends no skills) has nothing it can choose by
                continue
            policy = self._course_policy(key, catalogue)
            learner = state.learner(learner_id)
            norms = {
                item_id: found
                for item_id in catalogue
                if (found := state.peek_item(f"{partition}/{item_id}")) is not None
            }
            queries.append(policy.query_matrix(learner.features, norms))
            asks.append((indices, policy, learner))
        if not asks:
            return
        # one window (or carried state) per learner and its class's items padded to the
        # longest list: the encoder runs at most once per learner, not once per item
        width = max(q.shape[0] for q in queries)
        padded = np.zeros((len(asks), width, queries[0].shape[1]), dtype=np.float32)
        for n, q in enumerate(queries):
            padded[n, : q.shape[0]] = q
        states = self._carried_states([learner for _, _, learner in asks])
        if score_from_state is not None and states is not None:
            p = score_from_state(states, padded)
        else:
            p = score_candidates(
                np.stack([learner.window for _, _, learner in asks]),
                np.stack([learner.mask() for _, _, learner in asks]),
                padded,
            )
        for n, (indices, policy, learner) in enumerate(asks):
            scores = p[n, : queries[n].shape[0]].astype(np.float64)
            choice = policy.choose(learner.features, scores)
            item = policy.course.items[choice.index]
            reason = policy.reason(learner.features, choice, scores)
            others = sorted(
                (k for k in choice.candidates if k != choice.index),
                key=lambda k: abs(scores[k] - policy.target),
            )
            alternatives = tuple((policy.course.items[k].item_id, float(scores[k])) for k in others)
            for index in indices:
                result.recommendations.append(
                    RecommendationOut(
                        event=result.events[index],
                        item_id=item.item_id,
                        skill_ids=item.skill_ids,
                        p_success=float(scores[choice.index]),
                        reason=reason,
                        alternatives=alternatives[:3],
                    )
                )
                metrics.RECOMMENDATIONS.inc()

    def _carried_states(self, learners: list[LearnerRecord]) -> npt.NDArray[np.float32] | None:
        """``[L, layers, H]`` the learners' carried states; ``None`` if one lacks them."""
        carried = self.carried
        if carried is None:
            return None
        states = []
        for learner in learners:
            state = learner.carried(carried.ref, carried.shape)
            if state is None:
                return None
            states.append(state)
        return np.stack(states)

    def _course_policy(self, key: str, catalogue: dict[str, list[str]]) -> NextItemPolicy:
        """Return the next-item policy over a class's items, rebuilt when the class grows.

        The stream learns a class's items from its events, in the order they first appear,
        and has no prerequisite graph: the policy takes the items' order as the course's.
        """
        found = self._policies.get(key)
        if found is None or len(found.course.items) != len(catalogue):
            course = CourseMap(
                items=tuple(CourseItem(i, tuple(skills)) for i, skills in catalogue.items()),
                prerequisites={},
            )
            found = NextItemPolicy(course, _unscored, target=self.target_success)
            self._policies[key] = found
        return found


def _unscored(query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    raise RuntimeError("the stream scores a class's items itself, in one batch per learner")


def _reason_class(err: InvalidEvent) -> str:
    """Return a low-cardinality label for a validation error (for metrics only)."""
    head = err.path.split(".", 1)[0].split("[", 1)[0]
    return head or "unreadable"

"""Rebuild the store, or rescore into a shadow schema, by running the pipeline over a replay."""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from common.partitioning import PartitionCache
from inference.runtime import LearnerModel, Prediction
from schemas.events import LearningEvent
from streams import outbound
from streams.carried import CarriedModel
from streams.policy import InterventionPolicy
from streams.processor import WINDOW_FALLBACK, EventProcessor, InboundRecord, StateView
from streams.replay.exceptions import ReplayError
from streams.replay.outputs import Batch, Output
from streams.store.sink import StoreBatch, StoreSink


def shadow_schema(model_ref: str) -> str:
    """Return the schema a rescore with ``model_ref`` (a resolved ``name@version``) writes into.

    A rescore never writes to the live tables: its rows go to ``shadow_<name>_<version>``
    beside them (lower-cased; anything but letters, digits and ``_`` becomes ``_``).
    """
    return "shadow_" + re.sub(r"[^a-z0-9_]", "_", model_ref.lower())[:55]


class Rebuild(Output):
    """Run the pipeline over the events into the store, publishing nothing.

    Learner and item state start empty and live in memory for the run; each event is placed on
    the partition its learner's state lives on in the live pipeline, so item norms keyed by
    partition match the live ones. The sinks skip rows already stored, so replaying history
    the live workers processed changes no row.

    Events arrive already normalised (the replay filters them), so they skip the live path's
    parsing; the model scores a batch in chunks on a thread of its own while the rest is
    featurised, and the batch's rows are stored while the replay prepares the next one.

    Args:
        model: the model to score with.
        sink: the store to write to.
        policy: the intervention policy.
        partitions: partitions of the events topic (where learners' state lives).
        dedupe_window_s: how long an event id is remembered per learner.
        dedupe_max_ids: most ids remembered per learner.
        inference_chunk: decision points per model call; the model scores one chunk on a
            thread of its own while the next is featurised, so a model with one intra-op
            thread (``LearnerModel(intra_op_threads=1)``) spends the least CPU per event.
        owned: the partitions whose learners this rebuild holds, when other processes hold
            the rest (:mod:`streams.replay.pool`); ``None``: all of them.

    Raises:
        ReplayError: from :meth:`prepare`, on an event of a learner whose state another
            process holds (a topic not keyed by learner pseudonym cannot be split).
    """

    carries_state = True

    def __init__(
        self,
        model: LearnerModel,
        sink: StoreSink,
        policy: InterventionPolicy,
        partitions: int,
        *,
        dedupe_window_s: float = 3600.0,
        dedupe_max_ids: int = 2048,
        inference_chunk: int = 1024,
        owned: frozenset[int] | None = None,
    ) -> None:
        self.model = model
        self.owned = owned
        self.sink = sink
        self.partitions = partitions
        self.inference_chunk = inference_chunk
        self._inference = ThreadPoolExecutor(1, thread_name_prefix="replay-inference")
        self._partition = PartitionCache(partitions)
        self.state = StateView({}, {}, {}, model.window or WINDOW_FALLBACK)
        self.processor = EventProcessor(
            # only normalised events reach the processor, so the key is never used
            pseudonym_key=b"unused",
            owns=lambda _learner, _record: True,
            policy=policy,
            dedupe_window_s=dedupe_window_s,
            dedupe_max_ids=dedupe_max_ids,
            carried=CarriedModel.of(model),
        )

    async def write(self, batch: Batch) -> None:
        """Process the batch and write its rows; returns once they are committed."""
        await self.store(self.prepare(batch))

    def prepare(self, batch: Batch) -> StoreBatch | None:
        """Run the pipeline over the batch's events; return their rows (``None``: no events).

        Learner and item state move on here, before the rows are stored: that state lives
        only in this run, and a batch that fails to store ends the run.
        """
        pairs: list[tuple[LearningEvent, InboundRecord]] = []
        for record, events in batch:
            for event in events:
                # the partition the learner's state lives on in the live pipeline, so item
                # norms and catalogues (keyed by partition) match the live ones
                pairs.append((event, self._placed(record, event.learner_id)))
        if not pairs:
            return None
        scoring: list[Future[Prediction]] = []

        def ready(
            events: npt.NDArray[np.float32],
            mask: npt.NDArray[np.bool_],
            query: npt.NDArray[np.float32],
        ) -> None:
            # onnxruntime releases the GIL: the model scores these while the next events
            # are featurised
            scoring.append(self._inference.submit(self.model.predict, events, mask, query))

        result = self.processor.ingest_events(
            pairs, self.state, ready=ready, chunk=self.inference_chunk
        )
        prediction = None
        if scoring:
            parts = [future.result() for future in scoring]
            prediction = Prediction(
                state_probs=np.concatenate([p.state_probs for p in parts]),
                p_correct=np.concatenate([p.p_correct for p in parts]),
                state=np.concatenate([p.state for p in parts]),
            )
        elif result.steps is not None:
            # carried states: the whole batch at once, one recurrent step per event
            prediction = self.processor.score(result, self.model)
        if prediction is not None and result.scored:
            self.processor.decide_with(result, self.state, prediction, self.model)
        rows = outbound.store_batch(result, self.model.spec)
        self.state.write_back(result)
        return rows

    async def store(self, prepared: StoreBatch | None) -> None:
        """Write the rows of a prepared batch; returns once they are committed."""
        if prepared is not None:
            await self.sink.write(prepared)

    def _placed(self, record: InboundRecord, learner: str) -> InboundRecord:
        partition = self._partition(learner)
        if partition == record.partition:
            return record  # keyed by the learner's pseudonym, as producers should
        source, offset = record.source
        if self.owned is not None and partition not in self.owned:
            raise ReplayError(
                f"{record.topic}:{record.partition}@{record.offset} holds an event of learner "
                f"{learner}, whose state lives on partition {partition}, held by another "
                "process: a topic whose records are not keyed by learner pseudonym (on "
                f"{self.partitions} partitions) cannot be rebuilt in parallel; use one process"
            )
        return InboundRecord(
            value=record.value,
            key=record.key,
            topic=record.topic,
            partition=partition,
            offset=record.offset,
            timestamp=record.timestamp,
            normalised=record.normalised,
            origin=source,
            origin_offset=offset,
        )

    async def close(self) -> None:
        """Close the sink and stop the inference thread."""
        self._inference.shutdown(wait=True)
        await self.sink.close()

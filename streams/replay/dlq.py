"""Send dead letters that pass the current normaliser back to the events topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.partitioning import partition_for
from schemas.events import LearningEvent, UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from schemas.pseudonym import Pseudonymiser
from schemas.records import DeadLetter
from streams.replay.exceptions import ReplayError
from streams.replay.outputs import Batch, Output


@dataclass(slots=True)
class DlqCounts:
    """What a DLQ replay did with the dead letters it read.

    Attributes:
        matched: dead letters whose reason contains the text.
        passed: matched ones that now normalise; produced back to the events topic.
        kept: matched ones that still fail; they stay on the DLQ.
        other: dead letters with another reason (left alone).
        unreadable: records of the DLQ topic that are not dead letters.
    """

    matched: int = 0
    passed: int = 0
    kept: int = 0
    other: int = 0
    unreadable: int = 0


class DlqReplay(Output):
    """Re-normalise dead letters with the current code; produce the ones that pass.

    A passing record goes back to the events topic as it was first received, keyed by its
    learner's pseudonym and on that learner's partition, so the worker that holds the
    learner's state reads it without a forward. Replaying a dead letter twice is harmless:
    the pipeline drops an event id it has stored.

    Args:
        producer: a confluent-kafka producer (idempotent, ``acks=all``).
        target: the events topic.
        partitions: partitions of the events topic.
        reason: only dead letters whose ``error_reason`` contains this text.
        pseudonym_key: the live pipeline's pseudonym key.
        normaliser: the normaliser to apply (the current one unless a test swaps it).
    """

    def __init__(
        self,
        producer: Any,
        target: str,
        partitions: int,
        reason: str,
        pseudonym_key: bytes,
        normaliser: Callable[[bytes, Pseudonymiser], list[LearningEvent]] = normalise,
    ) -> None:
        self.producer = producer
        self.target = target
        self.partitions = partitions
        self.reason = reason
        self.pseudonymiser = pseudonymiser_for(pseudonym_key)
        self.normaliser = normaliser
        self.counts = DlqCounts()
        self._failures: list[str] = []

    async def write(self, batch: Batch) -> None:
        """Produce the passing records of the batch and wait until the broker has them all."""
        for record, _ in batch:
            try:
                letter = DeadLetter.model_validate_json(record.value)
            except ValueError:
                self.counts.unreadable += 1
                continue
            if self.reason not in letter.error_reason:
                self.counts.other += 1
                continue
            self.counts.matched += 1
            original = letter.original()
            try:
                events = self.normaliser(original, self.pseudonymiser)
            except InvalidEvent:
                self.counts.kept += 1
                continue
            if events:
                learner = events[0].learner_id
            else:
                # valid and unmodelled (an unknown verb dead-lettered by an older release):
                # it goes back to be stored and counted, on its learner's partition
                unmodelled: list[UnmodelledEvent] = []
                normalise(original, self.pseudonymiser, unmodelled=unmodelled)
                if not unmodelled:
                    self.counts.kept += 1
                    continue
                learner = unmodelled[0].learner_id
            self.producer.produce(
                self.target,
                key=learner.encode(),
                value=original,
                partition=partition_for(learner, self.partitions),
                on_delivery=self._delivered,
            )
            self.producer.poll(0)
            self.counts.passed += 1
        remaining = await asyncio.to_thread(self.producer.flush, 60.0)
        if remaining or self._failures:
            raise ReplayError(
                f"the broker did not take {remaining or len(self._failures)} records: "
                f"{self._failures[:3]}"
            )

    def _delivered(self, err: Any, _message: Any) -> None:
        if err is not None:
            self._failures.append(str(err))

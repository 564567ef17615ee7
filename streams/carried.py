"""Each learner's recurrent state, carried from event to event instead of a window of rows.

A GRU model with step graphs (``inference.runtime.LearnerModel.step_events``) advances a
learner's state by one recurrent step per event, where the window graph runs ``window`` steps
for every decision. A batch gathers, as its events are featurised, each learner's state before
the batch and the rows to step through; the model's thread steps them and the states after the
batch go back into the learners' records.

A record with no state of this model (a learner's first event, a changelog written by an older
worker or for another model) starts from its window: its rows are stepped first, from zeros,
which gives exactly what the window graph gives at that point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from inference.runtime import LearnerModel
from streams.learner_state import LearnerRecord


@dataclass(frozen=True, slots=True)
class CarriedModel:
    """The model whose state the records carry: its ``name@version`` and the state's shape."""

    ref: str
    shape: tuple[int, int]

    @classmethod
    def of(cls, model: LearnerModel) -> CarriedModel | None:
        """Return what ``model`` carries, ``None`` for a model without step graphs."""
        shape = model.state_shape
        return None if shape is None else cls(model.spec.ref, shape)


@dataclass(slots=True)
class CarriedSteps:
    """A batch's input to :meth:`LearnerModel.step_events`, and where its states go back.

    Attributes:
        events: ``[n, F]`` the rows to step: warm-up rows of records without a state first,
            then the batch's events in order.
        slots: ``[n]`` the learner of each row (index into ``records``).
        hidden: ``[S, layers, H]`` each learner's state before its first row.
        queries: ``[m, Q]`` query features of the scored events.
        scored: ``[m]`` the rows of the scored events, in the batch's ``scored`` order.
        records: the learners' records, per slot.
        model: the model the states belong to.
    """

    events: npt.NDArray[np.float32]
    slots: npt.NDArray[np.int64]
    hidden: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    scored: npt.NDArray[np.int64]
    records: list[LearnerRecord]
    model: CarriedModel

    def keep(self, after: npt.NDArray[np.float32]) -> None:
        """Put each learner's state after the batch back into its record."""
        ref = self.model.ref
        for slot, record in enumerate(self.records):
            record.hidden = after[slot].copy()
            record.hidden_model = ref


@dataclass(slots=True)
class StepGatherer:
    """Collects :class:`CarriedSteps` while a batch's events are featurised."""

    model: CarriedModel
    _slots: dict[str, int] = field(default_factory=dict)
    _records: list[LearnerRecord] = field(default_factory=list)
    _hidden: list[npt.NDArray[np.float32]] = field(default_factory=list)
    _warm_rows: list[npt.NDArray[np.float32]] = field(default_factory=list)
    _warm_slots: list[int] = field(default_factory=list)
    _event_slots: list[int] = field(default_factory=list)

    def add(self, learner_id: str, record: LearnerRecord) -> None:
        """Note the next event of the batch; call before the record takes its features."""
        slot = self._slots.get(learner_id)
        if slot is None:
            slot = self._slots[learner_id] = len(self._records)
            self._records.append(record)
            state = record.carried(self.model.ref, self.model.shape)
            if state is None:
                state = np.zeros(self.model.shape, dtype=np.float32)
                if record.filled:
                    self._warm_rows.append(record.recent().copy())
                    self._warm_slots.extend([slot] * record.filled)
            self._hidden.append(state)
        self._event_slots.append(slot)

    def build(
        self,
        vectors: npt.NDArray[np.float32],
        scored: list[int],
        queries: npt.NDArray[np.float32],
    ) -> CarriedSteps | None:
        """Return the batch's steps (``None`` without events).

        Args:
            vectors: ``[n, F]`` the batch's event features, in order.
            scored: the events that are decision points.
            queries: ``[len(scored), Q]`` their query features.
        """
        if not self._records:
            return None
        warm = sum(len(rows) for rows in self._warm_rows)
        events = np.concatenate([*self._warm_rows, vectors]) if warm else vectors
        return CarriedSteps(
            events=events,
            slots=np.array(self._warm_slots + self._event_slots, dtype=np.int64),
            hidden=np.stack(self._hidden),
            queries=queries,
            scored=warm + np.asarray(scored, dtype=np.int64),
            records=self._records,
            model=self.model,
        )

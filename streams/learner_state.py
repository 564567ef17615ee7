"""What a worker remembers per learner, packed for a changelog-backed Faust table."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from inference.features import EVENT_FEATURES, LearnerFeatureState
from streams.policy import LearnerAlertState

N_FEATURES = len(EVENT_FEATURES)


@dataclass(slots=True)
class LearnerRecord:
    """Per-learner state: features, the model's input window, seen event ids, alert memory.

    Attributes:
        features: the online feature state (``inference.features``).
        window: ``[T, F]`` last feature vectors, oldest first; rows before ``filled`` are zeros.
        filled: how many rows of ``window`` hold real events (at most ``T``).
        seen: event id -> event time (epoch s), for dedupe within the configured window.
        alerts: the intervention policy's memory.
        class_id: last class the learner was seen in.
        events: events processed for this learner.
    """

    features: LearnerFeatureState
    window: npt.NDArray[np.float32]
    filled: int = 0
    seen: dict[str, float] = field(default_factory=dict)
    alerts: LearnerAlertState = field(default_factory=LearnerAlertState)
    class_id: str | None = None
    events: int = 0

    @classmethod
    def new(cls, window: int) -> LearnerRecord:
        """Return the state of a learner never seen before."""
        return cls(LearnerFeatureState(), np.zeros((window, N_FEATURES), dtype=np.float32))

    def push(self, vector: npt.NDArray[np.float32]) -> None:
        """Append a feature vector to the window, dropping the oldest when full."""
        t = self.window.shape[0]
        self.window[:-1] = self.window[1:]
        self.window[-1] = vector
        self.filled = min(t, self.filled + 1)
        self.events += 1

    def mask(self) -> npt.NDArray[np.bool_]:
        """Return ``[T]`` True where the window holds a real event."""
        t = self.window.shape[0]
        out = np.zeros(t, dtype=np.bool_)
        out[t - self.filled :] = True
        return out

    def remember(self, event_id: str, at: float, horizon_s: float, max_ids: int) -> bool:
        """Record ``event_id``; return False when it was already seen within the window.

        Old ids are pruned from the front (insertion order is time order for one learner,
        up to producer reordering, which only delays pruning).
        """
        if event_id in self.seen:
            return False
        self.seen[event_id] = at
        cutoff = at - horizon_s
        while self.seen and (len(self.seen) > max_ids or next(iter(self.seen.values())) < cutoff):
            del self.seen[next(iter(self.seen))]
        return True

    def to_bytes(self) -> bytes:
        """Pack for the table's changelog."""
        data: dict[str, Any] = {
            "f": self.features.to_dict(),
            "w": base64.b64encode(
                self.window[self.window.shape[0] - self.filled :].tobytes()
            ).decode(),
            "t": self.window.shape[0],
            "s": self.seen,
            "a": self.alerts.to_dict(),
            "c": self.class_id,
            "n": self.events,
        }
        return orjson.dumps(data)

    @classmethod
    def from_bytes(cls, raw: bytes | str | dict[str, Any]) -> LearnerRecord:
        """Unpack :meth:`to_bytes` output (or its JSON already parsed, as recovery gives it)."""
        data = raw if isinstance(raw, dict) else orjson.loads(raw)
        t = int(data["t"])
        rows = np.frombuffer(base64.b64decode(data["w"]), dtype=np.float32).reshape(-1, N_FEATURES)
        window = np.zeros((t, N_FEATURES), dtype=np.float32)
        if len(rows):
            window[t - len(rows) :] = rows
        return cls(
            features=LearnerFeatureState.from_dict(data["f"]),
            window=window,
            filled=len(rows),
            seen={str(k): float(v) for k, v in data["s"].items()},
            alerts=LearnerAlertState.from_dict(data["a"]),
            class_id=data["c"],
            events=int(data["n"]),
        )

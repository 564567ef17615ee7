"""What a worker remembers per learner, packed for a changelog-backed Faust table.

Every batch writes each learner it touched to the table's changelog, so the packed size is
the worker's largest per-batch cost after the store. The format is binary: a fixed header,
the small JSON parts, the window's raw float32 rows and the remembered event ids as 64-bit
digests. The recurrent state of a model that carries one is a JSON part too (base64 of its
float32 values, and the model it belongs to), which a worker that knows nothing of it reads past:
workers of both kinds can share a group while they are upgraded one at a time, and a record
without a state starts from its window. Version 0 (one JSON document, the window in base64)
still loads, so a worker reads a changelog written by an older one.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from inference.features import EVENT_FEATURES, LearnerFeatureState
from inference.rules import RuleMemory
from streams.policy import LearnerAlertState

N_FEATURES = len(EVENT_FEATURES)
_UNKNOWN = object()
FORMAT_VERSION = 1
_HEADER = struct.Struct("<BHHIIQ")
"""version, window rows, filled rows, remembered ids, JSON part bytes, events processed."""


def event_digest(event_id: str) -> int:
    """Return the 64-bit digest an event id is remembered by for dedupe.

    Two ids of one learner share a digest with probability about ``n / 2**64`` for ``n``
    remembered ids (about 1e-16 at the 2,048 default): far below any producer's error rate.
    """
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


@dataclass(slots=True)
class LearnerRecord:
    """Per-learner state: features, the model's input window, seen event ids, alert memory.

    Attributes:
        features: the online feature state (``inference.features``).
        rows: ``[2T, F]`` feature vectors; the window is the ``T`` rows before ``end`` (see
            :attr:`window`). Twice the window, so a new event costs one row, and the window
            moves back to the start once every ``T`` events.
        end: the row after the newest event.
        filled: how many rows of the window hold real events (at most ``T``).
        seen: event id digest (:func:`event_digest`) -> event time (epoch s), for dedupe
            within the configured window.
        offsets: ``topic/partition`` -> offset of the last record taken from it, so a
            record delivered again after a restart is known whatever its age.
        alerts: the intervention policy's memory.
        rules: the literature-defined rules' memory (``inference.rules``).
        class_id: last class the learner was seen in.
        events: events processed for this learner.
        forgotten_upto: the latest event time of any id pruned from ``seen`` (``-inf``: none).
            An id not in ``seen`` whose event is later than this was never taken.
        hidden: ``[layers, H]`` the model's recurrent state after the learner's newest event
            (``None``: none carried yet), for a model with step graphs.
        hidden_model: the ``name@version`` whose state ``hidden`` is; another model's state
            means nothing to this one, which steps through the window instead.
    """

    features: LearnerFeatureState
    rows: npt.NDArray[np.float32]
    end: int
    filled: int = 0
    seen: dict[int, float] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    alerts: LearnerAlertState = field(default_factory=LearnerAlertState)
    rules: RuleMemory = field(default_factory=RuleMemory)
    class_id: str | None = None
    events: int = 0
    forgotten_upto: float = float("-inf")
    hidden: npt.NDArray[np.float32] | None = None
    hidden_model: str | None = None

    def carried(self, model: str, shape: tuple[int, int]) -> npt.NDArray[np.float32] | None:
        """Return the recurrent state of ``model`` after the newest event, if carried."""
        hidden = self.hidden
        if hidden is None or self.hidden_model != model or hidden.shape != shape:
            return None
        return hidden

    def recent(self) -> npt.NDArray[np.float32]:
        """``[filled, F]`` the window's real rows, oldest first."""
        return self.rows[self.end - self.filled : self.end]

    @classmethod
    def new(cls, window: int) -> LearnerRecord:
        """Return the state of a learner never seen before."""
        return cls(LearnerFeatureState(), np.zeros((2 * window, N_FEATURES), np.float32), window)

    @classmethod
    def _holding(cls, window: int, recent: npt.NDArray[np.float32], **rest: Any) -> LearnerRecord:
        """Return a record whose window ends with ``recent`` (``[n, F]``, oldest first)."""
        rows = np.zeros((2 * window, N_FEATURES), dtype=np.float32)
        rows[window - len(recent) : window] = recent
        return cls(rows=rows, end=window, filled=len(recent), **rest)

    @property
    def window(self) -> npt.NDArray[np.float32]:
        """``[T]`` last feature vectors, oldest first; rows before ``filled`` are zeros."""
        return self.rows[self.end - self.rows.shape[0] // 2 : self.end]

    def push(self, vector: npt.NDArray[np.float32]) -> None:
        """Append a feature vector to the window, dropping the oldest when full."""
        rows = self.rows
        t = rows.shape[0] // 2
        if self.end == 2 * t:
            rows[: t - 1] = rows[t + 1 :]
            self.end = t - 1
        rows[self.end] = vector
        self.end += 1
        self.filled = min(t, self.filled + 1)
        self.events += 1

    def mask(self) -> npt.NDArray[np.bool_]:
        """Return ``[T]`` True where the window holds a real event."""
        t = self.rows.shape[0] // 2
        out = np.zeros(t, dtype=np.bool_)
        out[t - self.filled :] = True
        return out

    def remembers(self, event_id: str) -> bool:
        """Return whether ``event_id`` is among the ids this state took and still keeps."""
        return event_digest(event_id) in self.seen

    def may_have_forgotten(self, at: float) -> bool:
        """Whether an id of an event at ``at`` (epoch s) could have been taken and pruned.

        When not, an id this state does not remember was never taken, whatever the store
        holds: a record it passed by offset but took nowhere (one taken late by a worker whose
        state with it never reached the changelog) must be taken now, not skipped as stored.
        """
        return at <= self.forgotten_upto

    def remember(self, event_id: str, at: float, horizon_s: float, max_ids: int) -> bool:
        """Record ``event_id`` and prune the window; return False when it was already seen."""
        if not self.take_id(event_id, at):
            return False
        self.prune(at, horizon_s, max_ids)
        return True

    def take_id(self, event_id: str, at: float) -> bool:
        """Record ``event_id`` of an event at ``at``; return False when it is remembered.

        Nothing is pruned: a batch prunes once it has taken all its events (see :meth:`prune`).
        """
        key = event_digest(event_id)
        if key in self.seen:
            return False
        self.seen[key] = at
        return True

    def prune(self, newest: float, horizon_s: float, max_ids: int) -> None:
        """Forget ids older than ``horizon_s`` before ``newest``, and all but ``max_ids``.

        Old ids are pruned from the front (insertion order is time order for one learner,
        up to producer reordering, which only delays pruning).
        """
        cutoff = newest - horizon_s
        seen = self.seen
        while seen and (len(seen) > max_ids or next(iter(seen.values())) < cutoff):
            oldest = next(iter(seen))
            self.forgotten_upto = max(self.forgotten_upto, seen.pop(oldest))

    def to_bytes(self) -> bytes:
        """Pack for the table's changelog (format :data:`FORMAT_VERSION`)."""
        meta = orjson.dumps(
            {
                "f": self.features.to_dict(),
                "a": self.alerts.to_dict(),
                "r": self.rules.to_dict(),
                "c": self.class_id,
                "o": self.offsets,
                "p": None if self.forgotten_upto == float("-inf") else self.forgotten_upto,
                **self._state_parts(),
            }
        )
        t = self.rows.shape[0] // 2
        seen = self.seen
        return b"".join(
            (
                _HEADER.pack(FORMAT_VERSION, t, self.filled, len(seen), len(meta), self.events),
                meta,
                self.recent().tobytes(),
                np.fromiter(seen.keys(), dtype="<u8", count=len(seen)).tobytes(),
                np.fromiter(seen.values(), dtype="<f8", count=len(seen)).tobytes(),
            )
        )

    def _state_parts(self) -> dict[str, Any]:
        hidden = self.hidden
        if hidden is None:
            return {}
        return {
            "m": self.hidden_model,
            "h": base64.b64encode(hidden.astype("<f4", copy=False).tobytes()).decode(),
            "hs": list(hidden.shape),
        }

    @classmethod
    def from_bytes(cls, raw: bytes | str | dict[str, Any]) -> LearnerRecord:
        """Unpack :meth:`to_bytes` output, or a version 0 record (JSON, maybe parsed)."""
        if isinstance(raw, bytes) and raw[:1] == bytes((FORMAT_VERSION,)):
            return cls._unpack(raw)
        return cls._from_json(raw if isinstance(raw, dict) else orjson.loads(raw))

    @classmethod
    def _unpack(cls, raw: bytes) -> LearnerRecord:
        _, t, filled, n_seen, meta_len, events = _HEADER.unpack_from(raw)
        at = _HEADER.size
        meta = orjson.loads(raw[at : at + meta_len])
        at += meta_len
        values = filled * N_FEATURES
        recent = np.frombuffer(raw, "<f4", values, at).reshape(filled, N_FEATURES)
        at += 4 * values
        keys = np.frombuffer(raw, "<u8", n_seen, at).tolist()
        times = np.frombuffer(raw, "<f8", n_seen, at + 8 * n_seen).tolist()
        packed = meta.get("h")
        hidden = (
            None
            if packed is None
            else np.frombuffer(base64.b64decode(packed), "<f4").reshape(meta["hs"]).copy()
        )
        forgotten = meta.get("p", _UNKNOWN)
        return cls._holding(
            t,
            recent,
            features=LearnerFeatureState.from_dict(meta["f"]),
            seen=dict(zip(keys, times, strict=True)),
            offsets=meta["o"],
            alerts=LearnerAlertState.from_dict(meta["a"]),
            # a record written before the rules existed has none: they start afresh
            rules=RuleMemory.from_dict(meta.get("r")),
            class_id=meta["c"],
            events=events,
            # written before the horizon was kept: anything up to the newest id kept may have
            # been pruned, so only later ids are known never taken
            forgotten_upto=(
                max(times, default=float("-inf"))
                if forgotten is _UNKNOWN
                else float("-inf")
                if forgotten is None
                else float(forgotten)
            ),
            hidden=hidden,
            hidden_model=meta.get("m") if hidden is not None else None,
        )

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> LearnerRecord:
        t = int(data["t"])
        recent = np.frombuffer(base64.b64decode(data["w"]), np.float32).reshape(-1, N_FEATURES)
        return cls._holding(
            t,
            recent,
            features=LearnerFeatureState.from_dict(data["f"]),
            # version 0 kept the ids themselves, and no horizon (see _unpack)
            seen={event_digest(str(k)): float(v) for k, v in data["s"].items()},
            forgotten_upto=max((float(v) for v in data["s"].values()), default=float("-inf")),
            alerts=LearnerAlertState.from_dict(data["a"]),
            class_id=data["c"],
            events=int(data["n"]),
        )

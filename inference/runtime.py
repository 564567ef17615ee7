"""Serving runtime: an ONNX Runtime session of a registered learner model and a micro-batcher.

:class:`LearnerModel` asks for CUDA first and falls back to the CPU, says which provider it got,
runs the fp16 graph on CUDA (through I/O binding) and the fp32 graph on the CPU, caps threads for
a small model, turns thread spinning off so idle workers leave the cores to the stream, and warms
up before the first request.

:class:`MicroBatcher` gathers requests from many callers (threads or asyncio tasks) until
``max_batch`` windows or ``max_delay_ms`` have passed, runs one batch on its own thread and
answers each caller with its rows. Asyncio callers await it without blocking the event loop.

Imports neither torch nor transformers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

try:
    import onnxruntime as ort
except ModuleNotFoundError as err:  # the runtime is an extra: `cpu` or `gpu`, one of them
    raise ModuleNotFoundError(
        "the inference runtime is not installed: pip install 'tutorstream[cpu]', or "
        "'tutorstream[gpu]' for NVIDIA GPUs (never both)"
    ) from err

from inference.decision import decide_states
from inference.registry import DEFAULT_MODEL, ModelRegistry, ModelSpec

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEFAULT_PROVIDERS = (CUDA, CPU)


@dataclass(frozen=True)
class Prediction:
    """Model outputs for ``n`` windows.

    Attributes:
        state_probs: ``[n, S]`` probability of each behavioural state.
        p_correct: ``[n]`` probability of a correct answer on the queried next item.
        state: ``[n]`` detected state index after the model's decision thresholds (0 = none).
    """

    state_probs: npt.NDArray[np.float32]
    p_correct: npt.NDArray[np.float32]
    state: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.p_correct)

    def rows(self, start: int, stop: int) -> Prediction:
        """Return the predictions of windows ``start:stop``."""
        return Prediction(
            self.state_probs[start:stop], self.p_correct[start:stop], self.state[start:stop]
        )


def _default_threads() -> int:
    # a model this small gains nothing past two threads, and the stream needs the other cores
    return max(1, min(2, os.cpu_count() or 1))


class LearnerModel:
    """An ONNX Runtime session of one verified model.

    Args:
        spec: the verified model from :meth:`ModelRegistry.load`.
        providers: execution providers in order of preference; unavailable ones are skipped.
        precision: ``auto`` (fp16 on CUDA, fp32 on the CPU), ``fp32`` or ``fp16``.
        intra_op_threads: threads inside an operator (default: up to 2).
        inter_op_threads: threads across operators (1: the graph is a chain).
        io_binding: bind inputs and outputs explicitly (default: on CUDA only).
        warmup_batches: batch sizes run once at start so the first request pays no setup.
    """

    def __init__(
        self,
        spec: ModelSpec,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        precision: str = "auto",
        intra_op_threads: int | None = None,
        inter_op_threads: int = 1,
        io_binding: bool | None = None,
        warmup_batches: Sequence[int] = (1, 64),
    ) -> None:
        self.spec = spec
        available = set(ort.get_available_providers())
        wanted = [p for p in providers if p in available] or [CPU]
        automatic = precision == "auto"
        if automatic:
            precision = "fp16" if wanted[0] == CUDA else "fp32"
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads or _default_threads()
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # spinning threads burn the cores the Kafka clients and Faust need between batches
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(spec.onnx_bytes(precision), options, providers=wanted)
        self.provider: str = self.session.get_providers()[0]
        if automatic and precision == "fp16" and self.provider != CUDA:
            # CUDA was listed but did not start (no driver, no device): the CPU runs fp32
            logger.warning("learner model %s: CUDA unavailable, falling back to the CPU", spec.ref)
            precision = "fp32"
            self.session = ort.InferenceSession(
                spec.onnx_bytes(precision), options, providers=[CPU]
            )
            self.provider = self.session.get_providers()[0]
        self.precision = precision
        self.io_binding = self.provider == CUDA if io_binding is None else io_binding
        # scores many candidate items per learner with one encoder pass (fp32, same provider)
        candidates = spec.candidates_bytes()
        self.candidates_session = (
            None
            if candidates is None
            else ort.InferenceSession(candidates, options, providers=[self.provider])
        )
        # a GRU model's state carried per learner: one recurrent step per event (fp32)
        steps = spec.step_bytes()
        self.step_session, self.step_candidates_session = (
            (None, None)
            if steps is None
            else tuple(
                ort.InferenceSession(graph, options, providers=[self.provider]) for graph in steps
            )
        )
        self._thresholds = spec.thresholds()
        logger.info(
            "learner model %s loaded on %s (%s, %d intra-op threads, requested %s)",
            spec.ref,
            self.provider,
            precision,
            options.intra_op_num_threads,
            ",".join(providers),
        )
        for size in warmup_batches:
            self.predict(*self.blank_inputs(size))

    @classmethod
    def load(
        cls,
        ref: str = DEFAULT_MODEL,
        registry_roots: Sequence[Path] = (),
        **options: object,
    ) -> LearnerModel:
        """Load ``name@version`` (or ``name@latest``) from the registry, verifying its hashes.

        Args:
            ref: model reference.
            registry_roots: extra registry roots searched before the packaged models.
            **options: passed to :class:`LearnerModel`.
        """
        spec = ModelRegistry.with_packaged(registry_roots).load(ref)
        return cls(spec, **options)  # type: ignore[arg-type]  # options forward typed params

    @property
    def window(self) -> int:
        """Events per window."""
        return self.spec.window

    @property
    def state_shape(self) -> tuple[int, int] | None:
        """``(layers, hidden)`` of the state carried per learner; ``None`` without step graphs."""
        if self.step_session is None:
            return None
        config = self.spec.config
        return int(config.get("num_layers", 1)), int(config["hidden_size"])

    def blank_inputs(
        self, n: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Return ``n`` all-padding windows (decision event only), for warm-up and tests."""
        spec = self.spec
        events = np.zeros((n, spec.window, len(spec.event_features)), dtype=np.float32)
        mask = np.zeros((n, spec.window), dtype=np.bool_)
        mask[:, -1] = True
        query = np.zeros((n, len(spec.query_features)), dtype=np.float32)
        return events, mask, query

    def check_inputs(
        self, events: npt.ArrayLike, mask: npt.ArrayLike, query: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Coerce and validate one request's arrays.

        Raises:
            ValueError: naming the input and the expected shape when a shape is wrong.
        """
        spec = self.spec
        ev = np.ascontiguousarray(events, dtype=np.float32)
        mk = np.ascontiguousarray(mask, dtype=np.bool_)
        qu = np.ascontiguousarray(query, dtype=np.float32)
        n = ev.shape[0] if ev.ndim == 3 else -1
        expected = {
            "events": (ev, (n, spec.window, len(spec.event_features))),
            "mask": (mk, (n, spec.window)),
            "query": (qu, (n, len(spec.query_features))),
        }
        for name, (array, shape) in expected.items():
            if array.shape != shape or n < 1:
                want = "[n>=1, " + ", ".join(str(s) for s in shape[1:]) + "]"
                raise ValueError(f"{name}: expected shape {want}, got {list(array.shape)}")
        if not np.isfinite(ev).all() or not np.isfinite(qu).all():
            raise ValueError("events/query: features must be finite numbers")
        return ev, mk, qu

    def predict(
        self, events: npt.ArrayLike, mask: npt.ArrayLike, query: npt.ArrayLike
    ) -> Prediction:
        """Run the model on ``n`` windows and apply the decision thresholds."""
        ev, mk, qu = self.check_inputs(events, mask, query)
        feeds = {"events": ev, "mask": mk, "query": qu}
        if self.io_binding:
            binding = self.session.io_binding()
            for name, array in feeds.items():
                binding.bind_cpu_input(name, array)
            device = "cuda" if self.provider == CUDA else "cpu"
            for name in ("state_probs", "p_correct"):
                binding.bind_output(name, device)
            self.session.run_with_iobinding(binding)
            state_probs, p_correct = binding.copy_outputs_to_cpu()
        else:
            state_probs, p_correct = self.session.run(["state_probs", "p_correct"], feeds)
        return self._decided(state_probs, p_correct)

    def _decided(
        self, state_probs: npt.NDArray[np.float32], p_correct: npt.NDArray[np.float32]
    ) -> Prediction:
        state_probs = np.asarray(state_probs, dtype=np.float32)
        return Prediction(
            state_probs=state_probs,
            p_correct=np.asarray(p_correct, dtype=np.float32),
            state=decide_states(state_probs, self._thresholds),
        )

    def _step_graph(self) -> tuple[ort.InferenceSession, tuple[int, int]]:
        shape = self.state_shape
        if self.step_session is None or shape is None:
            raise ValueError(f"model {self.spec.ref}: no step graph (a GRU model's state)")
        return self.step_session, shape

    def step(
        self, events: npt.ArrayLike, hidden: npt.ArrayLike, query: npt.ArrayLike
    ) -> tuple[Prediction, npt.NDArray[np.float32]]:
        """Advance ``n`` learners' carried states by one event each and score that event.

        Args:
            events: ``[n, F]`` each learner's newest event features.
            hidden: ``[n, layers, H]`` each learner's state before it (zeros: no event yet).
            query: ``[n, Q]`` query features of each learner's next item.

        Returns:
            The event's predictions, as :meth:`predict` gives for a window ending in it, and
            ``[n, layers, H]`` the states after it.

        Raises:
            ValueError: for a model without step graphs, or a wrong shape.
        """
        ev = np.ascontiguousarray(events, dtype=np.float32)
        if ev.ndim != 2 or len(ev) < 1:
            raise ValueError(f"events: expected shape [n>=1, F], got {list(ev.shape)}")
        return self.step_events(ev, np.arange(len(ev)), hidden, query)

    def step_events(
        self,
        events: npt.ArrayLike,
        slots: npt.ArrayLike,
        hidden: npt.ArrayLike,
        query: npt.ArrayLike,
        rows: npt.ArrayLike | None = None,
    ) -> tuple[Prediction, npt.NDArray[np.float32]]:
        """Carry ``S`` learners' states through ``n`` events, each learner's in row order.

        Args:
            events: ``[n, F]`` event features.
            slots: ``[n]`` the learner (``0..S-1``) of each event.
            hidden: ``[S, layers, H]`` each learner's state before its first event here.
            query: ``[m, Q]`` query features of the events to score.
            rows: ``[m]`` the events to score (default: all, ``m = n``).

        Returns:
            The scored events' predictions and ``[S, layers, H]`` the states after each
            learner's last event (unchanged for a learner without events).

        Raises:
            ValueError: for a model without step graphs, or a wrong shape, slot or row.
        """
        session, shape = self._step_graph()
        spec = self.spec
        ev = np.ascontiguousarray(events, dtype=np.float32)
        qu = np.ascontiguousarray(query, dtype=np.float32)
        sl = np.asarray(slots, dtype=np.int64)
        state = np.array(hidden, dtype=np.float32)  # a copy: the caller's states stay as given
        n = len(sl)
        scored = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
        expected = {
            "events": (ev, (n, len(spec.event_features))),
            "query": (qu, (len(scored), len(spec.query_features))),
            "hidden": (state, (state.shape[0] if state.ndim else -1, *shape)),
        }
        for name, (array, want) in expected.items():
            if array.shape != want:
                want_text = "[n>=1, " + ", ".join(str(s) for s in want[1:]) + "]"
                raise ValueError(f"{name}: expected shape {want_text}, got {list(array.shape)}")
        if n and (sl.min() < 0 or sl.max() >= len(state)):
            raise ValueError(f"slots: must lie in [0, {len(state)}), got {sl.min()}..{sl.max()}")
        if len(scored) and (scored.min() < 0 or scored.max() >= n):
            raise ValueError(f"rows: must lie in [0, {n})")
        probs = np.empty((len(scored), len(spec.states)), dtype=np.float32)
        p_correct = np.empty(len(scored), dtype=np.float32)
        lengths = np.bincount(sl, minlength=len(state))
        place, groups = _step_groups(sl, lengths, scored)
        for group, flat in groups:
            steps = int(lengths[group].max())
            index = np.full(len(state), -1, dtype=np.int64)
            index[group] = np.arange(len(group))
            mine = index[sl] >= 0
            packed = np.zeros((len(group), steps, ev.shape[1]), dtype=np.float32)
            packed[index[sl[mine]], place[mine]] = ev[mine]
            asked = scored[flat]
            out = session.run(
                ["state_probs", "p_correct", "hidden_out"],
                {
                    "events": packed,
                    "hidden": state[group],
                    "lengths": lengths[group],
                    "query": qu[flat],
                    "rows": index[sl[asked]] * steps + place[asked],
                },
            )
            probs[flat], p_correct[flat], state[group] = out
        return self._decided(probs, p_correct), state

    def step_windows(
        self, events: npt.ArrayLike, mask: npt.ArrayLike, query: npt.ArrayLike
    ) -> tuple[Prediction, npt.NDArray[np.float32]]:
        """Step each window's real events through the step graph from a zero state.

        What :meth:`predict` gives for the same windows, and the state each window leaves: how
        a learner whose history is kept as a window of feature rows moves to a carried state.

        Returns:
            The predictions at each window's last event and ``[n, layers, H]`` the states.
        """
        session, shape = self._step_graph()
        state_probs, p_correct, hidden = step_through(
            session, *self.check_inputs(events, mask, query), shape
        )
        return self._decided(state_probs, p_correct), hidden

    def score_candidates_from_state(
        self, hidden: npt.ArrayLike, queries: npt.ArrayLike
    ) -> npt.NDArray[np.float32]:
        """Predict each of ``L`` learners' success on each of their ``K`` candidate items.

        Args:
            hidden: ``[L, layers, H]`` each learner's carried state after its newest event.
            queries: ``[L, K, Q]`` query features of each learner's candidates.

        Returns:
            ``[L, K]`` probabilities of a correct answer; no encoder runs at all.
        """
        _, (layers, width) = self._step_graph()
        hd = np.ascontiguousarray(hidden, dtype=np.float32)
        qu = np.ascontiguousarray(queries, dtype=np.float32)
        if qu.ndim != 3 or qu.shape[2] != len(self.spec.query_features):
            raise ValueError(f"queries: expected shape [L, K, Q], got {list(qu.shape)}")
        if hd.shape != (qu.shape[0], layers, width):
            raise ValueError(
                f"hidden: expected shape [{qu.shape[0]}, {layers}, {width}], got {list(hd.shape)}"
            )
        if qu.shape[0] == 0 or qu.shape[1] == 0:
            return np.zeros(qu.shape[:2], dtype=np.float32)
        assert self.step_candidates_session is not None  # loaded with the step graph
        (p,) = self.step_candidates_session.run(["p_correct"], {"hidden": hd, "queries": qu})
        return np.asarray(p, dtype=np.float32)

    def score_candidates(
        self, events: npt.ArrayLike, mask: npt.ArrayLike, queries: npt.ArrayLike
    ) -> npt.NDArray[np.float32]:
        """Predict each of ``L`` learners' success on each of their ``K`` candidate items.

        Args:
            events: ``[L, T, F]`` each learner's last ``T`` event features.
            mask: ``[L, T]`` True at real events.
            queries: ``[L, K, Q]`` query features of each learner's candidates.

        Returns:
            ``[L, K]`` probabilities of a correct answer. The encoder runs once per learner
            when the model ships its candidate graph, once per candidate otherwise.
        """
        qu = np.ascontiguousarray(queries, dtype=np.float32)
        if qu.ndim != 3:
            raise ValueError(f"queries: expected shape [L, K, Q], got {list(qu.shape)}")
        n, k = qu.shape[0], qu.shape[1]
        if n == 0 or k == 0:
            return np.zeros((n, k), dtype=np.float32)
        ev, mk, _ = self.check_inputs(events, mask, np.zeros((n, qu.shape[2]), np.float32))
        if not np.isfinite(qu).all():
            raise ValueError("queries: features must be finite numbers")
        if self.candidates_session is not None:
            (p,) = self.candidates_session.run(
                ["p_correct"], {"events": ev, "mask": mk, "queries": qu}
            )
            return np.asarray(p, dtype=np.float32)
        flat = self.predict(
            np.repeat(ev, k, axis=0), np.repeat(mk, k, axis=0), qu.reshape(n * k, -1)
        )
        return flat.p_correct.reshape(n, k)

    def score_items(
        self,
        query: npt.ArrayLike,
        events: npt.ArrayLike | None = None,
        mask: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.float32]:
        """Predict a learner's success on each of ``K`` candidate items.

        The learner's window (``events`` ``[T, F]``, ``mask`` ``[T]``) is shared by all
        candidates; without one, the prediction rests on the query features alone (they carry
        the learner's per-skill history), through an empty window.

        Args:
            query: ``[K, Q]`` query features of the candidates.
            events: the learner's last ``T`` event features, or ``None``.
            mask: True at real events of ``events``.

        Returns:
            ``[K]`` probabilities of a correct answer.
        """
        qu = np.ascontiguousarray(query, dtype=np.float32)
        if events is None or mask is None:
            ev, mk, _ = self.blank_inputs(1)
        else:
            ev = np.asarray(events, dtype=np.float32)[None]
            mk = np.asarray(mask, dtype=np.bool_)[None]
        scores: npt.NDArray[np.float32] = self.score_candidates(ev, mk, qu[None])[0]
        return scores


def _step_groups(
    slots: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64], scored: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]]:
    """Each event's position among its learner's events, and the calls of the step graph.

    A call is ``(learners, positions in scored)``. It pads every learner to its longest;
    learners are taken longest first and a call grows while its padded steps stay within four
    times its real ones (or 8,192), so a batch is one call unless one learner has far more
    events than the rest.
    """
    n = len(slots)
    order = np.argsort(slots, kind="stable")
    grouped = slots[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]) if n else order
    place = np.empty(n, dtype=np.int64)
    place[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    active = np.flatnonzero(lengths)
    active = active[np.argsort(-lengths[active], kind="stable")]
    groups = []
    begin = 0
    while begin < len(active):
        longest = int(lengths[active[begin]])
        end, real = begin, 0
        while end < len(active):
            grown = real + int(lengths[active[end]])
            if end > begin and (end + 1 - begin) * longest > max(4 * grown, 8192):
                break
            real, end = grown, end + 1
        groups.append(active[begin:end])
        begin = end
    owner = np.full(len(lengths), -1, dtype=np.int64)
    for k, group in enumerate(groups):
        owner[group] = k
    mine = owner[slots[scored]]
    return place, [(group, np.flatnonzero(mine == k)) for k, group in enumerate(groups)]


def step_through(
    session: ort.InferenceSession,
    events: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_],
    query: npt.NDArray[np.float32],
    state_shape: tuple[int, int],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Run left-padded windows through a step graph, each from a zero state, in one call.

    Returns:
        ``(state_probs, p_correct)`` at each window's last event and ``[n, layers, H]`` the
        states after it.

    Raises:
        ValueError: when a window does not end in a real event (its decision).
    """
    if len(mask) == 0 or not mask[:, -1].all():
        raise ValueError("mask: every window must end in a real event (its decision)")
    n, steps = mask.shape
    lengths = mask.sum(axis=1).astype(np.int64)
    # each window's real events first, as the step graph reads a learner's new events
    shift = (np.arange(steps)[None, :] + (steps - lengths)[:, None]) % steps
    aligned = np.ascontiguousarray(np.take_along_axis(events, shift[:, :, None], axis=1))
    state_probs, p_correct, hidden = session.run(
        ["state_probs", "p_correct", "hidden_out"],
        {
            "events": aligned,
            "hidden": np.zeros((n, *state_shape), dtype=np.float32),
            "lengths": lengths,
            "query": query,
            "rows": np.arange(n) * steps + lengths - 1,
        },
    )
    return state_probs, p_correct, hidden


@dataclass
class _Request:
    events: npt.NDArray[np.float32]
    mask: npt.NDArray[np.bool_]
    query: npt.NDArray[np.float32]
    future: concurrent.futures.Future[Prediction]

    @property
    def size(self) -> int:
        return len(self.events)


@dataclass
class BatcherStats:
    """Counters of a :class:`MicroBatcher`.

    Attributes:
        batches: model calls made.
        windows: windows answered.
        requests: requests answered.
        largest_batch: most windows in one model call.
    """

    batches: int = 0
    windows: int = 0
    requests: int = 0
    largest_batch: int = 0


class MicroBatcher:
    """Gather requests into batches for one :class:`LearnerModel` and answer each caller.

    A batch closes when it holds ``max_batch`` windows or ``max_delay_ms`` after its first
    request arrived, whichever comes first. A request is never split: one larger than
    ``max_batch`` runs as its own batch. Safe to call from any thread and from asyncio code;
    the model runs on the batcher's own thread, never on an event loop.

    Args:
        model: the loaded model.
        max_batch: windows per model call at most.
        max_delay_ms: longest wait for a batch to fill.
    """

    def __init__(self, model: LearnerModel, max_batch: int = 512, max_delay_ms: float = 5.0):
        if max_batch < 1:
            raise ValueError(f"max_batch: must be at least 1, got {max_batch}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms: must not be negative, got {max_delay_ms}")
        self.model = model
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self.stats = BatcherStats()
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="learner-model-batcher", daemon=True)
        self._thread.start()

    @property
    def worker_thread_id(self) -> int | None:
        """Thread id of the thread that runs the model."""
        return self._thread.ident

    def submit(
        self, events: npt.ArrayLike, mask: npt.ArrayLike, query: npt.ArrayLike
    ) -> concurrent.futures.Future[Prediction]:
        """Queue ``n`` windows; the future resolves to their :class:`Prediction`.

        Raises:
            ValueError: when the arrays have the wrong shape (checked here, in the caller).
            RuntimeError: when the batcher is closed.
        """
        ev, mk, qu = self.model.check_inputs(events, mask, query)
        future: concurrent.futures.Future[Prediction] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("MicroBatcher is closed")
            self._queue.put(_Request(ev, mk, qu, future))
        return future

    def predict(
        self,
        events: npt.ArrayLike,
        mask: npt.ArrayLike,
        query: npt.ArrayLike,
        timeout: float | None = None,
    ) -> Prediction:
        """Queue windows and block until they are answered."""
        return self.submit(events, mask, query).result(timeout)

    async def predict_async(
        self, events: npt.ArrayLike, mask: npt.ArrayLike, query: npt.ArrayLike
    ) -> Prediction:
        """Queue windows and await their answer without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(events, mask, query))

    def close(self) -> None:
        """Answer what is queued, then stop the batcher thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        carried: _Request | None = None
        stopping = False
        while not stopping or carried is not None:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is None:
                break
            batch = [first]
            size = first.size
            deadline = time.monotonic() + self.max_delay_s
            while size < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    nxt = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                if size + nxt.size > self.max_batch:
                    carried = nxt  # starts the next batch, so no batch exceeds max_batch
                    break
                batch.append(nxt)
                size += nxt.size
            self._answer(batch)
        # drain anything queued after the stop marker (only possible before close() returned)
        while True:
            try:
                leftover = self._queue.get_nowait()
            except queue.Empty:
                return
            if leftover is not None:
                self._answer([leftover])

    def _answer(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            if len(live) == 1:
                prediction = self.model.predict(live[0].events, live[0].mask, live[0].query)
            else:
                prediction = self.model.predict(
                    np.concatenate([r.events for r in live]),
                    np.concatenate([r.mask for r in live]),
                    np.concatenate([r.query for r in live]),
                )
        except Exception as err:  # every caller must hear about the failure
            for request in live:
                request.future.set_exception(err)
            return
        start = 0
        for request in live:
            request.future.set_result(prediction.rows(start, start + request.size))
            start += request.size
        self.stats.batches += 1
        self.stats.windows += start
        self.stats.requests += len(live)
        self.stats.largest_batch = max(self.stats.largest_batch, start)

"""Training and evaluation windows built from simulated cohorts.

A decision point is every event that has a later answer by the same learner. For each, a
:class:`WindowDataset` holds the last ``window`` event-feature vectors up to and including the
decision event, the query features of the learner's next answer's item (as they stood at the
decision), the true behavioural state at the decision, the next answer's correctness and the
simulator's true probability of it.

Windows are stored as indices into one array of per-event features, so a dataset costs
``E * F`` floats however long the window; :attr:`WindowDataset.X` or
:meth:`WindowDataset.batch` materialise windows on demand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.features import (
    EVENT_FEATURES,
    QUERY_FEATURES,
    FeatureExtractor,
    ItemNorms,
    LearnerFeatureState,
)
from inference.lab.simulator.cohort import CohortConfig, simulate_cohort
from inference.lab.simulator.columns import EVENT_TYPE_CODE, EventColumns
from schemas.events import EventType

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)``."""

EVAL_SEED_BASE = 1_000_000
"""Simulator seeds at and above this value are reserved for evaluation: training never uses them."""

_ANSWER = EVENT_TYPE_CODE[EventType.ANSWER_SUBMIT]


def next_answer_rows(cols: EventColumns) -> npt.NDArray[np.int64]:
    """Return, for each row, the row of the same learner's next answer after it, or -1.

    Rows of one learner must be contiguous and in the learner's order (as the simulator emits).
    """
    n = len(cols)
    rows = np.arange(n, dtype=np.int64)
    answers = np.flatnonzero(cols.event_type == _ANSWER).astype(np.int64)
    pos = np.searchsorted(answers, rows, side="right")
    out = np.full(n, -1, dtype=np.int64)
    has = pos < len(answers)
    cand = answers[np.minimum(pos, max(len(answers) - 1, 0))] if len(answers) else rows
    same = has & (cols.learner[np.minimum(cand, n - 1)] == cols.learner)
    out[same] = cand[same]
    return out


def compute_features(
    cols: EventColumns,
    progress: Progress | None = None,
    item_norms: list[ItemNorms] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Replay a cohort in time order through the online features.

    Args:
        cols: The cohort's events.
        progress: Progress callback.
        item_norms: Norms of each object to start from (mutated), e.g. from
            :func:`warm_item_norms`; fresh norms when ``None``.

    Returns:
        ``(event_features [E, F], next_query [E, Q], next_answer [E])``: each event's features,
        the query features of the learner's next answer's item as they stood right after the
        event (zeros where there is no next answer), and the row of that next answer (-1).
    """
    n = len(cols)
    extractor = FeatureExtractor()
    objects = cols.objects
    learners = [LearnerFeatureState() for _ in cols.learner_ids]
    norms = item_norms if item_norms is not None else [ItemNorms() for _ in objects.object_ids]
    if len(norms) != len(objects.object_ids):
        raise ValueError("item_norms: one entry per object of the cohort is needed")
    nxt = next_answer_rows(cols)
    event_features = np.zeros((n, len(EVENT_FEATURES)), dtype=np.float32)
    next_query = np.zeros((n, len(QUERY_FEATURES)), dtype=np.float32)
    # Plain lists: indexing them is several times faster than indexing numpy arrays one by one.
    learner_l = cols.learner.tolist()
    code_l = cols.event_type.tolist()
    t_l = cols.t_us.tolist()
    obj_l = cols.obj.tolist()
    correct_l = cols.correct.tolist()
    response_l = cols.response.tolist()
    attempt_l = cols.attempt.tolist()
    duration_l = cols.duration_s.tolist()
    hint_level_l = cols.hint_level.tolist()
    hint_count_l = cols.hint_count.tolist()
    relation_l = cols.relation.tolist()
    score_l = cols.score.tolist()
    nxt_l = nxt.tolist()
    ids = objects.object_ids
    skills = objects.skill_ids
    lms = objects.lms_difficulty
    hashes = objects.response_hashes
    observe = extractor.observe
    query = extractor.query_list
    order = cols.time_order().tolist()
    step = max(1, n // 50)
    for k, i in enumerate(order):
        o = obj_l[i]
        learner = learners[learner_l[i]]
        r = response_l[i]
        if o >= 0:
            event_features[i] = observe(
                learner,
                norms[o],
                code_l[i],
                t_l[i],
                skills[o],
                correct_l[i],
                hashes[o][r] if r >= 0 else None,
                attempt_l[i],
                duration_l[i],
                hint_level_l[i],
                hint_count_l[i],
                lms[o],
                relation_l[i],
                score_l[i],
                ids[o],
            )
        else:
            event_features[i] = observe(
                learner,
                None,
                code_l[i],
                t_l[i],
                (),
                correct_l[i],
                None,
                attempt_l[i],
                duration_l[i],
                hint_level_l[i],
                hint_count_l[i],
                None,
                relation_l[i],
                score_l[i],
                None,
            )
        j = nxt_l[i]
        if j >= 0:
            oj = obj_l[j]
            next_query[i] = query(learner, norms[oj], ids[oj], skills[oj])
        if progress is not None and (k + 1) % step == 0:
            progress(k + 1, n)
    if progress is not None:
        progress(n, n)
    return event_features, next_query, nxt


def warm_item_norms(cols: EventColumns) -> list[ItemNorms]:
    """Return the item norms after replaying a cohort, to start another cohort from.

    A deployed stream's item norms carry the history of earlier learners; warming them with a
    separate cohort gives simulated learners the same footing.
    """
    norms = [ItemNorms() for _ in cols.objects.object_ids]
    compute_features(cols, item_norms=norms)
    return norms


@dataclass(slots=True)
class WindowDataset:
    """Decision windows with labels, stored as indices into per-event features.

    Attributes:
        event_features: ``[E, F]`` float32 features of every event.
        event_state: ``[E]`` true state of every event.
        event_learner: ``[E]`` learner index of every event.
        event_skill: ``[E]`` index of the main skill of every event's object (-1 none).
        event_correct: ``[E]`` 1/0 for answers, -1 otherwise.
        event_attempt: ``[E]`` attempt number of answers, 0 otherwise.
        window_index: ``[N, T]`` rows of ``event_features`` forming each window, -1 = padding
            (left-padded: the decision event is at ``[:, -1]``).
        Q: ``[N, Q]`` float32 query features of the next answer's item.
        y_state: ``[N]`` int64 true state at the decision event.
        y_next: ``[N]`` float32 correctness of the next answer.
        oracle: ``[N]`` float32 the simulator's true p(correct) of the next answer.
        learner: ``[N]`` int64 learner index.
        step: ``[N]`` int64 event number of the decision within the learner's stream.
        decision_row: ``[N]`` int64 row of the decision event in the event arrays.
        next_skill: ``[N]`` int64 main skill index of the next answer's item.
        family: Simulator family.
        seed: Cohort seed.
    """

    event_features: npt.NDArray[np.float32]
    event_state: npt.NDArray[np.int64]
    event_learner: npt.NDArray[np.int64]
    event_skill: npt.NDArray[np.int64]
    event_correct: npt.NDArray[np.int8]
    event_attempt: npt.NDArray[np.int16]
    window_index: npt.NDArray[np.int64]
    Q: npt.NDArray[np.float32]
    y_state: npt.NDArray[np.int64]
    y_next: npt.NDArray[np.float32]
    oracle: npt.NDArray[np.float32]
    learner: npt.NDArray[np.int64]
    step: npt.NDArray[np.int64]
    decision_row: npt.NDArray[np.int64]
    next_skill: npt.NDArray[np.int64]
    family: str = ""
    seed: int = 0
    _padded: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    _windows: npt.NDArray[np.float32] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.y_state.shape[0])

    @property
    def window(self) -> int:
        """Window length ``T``."""
        return int(self.window_index.shape[1])

    def _padded_features(self) -> npt.NDArray[np.float32]:
        if self._padded is None:
            pad = np.zeros((1, self.event_features.shape[1]), dtype=np.float32)
            self._padded = np.concatenate([pad, self.event_features], axis=0)
        return self._padded

    def batch(
        self, idx: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Return ``(X [B, T, F], M [B, T], Q [B, Q])`` for the decision indices ``idx``."""
        wi = self.window_index[np.asarray(idx)]
        return self._padded_features()[wi + 1], wi >= 0, self.Q[np.asarray(idx)]

    @property
    def X(self) -> npt.NDArray[np.float32]:  # noqa: N802  # the array's name in the contract
        """``[N, T, F]`` float32 windows, zero-padded on the left.

        Materialised on first access and kept (``N * T * F * 4`` bytes); :meth:`batch` gives
        windows of chosen decisions without materialising them all.
        """
        if self._windows is None:
            self._windows = self._padded_features()[self.window_index + 1]
        return self._windows

    @property
    def M(self) -> npt.NDArray[np.bool_]:  # noqa: N802  # the array's name in the contract
        """``[N, T]`` True where the window holds a real event."""
        return self.window_index >= 0

    @property
    def last_event(self) -> npt.NDArray[np.float32]:
        """``[N, F]`` features of each decision event (the last real step of each window)."""
        return self.event_features[self.decision_row]

    @property
    def before_answer(self) -> npt.NDArray[np.bool_]:
        """``[N]`` True where the decision event is followed directly by the answer it predicts.

        These windows give one prediction per answer, made from every event before it: the
        protocol knowledge-tracing benchmarks (pyKT) score next-answer prediction with.
        """
        n = len(self.event_learner)
        following = np.minimum(self.decision_row + 1, n - 1)
        out: npt.NDArray[np.bool_] = (
            (self.decision_row + 1 < n)
            & (self.event_correct[following] >= 0)
            & (self.event_learner[following] == self.learner)
        )
        return out

    def previous_events(self, k: int) -> npt.NDArray[np.float32]:
        """``[N, k, F]`` features of the ``k`` events up to and including the decision event."""
        return self._padded_features()[self.window_index[:, -k:] + 1]

    def subset(self, idx: npt.ArrayLike) -> WindowDataset:
        """Return the decisions ``idx`` (event arrays are shared, not copied)."""
        sel = np.asarray(idx)
        return replace(
            self,
            _windows=None,
            window_index=self.window_index[sel],
            Q=self.Q[sel],
            y_state=self.y_state[sel],
            y_next=self.y_next[sel],
            oracle=self.oracle[sel],
            learner=self.learner[sel],
            step=self.step[sel],
            decision_row=self.decision_row[sel],
            next_skill=self.next_skill[sel],
        )

    def split_by_learner(
        self, fraction: float, seed: int = 0
    ) -> tuple[WindowDataset, WindowDataset]:
        """Split decisions into two parts by learner (no learner in both)."""
        learners = np.unique(self.learner)
        rng = np.random.default_rng(seed)
        chosen = rng.permutation(learners)[: round(len(learners) * fraction)]
        mask = np.isin(self.learner, chosen)
        return self.subset(np.flatnonzero(mask)), self.subset(np.flatnonzero(~mask))

    def save(self, path: str | Path) -> None:
        """Write the dataset as a compressed ``.npz`` file."""
        np.savez_compressed(
            Path(path),
            event_features=self.event_features,
            event_state=self.event_state,
            event_learner=self.event_learner,
            event_skill=self.event_skill,
            event_correct=self.event_correct,
            event_attempt=self.event_attempt,
            window_index=self.window_index,
            Q=self.Q,
            y_state=self.y_state,
            y_next=self.y_next,
            oracle=self.oracle,
            learner=self.learner,
            step=self.step,
            decision_row=self.decision_row,
            next_skill=self.next_skill,
            family=np.array(self.family),
            seed=np.array(self.seed),
            event_feature_names=np.array(EVENT_FEATURES),
            query_feature_names=np.array(QUERY_FEATURES),
        )

    @classmethod
    def load(cls, path: str | Path) -> WindowDataset:
        """Read a dataset written by :meth:`save`.

        Raises:
            ValueError: If the file was written with other feature names.
        """
        with np.load(Path(path), allow_pickle=False) as data:
            if (
                tuple(data["event_feature_names"].tolist()) != EVENT_FEATURES
                or tuple(data["query_feature_names"].tolist()) != QUERY_FEATURES
            ):
                raise ValueError(f"{path}: written with different feature definitions")
            return cls(
                event_features=data["event_features"],
                event_state=data["event_state"],
                event_learner=data["event_learner"],
                event_skill=data["event_skill"],
                event_correct=data["event_correct"],
                event_attempt=data["event_attempt"],
                window_index=data["window_index"],
                Q=data["Q"],
                y_state=data["y_state"],
                y_next=data["y_next"],
                oracle=data["oracle"],
                learner=data["learner"],
                step=data["step"],
                decision_row=data["decision_row"],
                next_skill=data["next_skill"],
                family=str(data["family"]),
                seed=int(data["seed"]),
            )


def windows_from_columns(
    cols: EventColumns,
    window: int = 32,
    stride: int = 1,
    progress: Progress | None = None,
    item_norms: list[ItemNorms] | None = None,
) -> WindowDataset:
    """Build decision windows from a simulated cohort.

    Args:
        cols: The cohort's events (rows of one learner contiguous, in order).
        window: Events per window ``T``.
        stride: Keep every ``stride``-th decision point of each learner (1 keeps all).
        progress: Progress callback of the feature replay.
        item_norms: Item norms to start from (see :func:`warm_item_norms`).

    Returns:
        The dataset.
    """
    if window < 1 or stride < 1:
        raise ValueError("window and stride must be at least 1")
    event_features, next_query, nxt = compute_features(cols, progress, item_norms)
    rows = np.flatnonzero(nxt >= 0).astype(np.int64)
    if stride > 1:
        rows = rows[cols.seq[rows] % stride == 0]
    learner = cols.learner.astype(np.int64)
    first_row = np.zeros(len(cols.learner_ids), dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, learner[1:] != learner[:-1]])
    first_row[learner[starts]] = starts
    offsets = np.arange(-window + 1, 1, dtype=np.int64)
    wi = rows[:, None] + offsets[None, :]
    wi[wi < first_row[learner[rows]][:, None]] = -1
    target = nxt[rows]
    skill_index: dict[str, int] = {}
    for skill_ids in cols.objects.skill_ids:
        for sid in skill_ids:
            skill_index.setdefault(sid, len(skill_index))
    obj_skill = np.array(
        [skill_index[s[0]] if s else -1 for s in cols.objects.skill_ids] + [-1], dtype=np.int64
    )
    # obj == -1 picks the trailing -1 of obj_skill.
    event_skill = obj_skill[cols.obj]
    return WindowDataset(
        event_features=event_features,
        event_state=cols.state.astype(np.int64),
        event_learner=learner,
        event_skill=event_skill,
        event_correct=cols.correct.copy(),
        event_attempt=cols.attempt.copy(),
        window_index=wi,
        Q=next_query[rows],
        y_state=cols.state[rows].astype(np.int64),
        y_next=cols.correct[target].astype(np.float32),
        oracle=cols.p_correct[target].astype(np.float32),
        learner=learner[rows],
        step=cols.seq[rows].astype(np.int64),
        decision_row=rows,
        next_skill=event_skill[target],
        family=cols.family,
        seed=cols.seed,
    )


def build_dataset(
    family: str,
    n_learners: int,
    seed: int,
    window: int = 32,
    stride: int = 1,
    problems_per_learner: int = 120,
    progress: Progress | None = None,
    warmup_learners: int = 50,
    producer_habits: float = 0.0,
    **cohort: int,
) -> WindowDataset:
    """Simulate a cohort and build its decision windows.

    Args:
        family: Simulator family, ``bkt`` or ``irt``.
        n_learners: Learners to simulate.
        seed: Cohort seed (use seeds never used in training for evaluation).
        window: Events per window.
        stride: Keep every ``stride``-th decision point per learner.
        problems_per_learner: Mean problems per learner.
        progress: Progress callback of the feature replay.
        warmup_learners: Learners of a separate cohort (same course, seed derived from
            ``seed``) replayed first to warm the item norms, as a deployed stream's history
            would; 0 starts from empty norms.
        producer_habits: Share of learners given real producers' habits (missing signals,
            other grammars, their own pace; :mod:`inference.lab.scenarios.habits`).
        **cohort: Other :class:`CohortConfig` fields (``n_skills``, ``items_per_skill``...).

    Returns:
        The dataset.
    """
    config = CohortConfig(
        family=family,
        n_learners=n_learners,
        seed=seed,
        problems_per_learner=problems_per_learner,
        **cohort,
    )
    norms = None
    if warmup_learners > 0:
        warm = replace(config, n_learners=warmup_learners, seed=warmup_seed(seed))
        norms = warm_item_norms(simulate_cohort(warm))
    cols = simulate_cohort(config)
    if producer_habits > 0:
        from inference.lab.scenarios.habits import apply_habits

        cols = apply_habits(cols, producer_habits, seed)
        if norms is not None:
            # items seen without their skills are twins of their own, with cold norms
            norms += [ItemNorms() for _ in range(len(cols.objects.object_ids) - len(norms))]
    return windows_from_columns(
        cols, window=window, stride=stride, progress=progress, item_norms=norms
    )


def warmup_seed(seed: int) -> int:
    """Return the seed of the warm-up cohort of ``seed`` (never a training or test seed)."""
    return int(np.random.SeedSequence([seed, 0x3A4F]).generate_state(1, np.uint32)[0]) + 2**40


class ProgressPrinter:
    """Prints ``label: done/total (rate/s, ETA)`` at most every ``every_s`` seconds."""

    def __init__(self, label: str, every_s: float = 2.0, unit: str = "events") -> None:
        self.label = label
        self.every_s = every_s
        self.unit = unit
        self.t0: float | None = None
        self.last = -math.inf

    def __call__(self, done: int, total: int) -> None:
        """Report progress."""
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now
            return
        if now - self.last < self.every_s and done < total:
            return
        self.last = now
        elapsed = max(now - self.t0, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else math.inf
        print(
            f"{self.label}: {done:,}/{total:,} {self.unit} ({rate:,.0f}/s, ETA {eta:,.0f} s)",
            flush=True,
        )

"""Producer habits applied to a simulated cohort, so a model trains on streams like real LMSs'.

The scenario suite shows what real producers leave out or write another way: no feedback
views (H5P, Open edX), no hint levels (H5P), no skills (Canvas), no durations (Moodle's answers,
Open edX), no responses (Open edX through Ralph), no start statements (Open edX) or a start
before every retry (Moodle, many xAPI LMSs), and learners' own pace (a fast expert, a slow but
steady learner). :func:`apply_habits` gives each of a share of a cohort's learners a producer's
habits, drawn independently, and rewrites their events accordingly; the ground-truth states of
the events that remain are unchanged, so the model learns that a missing signal is not a
behaviour.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from inference.lab.simulator.columns import EVENT_TYPE_CODE, EventColumns, ObjectTable
from schemas.events import EventType

_START: Final = EVENT_TYPE_CODE[EventType.PROBLEM_START]
_ANSWER: Final = EVENT_TYPE_CODE[EventType.ANSWER_SUBMIT]
_HINT: Final = EVENT_TYPE_CODE[EventType.HINT_REQUEST]
_FEEDBACK: Final = EVENT_TYPE_CODE[EventType.FEEDBACK_VIEW]

HABITS: Final[dict[str, float]] = {
    "no_feedback": 0.35,
    "no_hint_levels": 0.35,
    "no_skills": 0.25,
    "no_durations": 0.2,
    "no_responses": 0.2,
    "no_starts": 0.15,
    "retry_starts": 0.35,
    "own_pace": 0.5,
}
"""Chance that a learner with habits has each one (drawn independently)."""
PACE_SIGMA: Final = 0.6
"""Spread of a learner's own pace: durations scale by ``exp(N(0, PACE_SIGMA))``."""
_SEED_SALT: Final = 0x48AB


def _columns(cols: EventColumns, keep: npt.NDArray[np.int64], **changed: object) -> EventColumns:
    fields = {
        f.name: getattr(cols, f.name)
        for f in dataclasses.fields(cols)
        if isinstance(getattr(cols, f.name), np.ndarray)
    }
    out = {name: array[keep] for name, array in fields.items()}
    out.update(changed)
    return dataclasses.replace(cols, **out)


def apply_habits(cols: EventColumns, share: float, seed: int) -> EventColumns:
    """Return ``cols`` with producer habits applied to a ``share`` of the learners.

    Args:
        cols: a simulated cohort (rows of one learner contiguous, in the learner's order).
        share: the share of learners given habits (0 returns ``cols`` unchanged).
        seed: seed of the draws (the cohort's own seed gives a reproducible dataset).
    """
    if share <= 0:
        return cols
    rng = np.random.default_rng([seed, _SEED_SALT])
    n_learners = len(cols.learner_ids)
    chosen = rng.random(n_learners) < share
    habit = {
        name: chosen & (rng.random(n_learners) < p) for name, p in HABITS.items()
    }  # one draw per habit and learner, whatever the share
    pace = np.exp(rng.normal(0.0, PACE_SIGMA, n_learners))
    learner = cols.learner
    event_type = cols.event_type
    rows = np.arange(len(cols), dtype=np.int64)

    # retry starts: a start (the ``attempted`` many LMSs send) just before every retry
    retry = (event_type == _ANSWER) & (cols.attempt > 1) & habit["retry_starts"][learner]
    # rows to drop: feedback views, or every start
    drop = ((event_type == _FEEDBACK) & habit["no_feedback"][learner]) | (
        (event_type == _START) & habit["no_starts"][learner]
    )
    keep = rows[~drop]
    inserted = np.flatnonzero(retry[keep])
    order = np.insert(keep, inserted, keep[inserted])
    is_new = np.zeros(len(order), dtype=bool)
    is_new[inserted + np.arange(len(inserted))] = True
    out = _columns(cols, order)
    who = out.learner

    event_type = out.event_type.copy()
    event_type[is_new] = _START
    t_us = out.t_us.copy()
    new_rows = np.flatnonzero(is_new)
    # half a second before the retry's answer, never before the learner's previous event
    t_us[new_rows] = np.maximum(t_us[new_rows] - 500_000, t_us[new_rows - 1])
    p_correct = out.p_correct.copy()
    p_correct[is_new] = math.nan
    correct = out.correct.copy()
    correct[is_new] = -1
    response = out.response.copy()
    response[is_new] = -1
    response[habit["no_responses"][who]] = -1
    attempt = out.attempt.copy()
    attempt[is_new] = 0
    duration = out.duration_s.copy()
    duration[is_new] = math.nan
    duration *= np.where(habit["own_pace"][who], pace[who], 1.0)
    duration[habit["no_durations"][who]] = math.nan
    hint_level = out.hint_level.copy()
    hint_count = out.hint_count.copy()
    bare_hints = (event_type == _HINT) & habit["no_hint_levels"][who]
    hint_level[bare_hints] = -1
    hint_count[bare_hints] = 0
    starts = np.r_[0, np.flatnonzero(np.diff(who)) + 1]
    seq = (np.arange(len(out)) - np.repeat(starts, np.diff(np.r_[starts, len(out)]))).astype(
        np.int32
    )

    # no skills: the learner's items become twins that name none (an LMS that sends no skills
    # is also a deployment whose item norms start cold)
    objects = cols.objects
    obj = out.obj.copy()
    skill_less = habit["no_skills"][who] & (obj >= 0)
    if skill_less.any():
        base = len(objects.object_ids)
        objects = ObjectTable(
            object_ids=objects.object_ids * 2,
            skill_ids=objects.skill_ids + tuple(() for _ in objects.skill_ids),
            lms_difficulty=objects.lms_difficulty * 2,
            hint_count=objects.hint_count * 2,
            response_hashes=objects.response_hashes * 2,
            n_items=objects.n_items,
        )
        obj[skill_less] += base
    return dataclasses.replace(
        out,
        seq=seq,
        event_type=event_type,
        t_us=t_us,
        p_correct=p_correct,
        correct=correct,
        response=response,
        attempt=attempt,
        duration_s=duration,
        hint_level=hint_level,
        hint_count=hint_count,
        obj=obj,
        objects=objects,
    )

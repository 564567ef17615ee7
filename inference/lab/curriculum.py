"""A curriculum: skills with a prerequisite graph and items with IRT parameters.

The simulator draws learners against a :class:`Curriculum`, the next-item policy chooses among
its items, and the stream knows items only by id and skill ids, exactly as an LMS reports them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Skill:
    """A skill and the skills that must be mastered before it can be learnt well.

    Attributes:
        index: Position in topological order (prerequisites always come first).
        skill_id: Identifier as an LMS reports it.
        prerequisites: Indices of the prerequisite skills.
        depth: Length of the longest prerequisite chain leading to the skill.
    """

    index: int
    skill_id: str
    prerequisites: tuple[int, ...]
    depth: int


@dataclass(frozen=True, slots=True)
class Item:
    """A practice item.

    Attributes:
        index: Position in :attr:`Curriculum.items`.
        item_id: Identifier as an LMS reports it.
        skills: Indices of the skills the item exercises; the first is its main skill.
        difficulty: IRT difficulty ``b`` on the logit scale.
        discrimination: IRT discrimination ``a``.
        typical_time_s: Median time an engaged learner needs for a first answer.
        n_options: Responses a learner can give (the correct one and the distractors).
        hint_count: Hints the item offers; the last one gives the answer away.
        lms_difficulty: Difficulty the LMS reports (noisy), or ``None`` when it reports none.
        response_hashes: Hash of each response; index 0 is the correct one.
    """

    index: int
    item_id: str
    skills: tuple[int, ...]
    difficulty: float
    discrimination: float
    typical_time_s: float
    n_options: int
    hint_count: int
    lms_difficulty: float | None
    response_hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Curriculum:
    """Skills in topological order and the items that exercise them.

    Attributes:
        skills: The skills, prerequisites first.
        items: The items, grouped by main skill in skill order.
        items_by_skill: For each skill index, the indices of the items whose main skill it is.
    """

    skills: tuple[Skill, ...]
    items: tuple[Item, ...]
    items_by_skill: tuple[tuple[int, ...], ...] = field(repr=False)

    def skill_ids(self, item: Item) -> tuple[str, ...]:
        """Return the skill ids of an item as an LMS reports them."""
        return tuple(self.skills[s].skill_id for s in item.skills)


def response_hash(item_id: str, option: int) -> str:
    """Return the hash an LMS would send for response ``option`` to ``item_id``.

    The LMS never sends the response text, only a hash; equal responses give equal hashes.
    """
    return hashlib.sha256(f"{item_id}\x1f{option}".encode()).hexdigest()[:16]


def make_curriculum(
    n_skills: int = 12,
    items_per_skill: int = 8,
    seed: int = 0,
    lms_difficulty_share: float = 0.6,
    item_spread: float = 1.4,
) -> Curriculum:
    """Draw a curriculum with a prerequisite DAG and IRT item parameters.

    Args:
        n_skills: Number of skills.
        items_per_skill: Items whose main skill is each skill.
        seed: Seed; the same seed gives the same curriculum.
        lms_difficulty_share: Share of items for which the LMS reports a difficulty.
        item_spread: Standard deviation of item difficulty around its skill's level.

    Returns:
        The curriculum.
    """
    if n_skills < 1 or items_per_skill < 1:
        raise ValueError("a curriculum needs at least one skill and one item per skill")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0C0]))
    skills: list[Skill] = []
    for s in range(n_skills):
        prerequisites: tuple[int, ...] = ()
        if s > 0:
            # Prerequisites come from the few skills just before, as in a textbook chapter.
            window = list(range(max(0, s - 3), s))
            n_pre = 1 if len(window) == 1 or rng.random() < 0.6 else 2
            chosen = rng.choice(window, size=min(n_pre, len(window)), replace=False)
            prerequisites = tuple(sorted(int(c) for c in chosen))
        depth = 1 + max((skills[p].depth for p in prerequisites), default=-1)
        skills.append(Skill(s, f"skill-{s:02d}", prerequisites, depth))

    items: list[Item] = []
    by_skill: list[list[int]] = [[] for _ in range(n_skills)]
    for skill in skills:
        # Later skills are a little harder on average; items spread around the skill's level.
        skill_level = -0.6 + 0.12 * skill.depth + float(rng.normal(0.0, 0.3))
        for k in range(items_per_skill):
            index = len(items)
            item_id = f"item-{skill.index:02d}-{k:02d}"
            b = skill_level + float(rng.normal(0.0, item_spread))
            a = float(np.clip(rng.lognormal(0.0, 0.15), 0.6, 1.6))
            typical = float(np.clip(25.0 * math.exp(0.35 * b) * rng.lognormal(0.0, 0.35), 8, 240))
            n_options = int(rng.integers(4, 7))
            hint_count = int(rng.integers(2, 6))
            tags: tuple[int, ...] = (skill.index,)
            if skill.prerequisites and rng.random() < 0.25:
                tags = (skill.index, int(rng.choice(skill.prerequisites)))
            lms = (
                round(b + float(rng.normal(0.0, 0.5)), 2)
                if rng.random() < lms_difficulty_share
                else None
            )
            hashes = tuple(response_hash(item_id, o) for o in range(n_options))
            items.append(
                Item(index, item_id, tags, b, a, typical, n_options, hint_count, lms, hashes)
            )
            by_skill[skill.index].append(index)
    return Curriculum(tuple(skills), tuple(items), tuple(tuple(v) for v in by_skill))

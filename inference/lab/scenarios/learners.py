"""The scripted learners: one builder per behaviour and per control, with their own parameters.

Each behaviour follows its definition in the literature, not the training simulator:

- **rapid guessing** (Wise & Kong, 2005): answers given faster than anyone could read the item,
  about as often right as chance. Intended state ``gaming``; ``overconfidence`` counts too (its
  definition is answering far faster than the item's norm, and its prompt is the same: slow
  down). Onset: the first rapid answer's item start.
- **hint abuse** (Aleven et al., 2006): clicking through the hints to the bottom-out within
  seconds, then entering the answer it gives. Intended ``gaming``. Onset: that item's start.
- **identical wrong resubmission**: after a wrong answer, the same response again, with the
  feedback skimmed or not opened. Intended ``anchoring``. Onset: the first resubmitted answer.
- **wheel-spinning** (Beck & Gong, 2013): ten practice opportunities (items) on one skill
  without three first answers right in a row. Intended ``wheel_spinning``. Onset: the tenth
  item's first answer, the first point at which the definition holds.
- **confirmation seeking**: after a wrong answer, the corrective feedback skimmed and a resource
  that backs the answer already given read at length, then the same answer again. Intended
  ``confirmation``. Onset: the first such resource.

Controls that must raise nothing: engaged learners (ordinary times, hints when stuck, feedback
read, answers revised), slow but steady learners (three to five times longer on everything,
improving), fast experts (quick and right).

Every scripted learner starts with engaged work on two items, so a behaviour begins in a learner
the pipeline already knows. Randomness is a seeded :class:`random.Random` per learner.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from inference.lab.scenarios.script import Script, ScriptedLearner

SKILLS: tuple[str, ...] = ("fractions", "ratios", "equations", "geometry")
ITEMS_PER_SKILL = 12
"""Items in the course per skill; item ``n`` exercises ``SKILLS[n // ITEMS_PER_SKILL]``."""
CHOICES = ("A", "B", "C", "D")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def skill_of(item: int) -> str:
    """Return the skill item ``item`` exercises."""
    return SKILLS[(item // ITEMS_PER_SKILL) % len(SKILLS)]


def right(item: int) -> str:
    """Return the correct response to ``item``."""
    return f"{item * 7 % 11}/{item % 5 + 2}"


def wrong(item: int, k: int) -> str:
    """Return wrong response number ``k`` to ``item``."""
    return f"{item * 3 % 13 + k + 1}/{item % 4 + 3 + k}"


@dataclass(frozen=True, slots=True)
class Variant:
    """How a scenario is written for one group of learners.

    Attributes:
        name: the variant's name in reports.
        attempted_before_retry: the producer sends a start before each retry.
        feedback_views: the producer records feedback views.
        hint_levels: the producer records hint levels.
    """

    name: str
    attempted_before_retry: bool = True
    feedback_views: bool = True
    hint_levels: bool = True


def _engaged_item(
    s: Script, rng: random.Random, item: int, *, p_right: float, pace: float = 1.0
) -> None:
    """An item worked on with care: read, maybe a hint, feedback read, answers revised."""
    s.start(item, skill_of(item), after=rng.uniform(3, 10) * pace)
    if rng.random() < 0.2:
        s.hint(after=rng.uniform(20, 45) * pace)
    for k in range(3):
        ok = rng.random() < p_right or k == 2
        s.answer(
            correct=ok,
            response=right(item) if ok else wrong(item, k),
            think=rng.lognormvariate(3.4, 0.35) * pace if k == 0 else rng.uniform(15, 35) * pace,
        )
        if ok:
            break
        s.feedback(dwell=rng.uniform(8, 25) * pace, after=rng.uniform(0.5, 2))
        if k == 1:
            s.hint(after=rng.uniform(10, 25) * pace)
        s.retry(after=rng.uniform(1, 3))
    s.complete(after=rng.uniform(0.5, 2))


def _warm_up(s: Script, rng: random.Random, items: Iterator[int]) -> None:
    for _ in range(2):
        _engaged_item(s, rng, next(items), p_right=0.7)


def _course(rng: random.Random, skill: str | None = None) -> Iterator[int]:
    """Items in course order from a random place (within ``skill`` when given)."""
    if skill is not None:
        base = SKILLS.index(skill) * ITEMS_PER_SKILL
        first = rng.randrange(ITEMS_PER_SKILL)
        while True:
            for k in range(ITEMS_PER_SKILL):
                yield base + (first + k) % ITEMS_PER_SKILL
    total = ITEMS_PER_SKILL * len(SKILLS)
    n = rng.randrange(total)
    while True:
        yield n % total
        n += 1


Builder = Callable[[Script, random.Random], None]


def rapid_guessing(s: Script, rng: random.Random) -> None:
    """Two engaged items, then answers within seconds, right about one time in four."""
    items = _course(rng)
    _warm_up(s, rng, items)
    s.onset()
    for _ in range(8):
        item = next(items)
        s.start(item, skill_of(item), after=rng.uniform(0.5, 2))
        for k in range(rng.choice((1, 1, 2))):
            ok = rng.random() < 0.25
            s.answer(
                correct=ok,
                response=right(item) if ok else rng.choice(CHOICES) + str(k),
                think=rng.uniform(1.0, 3.0),
            )
            if ok:
                break
            s.retry(after=rng.uniform(0.3, 1))
        s.complete(after=rng.uniform(0.3, 1))


def hint_abuse(s: Script, rng: random.Random) -> None:
    """Two engaged items, then every hint to the bottom-out within seconds, then its answer."""
    items = _course(rng)
    _warm_up(s, rng, items)
    s.onset()
    for _ in range(6):
        item = next(items)
        s.start(item, skill_of(item), after=rng.uniform(1, 3))
        for _level in range(s.hint_count):
            s.hint(after=rng.uniform(0.6, 2.0))
        s.answer(correct=True, response=right(item), think=rng.uniform(2, 5))
        s.complete(after=rng.uniform(0.5, 1.5))


def resubmission(s: Script, rng: random.Random) -> None:
    """Two engaged items, then the same wrong response resubmitted after skimming feedback."""
    items = _course(rng)
    _warm_up(s, rng, items)
    for n in range(3):
        item = next(items)
        s.start(item, skill_of(item), after=rng.uniform(3, 8))
        stuck = wrong(item, 0)
        s.answer(correct=False, response=stuck, think=rng.uniform(25, 50))
        for r in range(rng.choice((3, 4))):
            s.feedback(dwell=rng.uniform(0.5, 2.5), after=rng.uniform(0.5, 1.5))
            s.retry(after=rng.uniform(0.5, 2))
            if n == 0 and r == 0:
                s.onset()
            s.answer(correct=False, response=stuck, think=rng.uniform(4, 12))
        s.feedback(dwell=rng.uniform(5, 15))
        s.retry(after=rng.uniform(1, 3))
        s.answer(correct=True, response=right(item), think=rng.uniform(20, 40))
        s.complete(after=1)


def wheel_spinning(s: Script, rng: random.Random) -> None:
    """One engaged item, then one skill practised item after item without three right in a row.

    Practice opportunities are items (first answers), as in Beck and Gong's definition; a wrong
    first answer is retried once, which does not count as another opportunity.
    """
    skill = rng.choice(SKILLS)
    others = _course(rng)
    first = next(others)
    while skill_of(first) == skill:
        first = next(others)
    _engaged_item(s, rng, first, p_right=0.7)
    items = _course(rng, skill)
    streak = 0
    for opportunity in range(1, 19):
        item = next(items)
        s.start(item, skill, after=rng.uniform(3, 8))
        ok = rng.random() < 0.35 and streak < 2
        streak = streak + 1 if ok else 0
        if opportunity == 10:
            s.onset()
        s.answer(
            correct=ok,
            response=right(item) if ok else wrong(item, 0),
            think=rng.lognormvariate(3.5, 0.3),
        )
        if not ok:
            s.feedback(dwell=rng.uniform(8, 18), after=rng.uniform(0.5, 2))
            if rng.random() < 0.4:
                s.hint(after=rng.uniform(10, 25))
            s.retry(after=rng.uniform(1, 3))
            again = rng.random() < 0.5
            s.answer(
                correct=again,
                response=right(item) if again else wrong(item, 1),
                think=rng.uniform(20, 40),
            )
            if not again:
                s.feedback(dwell=rng.uniform(8, 18), after=rng.uniform(0.5, 2))
        s.complete(after=rng.uniform(0.5, 2))


def confirmation(s: Script, rng: random.Random) -> None:
    """Two engaged items, then feedback skimmed and a resource backing the wrong answer read."""
    items = _course(rng)
    _warm_up(s, rng, items)
    for n in range(4):
        item = next(items)
        s.start(item, skill_of(item), after=rng.uniform(3, 8))
        held = wrong(item, 0)
        s.answer(correct=False, response=held, think=rng.uniform(25, 50))
        for r in range(2):
            s.feedback(dwell=rng.uniform(0.5, 2), after=rng.uniform(0.5, 1.5))
            if n == 0 and r == 0:
                s.onset()
            s.resource(100 + item, relation="supports", dwell=rng.uniform(40, 120))
            s.retry(after=rng.uniform(1, 3))
            s.answer(correct=False, response=held, think=rng.uniform(15, 30))
        s.complete(after=1)


def engaged(s: Script, rng: random.Random) -> None:
    """Twelve items worked on with care, improving from 60% to 90% right."""
    items = _course(rng)
    for n in range(12):
        _engaged_item(s, rng, next(items), p_right=0.6 + 0.3 * n / 11)


def slow_steady(s: Script, rng: random.Random) -> None:
    """Like an engaged learner at three to five times the pace, improving from 45% to 90%."""
    items = _course(rng)
    pace = rng.uniform(3, 5)
    for n in range(12):
        _engaged_item(s, rng, next(items), p_right=0.45 + 0.45 * n / 11, pace=pace)


def fast_expert(s: Script, rng: random.Random) -> None:
    """Twelve items answered in a few seconds, almost always right; a slip is corrected."""
    items = _course(rng)
    for _ in range(12):
        item = next(items)
        s.start(item, skill_of(item), after=rng.uniform(1, 3))
        if rng.random() < 0.93:
            s.answer(correct=True, response=right(item), think=rng.uniform(4, 9))
        else:
            s.answer(correct=False, response=wrong(item, 0), think=rng.uniform(4, 9))
            s.feedback(dwell=rng.uniform(4, 8), after=0.5)
            s.retry(after=1)
            s.answer(correct=True, response=right(item), think=rng.uniform(5, 10))
        s.complete(after=rng.uniform(0.5, 1.5))


@dataclass(frozen=True, slots=True)
class Scenario:
    """A behaviour (or a control) and how it is written.

    Attributes:
        name: the scenario's name.
        build: writes one learner's acts.
        intended: states that count as detecting it (empty: a control).
        variants: how it is written for each group of learners.
        needs: what a producer must record for the scenario to exist in its style
            (``hints``, ``responses``, ``relations``); a style that cannot record it is left
            out of that scenario, with the reason in :mod:`inference.lab.scenarios.styles`.
    """

    name: str
    build: Builder
    intended: tuple[str, ...]
    variants: tuple[Variant, ...]
    needs: frozenset[str] = frozenset()


_ANY = (Variant("retry-attempted", True), Variant("retry-bare", False))
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("rapid_guessing", rapid_guessing, ("gaming", "overconfidence"), _ANY),
    Scenario(
        "hint_abuse",
        hint_abuse,
        ("gaming",),
        (Variant("levels", hint_levels=True), Variant("no-levels", hint_levels=False)),
        frozenset({"hints"}),
    ),
    Scenario(
        "resubmission",
        resubmission,
        ("anchoring",),
        tuple(
            Variant(
                f"{'feedback' if fb else 'no-feedback'}/{'attempted' if at else 'bare'}",
                attempted_before_retry=at,
                feedback_views=fb,
            )
            for fb in (True, False)
            for at in (True, False)
        ),
        frozenset({"responses"}),
    ),
    Scenario("wheel_spinning", wheel_spinning, ("wheel_spinning",), _ANY),
    Scenario(
        "confirmation",
        confirmation,
        ("confirmation",),
        (Variant("feedback", True, True), Variant("no-feedback", True, False)),
        frozenset({"relations", "responses"}),
    ),
    Scenario("engaged", engaged, (), _ANY),
    Scenario("slow_steady", slow_steady, (), _ANY),
    Scenario("fast_expert", fast_expert, (), _ANY),
)
"""Every scenario, behaviours first, then the controls."""

SCENARIO_NAMES: tuple[str, ...] = tuple(s.name for s in SCENARIOS)


def cohort(
    scenario: Scenario,
    variant: Variant,
    count: int,
    *,
    seed: int,
    prefix: str,
    classes: int = 3,
) -> list[ScriptedLearner]:
    """Write ``count`` learners of one scenario variant.

    Args:
        scenario: the scenario.
        variant: how it is written.
        count: learners.
        seed: seed of the learners' draws.
        prefix: put before each learner's name (names are unique across a run).
        classes: course sections the learners are spread over.
    """
    out: list[ScriptedLearner] = []
    for n in range(count):
        rng = random.Random(f"{seed}/{scenario.name}/{variant.name}/{n}")
        name = f"{prefix}{scenario.name}-{variant.name.replace('/', '-')}-{n:03d}"
        script = Script(name, START + timedelta(minutes=rng.uniform(0, 90)))
        scenario.build(script, rng)
        out.append(
            ScriptedLearner(
                learner=name,
                scenario=scenario.name,
                variant=variant.name,
                intended=scenario.intended,
                acts=tuple(script.acts),
                onset_act=script.onset_act,
                class_name=f"section-{n % classes + 1}",
                attempted_before_retry=variant.attempted_before_retry,
                feedback_views=variant.feedback_views,
                hint_levels=variant.hint_levels,
            )
        )
    return out

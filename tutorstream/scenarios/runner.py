"""Run the scenario streams through the pipeline's own code and collect each learner's outcome.

Offline, each producer style's statements go, in time order and in micro-batches, through what
the worker runs on them: the real normaliser (a statement it refuses is a dead letter), records
placed on the partition of the learner's pseudonym, :class:`streams.processor.EventProcessor`
(dedupe, features, the model's inputs), the ONNX model and the stream's intervention policy
(:class:`streams.policy.InterventionPolicy` with the worker's default settings unless told
otherwise) — the same path a rebuild replay takes. Each style is a deployment of its own: its
learners, item norms and classes start empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from common.partitioning import partition_for
from inference.lab.scenarios.learners import SCENARIOS, Scenario, cohort
from inference.lab.scenarios.scoring import LearnerOutcome
from inference.lab.scenarios.script import ScriptedLearner
from inference.lab.scenarios.styles import STYLES, Statement, Style
from inference.runtime import LearnerModel
from schemas.events import UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.normalise import normalise, pseudonymiser_for
from schemas.profiles import BUILTIN_ID, load_profiles
from schemas.profiles.compiled import CompiledProfile, builtin, compile_profile
from schemas.topics import LMS_EVENTS
from streams.carried import CarriedModel
from streams.policy import InterventionPolicy, PolicySettings
from streams.processor import EventProcessor, InboundRecord, StateView

DEFAULT_KEY = b"scenario-suite-pseudonym-key"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A scripted learner as one producer style sends it."""

    learner: ScriptedLearner
    style: Style
    statements: tuple[Statement, ...]
    onset: int | None


@dataclass(slots=True)
class Suite:
    """Every scripted learner of a run, rendered in every style that can write it.

    Attributes:
        rendered: the learners per style.
        left_out: per style, the scenarios it cannot write and what they need.
    """

    rendered: list[Rendered] = field(default_factory=list)
    left_out: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def by_style(self) -> dict[str, list[Rendered]]:
        """Return the rendered learners grouped by style, in style order."""
        out: dict[str, list[Rendered]] = {}
        for r in self.rendered:
            out.setdefault(r.style.name, []).append(r)
        return out


def build_suite(
    *,
    per_scenario: int = 20,
    per_control: int = 50,
    seed: int = 14,
    styles: Sequence[Style] = STYLES,
    scenarios: Sequence[Scenario] = SCENARIOS,
) -> Suite:
    """Write the learners of every scenario and render them in every style.

    A scenario's learners are spread evenly over the variants the style can write, so every
    scenario has the same number of learners in every style that has it.

    Args:
        per_scenario: learners per behaviour scenario and style.
        per_control: learners per control kind and style.
        seed: seed of the learners' draws.
        styles: producer styles.
        scenarios: scenarios.
    """
    suite = Suite()
    for style in styles:
        for scenario in scenarios:
            missing = style.missing(scenario)
            if missing:
                suite.left_out.setdefault(style.name, {})[scenario.name] = sorted(missing)
                continue
            variants = [v for v in scenario.variants if style.writes(scenario, v)]
            total = per_control if not scenario.intended else per_scenario
            for n, variant in enumerate(variants):
                count = total // len(variants) + (n < total % len(variants))
                for learner in cohort(scenario, variant, count, seed=seed, prefix=f"{style.name}-"):
                    statements, onset = style.statements(learner)
                    suite.rendered.append(Rendered(learner, style, tuple(statements), onset))
    return suite


@dataclass(slots=True)
class StyleRun:
    """What one style's run produced besides the outcomes.

    Attributes:
        dead_letters: refused statements by reason (the reason's first words).
    """

    dead_letters: Counter[str] = field(default_factory=Counter)


def run_offline(
    suite: Suite,
    model: LearnerModel,
    *,
    policy: PolicySettings | None = None,
    pseudonym_key: bytes = DEFAULT_KEY,
    batch: int = 512,
) -> tuple[list[LearnerOutcome], dict[str, StyleRun]]:
    """Run every style's statements through the pipeline; return outcomes and dead letters."""
    outcomes: list[LearnerOutcome] = []
    runs: dict[str, StyleRun] = {}
    for style_name, rendered in suite.by_style().items():
        found, run = _run_style(rendered, model, policy, pseudonym_key, batch)
        outcomes.extend(found)
        runs[style_name] = run
    return outcomes, runs


def _run_style(
    rendered: list[Rendered],
    model: LearnerModel,
    policy: PolicySettings | None,
    key: bytes,
    batch: int,
) -> tuple[list[LearnerOutcome], StyleRun]:
    pseudonymiser = pseudonymiser_for(key)
    profile = style_profile(rendered[0].style) if rendered else None
    processor = EventProcessor(
        pseudonym_key=key,
        owns=lambda _learner, _record: True,
        policy=InterventionPolicy(policy or PolicySettings()),
        profiles=None if profile is None else {"builtin": builtin(), profile.profile_id: profile},
        default_profile="builtin" if profile is None else profile.profile_id,
        carried=CarriedModel.of(model),
    )
    view = StateView({}, {}, {}, model.window)
    where: dict[str, tuple[int, int]] = {}  # event id -> (learner number, statement index)
    queue: list[tuple[Statement, int, int]] = []
    for number, r in enumerate(rendered):
        for index, statement in enumerate(r.statements):
            where[statement.event_id.lower()] = (number, index)
            queue.append((statement, number, index))
    queue.sort(key=lambda entry: (entry[0].at, entry[1], entry[2]))
    raised: list[list[tuple[int, str]]] = [[] for _ in rendered]
    unread = [0] * len(rendered)
    run = StyleRun()
    offset = 0
    for start in range(0, len(queue), batch):
        records: list[InboundRecord] = []
        for statement, number, _index in queue[start : start + batch]:
            # the API keys each record by the learner's pseudonym, which picks its partition
            unmodelled: list[UnmodelledEvent] = []
            try:
                events = normalise(
                    statement.payload, pseudonymiser, profile=profile, unmodelled=unmodelled
                )
            except InvalidEvent as err:
                unread[number] += 1
                run.dead_letters[_reason(err)] += 1
                continue
            # a valid statement the model does not use is produced and stored all the same
            learner_id = (events or unmodelled)[0].learner_id
            records.append(
                InboundRecord(
                    statement.payload,
                    learner_id.encode(),
                    "lms.events.v1",
                    partition_for(learner_id, LMS_EVENTS.partitions),
                    offset,
                    statement.at.timestamp(),
                )
            )
            offset += 1
        if not records:
            continue
        result = processor.ingest(records, view)
        if result.for_model:
            prediction = processor.score(result, model)
            if result.scored:
                # with the next-item policy too, as the worker runs it: it reads the same state
                processor.decide_with(result, view, prediction, model)
        for out in result.interventions:
            number, index = where[out.event.event_id]
            raised[number].append((index, out.decision.state))
        view.write_back(result)
    outcomes = [
        LearnerOutcome(
            learner=r.learner.learner,
            scenario=r.learner.scenario,
            variant=r.learner.variant,
            style=r.style.name,
            intended=r.learner.intended,
            onset=r.onset,
            statements=len(r.statements),
            unread=unread[n],
            interventions=tuple(sorted(raised[n])),
        )
        for n, r in enumerate(rendered)
    ]
    return outcomes, run


def style_profile(style: Style) -> CompiledProfile | None:
    """Return the compiled producer profile of ``style`` (``None``: the built-in one reads it).

    An ingest key bound to this profile (``tutorstream keys create --profile``) or the
    worker's default profile (``TUTORSTREAM_PROFILES__DEFAULT``) reads the style the same way.
    """
    path = style.profile_path()
    if path is None:
        return None
    profiles = load_profiles([path], default=BUILTIN_ID)
    return compile_profile(profiles.get(style.profile), profiles.profiles)


def _reason(err: InvalidEvent) -> str:
    return f"{err.path}: {err.reason}"[:90]

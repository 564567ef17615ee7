"""``tutorstream model eval --scenarios``: the scenario suite against one model, as a report."""

from __future__ import annotations

import time
from typing import Any

from inference.lab.scenarios.scoring import WITHIN, format_table, report, summarise
from inference.registry import ModelSpec
from inference.runtime import LearnerModel
from streams.policy import PolicySettings
from tutorstream.scenarios.runner import build_suite, run_offline


def evaluate_scenarios(
    spec: ModelSpec,
    *,
    per_scenario: int = 20,
    per_control: int = 50,
    seed: int = 14,
    policy: PolicySettings | None = None,
    within: int = WITHIN,
) -> tuple[dict[str, Any], str]:
    """Run the scenario suite through the pipeline with ``spec``; return the report and its text.

    Args:
        spec: the model.
        per_scenario: scripted learners per behaviour scenario and style.
        per_control: learners per control kind and style.
        seed: seed of the learners' draws.
        policy: the intervention policy's settings (default: the worker's).
        within: statements after the onset within which a detection counts.
    """
    started = time.monotonic()
    suite = build_suite(per_scenario=per_scenario, per_control=per_control, seed=seed)
    model = LearnerModel(spec, intra_op_threads=1)
    outcomes, runs = run_offline(suite, model, policy=policy)
    rows = summarise(outcomes, within)
    dead = {name: dict(run.dead_letters.most_common()) for name, run in runs.items()}
    result = report(
        rows,
        within=within,
        model=spec.ref,
        seed=seed,
        learners=len(suite.rendered),
        statements=sum(len(r.statements) for r in suite.rendered),
        left_out=suite.left_out,
        dead_letters=dead,
        policy=(policy or PolicySettings()).model_dump(),
        seconds=round(time.monotonic() - started, 1),
    )
    lines = [
        f"scenario suite on {spec.ref}: {result['learners']} scripted learners, "
        f"{result['statements']} statements",
        "",
        format_table(rows, within),
        "",
    ]
    for style, scenarios in suite.left_out.items():
        for scenario, needs in scenarios.items():
            lines.append(f"not written in {style}: {scenario} (needs {', '.join(needs)})")
    for style, reasons in dead.items():
        for reason, count in list(reasons.items())[:3]:
            lines.append(f"dead letters in {style}: {count} x {reason}")
    for name, floor in result["floors"].items():
        state = "met" if floor["met"] else "NOT met: " + ", ".join(floor["failing"])
        lines.append(f"floor {name} ({floor['required']}): {state}")
    return result, "\n".join(lines)

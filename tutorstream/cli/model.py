"""`tutorstream model`: train, export, list, show and evaluate learner models.

``train`` and ``export`` need the ``train`` extra (torch, transformers); ``list``, ``show`` and
``eval`` run on the core install, from the ONNX files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from inference.decision import DEFAULT_ALERT_CAP
from inference.registry import (
    CARD_FILE,
    DEFAULT_MODEL,
    PACKAGED_MODELS,
    IntegrityError,
    ModelRegistry,
    RegistryError,
)
from tutorstream.bench.report import publish

app = typer.Typer(no_args_is_help=True, help="Train, export, list, show and evaluate models.")

RegistryOption = Annotated[
    Path,
    typer.Option(
        "--registry",
        envvar="TUTORSTREAM_MODEL_REGISTRY",
        help="Registry root for new models and searched before the packaged models "
        "(TUTORSTREAM_MODEL_REGISTRY).",
    ),
]
DEFAULT_REGISTRY = Path(".state/models")


def _registry(root: Path) -> ModelRegistry:
    return ModelRegistry.with_packaged([root])


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


@app.command()
def train(
    name: Annotated[str, typer.Option(help="Model name.")] = DEFAULT_MODEL,
    version: Annotated[
        str | None, typer.Option(help="Model version (default: next number).")
    ] = None,
    registry: RegistryOption = DEFAULT_REGISTRY,
    family: Annotated[str, typer.Option(help="Simulator family: bkt or irt.")] = "bkt",
    learners: Annotated[int, typer.Option(min=2, help="Training learners.")] = 600,
    val_learners: Annotated[int, typer.Option(min=2, help="Validation learners.")] = 150,
    seed: Annotated[int, typer.Option(help="Seed of the data and of every draw.")] = 20240601,
    encoder: Annotated[str, typer.Option(help="gru or transformer.")] = "gru",
    compare: Annotated[
        bool,
        typer.Option(
            "--compare-encoders",
            help="Also train the other encoder on the same data; keep the better.",
        ),
    ] = False,
    hidden_size: Annotated[int, typer.Option(min=4)] = 48,
    layers: Annotated[int, typer.Option(min=1)] = 1,
    epochs: Annotated[int, typer.Option(min=1)] = 4,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    learning_rate: Annotated[float, typer.Option()] = 3e-3,
    next_loss_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the next-answer loss beside the states'.")
    ] = 1.0,
    threads: Annotated[int, typer.Option(min=1, help="Torch threads.")] = 2,
    producer_habits: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of simulated learners given real LMSs' habits (signals left out, a "
            "start before each retry, their own pace).",
        ),
    ] = 0.0,
    max_false_alert_rate: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Cap on the share of `none` events that raise an alert, under which the "
            "per-state thresholds are fitted on the validation learners.",
        ),
    ] = DEFAULT_ALERT_CAP,
    evaluate: Annotated[
        bool, typer.Option("--eval/--no-eval", help="Evaluate on unseen learners afterwards.")
    ] = True,
    eval_learners: Annotated[int, typer.Option(min=2, help="Learners per eval cohort.")] = 200,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing version.")] = False,
) -> None:
    """Simulate learners, train the model, export ONNX, evaluate and register it."""
    # spinning OpenMP workers collapse throughput when the cores are shared; set before torch
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from inference.features import EVENT_FEATURES, QUERY_FEATURES
    from inference.training.train import (
        TrainOptions,
        compare_encoders,
        simulate_cohorts,
        train_on_arrays,
    )

    reg = _registry(registry)
    version = version or reg.next_version(name)
    from inference.training.release import refuse_existing

    try:
        refuse_existing(registry / name / version, overwrite)  # before minutes of training
    except RegistryError as err:
        _fail(str(err))
    options = TrainOptions(
        family=family,
        n_learners=learners,
        val_learners=val_learners,
        seed=seed,
        encoder=encoder,
        hidden_size=hidden_size,
        num_layers=layers,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        next_loss_weight=next_loss_weight,
        max_false_alert_rate=max_false_alert_rate,
        threads=threads,
        dataset_options={"producer_habits": producer_habits} if producer_habits > 0 else {},
    )
    train_data, val_data, data_seconds = simulate_cohorts(options)
    comparison = None
    if compare:
        comparison = compare_encoders(options, train_data, val_data)
        typer.echo(f"encoder comparison: {comparison['reason']}")
        options.encoder = comparison["chosen"]
        if options.encoder == "transformer":
            options.num_layers = max(options.num_layers, 2)
    result = train_on_arrays(train_data, val_data, options, EVENT_FEATURES, QUERY_FEATURES)
    result.data_seconds = data_seconds
    _register(reg, registry, name, version, result, val_data, comparison, evaluate,
              eval_learners, overwrite)  # fmt: skip


def _register(
    reg: ModelRegistry,
    root: Path,
    name: str,
    version: str,
    result: Any,
    val_data: Any,
    comparison: dict[str, Any] | None,
    evaluate: bool,
    eval_learners: int,
    overwrite: bool,
) -> None:
    from inference.training.release import refresh_card, write_model_folder

    folder = root / name / version
    try:
        metrics = write_model_folder(
            result, folder, val_data, name, version, encoder_comparison=comparison,
            overwrite=overwrite,
        )  # fmt: skip
    except RegistryError as err:
        _fail(str(err))
    typer.echo(
        f"trained {name}@{version} in {result.train_seconds:.0f} s; parity max abs diff "
        f"{metrics['parity']['max_abs_diff']:.2e}; wrote {folder}"
    )
    if evaluate:
        from inference.lab.evaluate import EvalOptions, evaluate_model, format_report

        spec = ModelRegistry([root]).load(f"{name}@{version}")
        evaluation = evaluate_model(spec, EvalOptions(n_learners=eval_learners))
        metrics["evaluation"] = evaluation
        refresh_card(folder, metrics)
        typer.echo(format_report(evaluation))


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="name@version or name@latest.")] = DEFAULT_MODEL,
    registry: RegistryOption = DEFAULT_REGISTRY,
    out: Annotated[
        Path | None,
        typer.Option(help="Registry root to export into (default: the model's own folder)."),
    ] = None,
) -> None:
    """Re-export a registered model's weights to every ONNX graph, check parity, re-sign."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from inference.training.release import reexport

    try:
        spec = _registry(registry).load(model)
        folder, report = reexport(spec, out)
    except RegistryError as err:
        _fail(str(err))
    typer.echo(
        f"exported {spec.ref} to {folder}: parity max abs diff {report.max_abs_diff:.2e} "
        f"on {report.windows} held-out windows"
    )


@app.command("list")
def list_models(registry: RegistryOption = DEFAULT_REGISTRY) -> None:
    """List registered models, newest version of each name last."""
    reg = _registry(registry)
    entries = reg.entries()
    if not entries:
        typer.echo("no models registered")
        return
    typer.echo(f"{'model':<32} {'encoder':<12} {'macro-F1':>8} {'size KB':>8}  location")
    for entry in entries:
        config = json.loads((entry.folder / "config.json").read_text(encoding="utf-8"))
        size = sum(p.stat().st_size for p in entry.folder.iterdir() if p.is_file()) / 1024
        macro = _in_family_macro_f1(entry.folder)
        where = "packaged" if entry.folder.is_relative_to(PACKAGED_MODELS) else str(entry.folder)
        typer.echo(
            f"{entry.ref:<32} {config.get('encoder', '?'):<12} "
            f"{'n/a' if macro is None else f'{macro:.3f}':>8} {size:>8.0f}  {where}"
        )


def _in_family_macro_f1(folder: Path) -> float | None:
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        cohort = metrics["evaluation"]["cohorts"][0]
        return float(cohort["states"]["model"]["macro_f1"])
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        return None


@app.command()
def show(
    model: Annotated[str, typer.Argument(help="name@version or name@latest.")] = DEFAULT_MODEL,
    registry: RegistryOption = DEFAULT_REGISTRY,
    card: Annotated[bool, typer.Option(help="Print the whole model card.")] = False,
) -> None:
    """Verify a model's checksums and show its config, files and headline metrics."""
    try:
        spec = _registry(registry).load(model)
    except IntegrityError as err:
        _fail(f"integrity check failed: {err}")
        return
    except RegistryError as err:
        _fail(str(err))
        return
    typer.echo(f"{spec.ref}  ({spec.folder})  checksums verified")
    typer.echo(
        f"encoder {spec.encoder}, window {spec.window}, {len(spec.event_features)} event "
        f"features, {len(spec.query_features)} query features"
    )
    typer.echo(
        "decision thresholds: "
        + ", ".join(f"{s}={t:.3f}" for s, t in spec.decision_thresholds.items())
    )
    for name, digest in sorted(spec.checksums.items()):
        size = (spec.folder / name).stat().st_size
        typer.echo(f"  {name:<20} {size:>10,} B  sha256 {digest}")
    metrics = spec.metrics()
    evaluation = metrics.get("evaluation") or {}
    for label, row in (evaluation.get("floors") or {}).items():
        measured = row.get("measured")
        typer.echo(
            f"  floor {label}: {'n/a' if measured is None else f'{measured:.3f}'} "
            f"(required {row.get('required')}) {'met' if row.get('met') else 'NOT met'}"
        )
    if card:
        typer.echo((spec.folder / CARD_FILE).read_text(encoding="utf-8"))


@app.command("eval")
def eval_model(
    model: Annotated[str, typer.Option(help="name@version or name@latest.")] = DEFAULT_MODEL,
    registry: RegistryOption = DEFAULT_REGISTRY,
    learners: Annotated[int, typer.Option(min=2, help="Learners per cohort.")] = 200,
    policy_learners: Annotated[
        int, typer.Option(min=0, help="Simulated learners per policy (0 skips the policy).")
    ] = 60,
    seed: Annotated[
        int | None, typer.Option(help="First evaluation seed (default: the reserved range).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path(
        "bench-results/model-eval.json"
    ),
    write: Annotated[
        bool, typer.Option(help="Store the results in the model's metrics and card (re-signs).")
    ] = False,
    only: Annotated[
        str,
        typer.Option(
            help="all, or policy: only the closed-loop next-item policy evaluation (with "
            "--write, only the policy figures of the stored evaluation are replaced)."
        ),
    ] = "all",
    scenarios: Annotated[
        bool,
        typer.Option(
            "--scenarios",
            help="Judge the model on the scripted behaviour streams of every producer style "
            "instead of the simulator (through the normaliser, features and policy).",
        ),
    ] = False,
    scenario_learners: Annotated[
        int, typer.Option(min=1, help="With --scenarios: learners per scenario and style.")
    ] = 20,
    control_learners: Annotated[
        int, typer.Option(min=1, help="With --scenarios: learners per control kind and style.")
    ] = 50,
    windows: Annotated[
        bool,
        typer.Option(
            "--windows",
            help="Score each decision over its window of events, as the window graph does, "
            "instead of carrying each learner's state from its first event as the stream does.",
        ),
    ] = False,
) -> None:
    """Model vs baselines vs oracle on unseen learners, in-family and cross-family.

    With ``--scenarios``: detection on scripted streams in each LMS's style instead.
    """
    if scenarios:
        _eval_scenarios(model, registry, out, scenario_learners, control_learners, seed)
        return
    from inference.lab.evaluate import (
        EvalOptions,
        evaluate_model,
        evaluate_policy_only,
        format_report,
        merge_policy,
    )

    if only not in ("all", "policy"):
        _fail(f"--only: must be all or policy, got {only!r}")
    try:
        spec = _registry(registry).load(model)
    except RegistryError as err:
        _fail(str(err))
        return
    options = EvalOptions(n_learners=learners, policy_learners=policy_learners, windows=windows)
    if seed is not None:
        options.seed = seed
    if only == "policy":
        if policy_learners <= 0:
            _fail("--only policy: needs --policy-learners above 0")
        evaluation = evaluate_policy_only(spec, options)
    else:
        evaluation = evaluate_model(spec, options)
    publish(format_report(evaluation), evaluation, out, typer.echo)
    if write:
        from inference.training.release import refresh_card

        metrics = spec.metrics()
        if only == "policy":
            stored = metrics.get("evaluation")
            if not stored:
                _fail("--only policy --write: the model has no stored evaluation to update")
                return
            try:
                evaluation = merge_policy(stored, evaluation)
            except ValueError as err:
                _fail(str(err))
        metrics["evaluation"] = evaluation
        refresh_card(spec.folder, metrics)
        typer.echo(f"updated {spec.folder / 'metrics.json'} and the model card")


def _eval_scenarios(
    model: str, registry: Path, out: Path, per_scenario: int, per_control: int, seed: int | None
) -> None:
    from tutorstream.scenarios.evaluate import evaluate_scenarios

    try:
        spec = _registry(registry).load(model)
    except RegistryError as err:
        _fail(str(err))
        return
    result, text = evaluate_scenarios(
        spec,
        per_scenario=per_scenario,
        per_control=per_control,
        seed=14 if seed is None else seed,
    )
    typer.echo(text)
    if out == Path("bench-results/model-eval.json"):
        out = out.with_name("model-eval-scenarios.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}")

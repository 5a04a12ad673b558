"""`tierwise train` and `tierwise route`: build a router file from outcome data, and ask it for a decision."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tierwise.routing.router import RouteRequest, TierView

if TYPE_CHECKING:
    from tierwise.outcomes import OutcomeTable
    from tierwise.routing.answer_signals import AnswerConfidence


def _parse_prices(spec: str | None) -> dict[str, tuple[float, float]]:
    prices: dict[str, tuple[float, float]] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        name, _, value = part.partition("=")
        inp, _, out = value.partition("/")
        prices[name] = (float(inp), float(out or inp))
    return prices


def _log_labels(path: Path) -> OutcomeTable:
    from tierwise.traffic import store
    from tierwise.traffic.labels import labels_table

    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist", param_hint="--log")
    conn = store.connect(path)
    try:
        rows = store.read_labels(conn)
    finally:
        conn.close()
    if not rows:
        raise typer.BadParameter(f"{path} holds no labels yet: run `tierwise label` first", param_hint="--log")
    return labels_table(rows)


def _log_answers(path: Path, model: str) -> tuple[OutcomeTable, list[AnswerConfidence | None]]:
    from tierwise.traffic import store
    from tierwise.traffic.labels import cascade_table

    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist", param_hint="--log")
    conn = store.connect(path)
    try:
        return cascade_table(conn, model)
    finally:
        conn.close()


def train(
    tiers: Annotated[str, typer.Option("--tiers", help="device=MODEL,edge=MODEL,cloud=MODEL")],
    data: Annotated[Path | None, typer.Option("--data", help="outcome file or directory (read in place)")] = None,
    log: Annotated[
        Path | None, typer.Option("--log", help="decision log whose labels (`tierwise label`) are trained on")
    ] = None,
    data_weight: Annotated[
        float, typer.Option("--data-weight", min=0.0, max=1.0, help="share of --data rows kept next to --log")
    ] = 1.0,
    output: Annotated[Path, typer.Option("-o", "--output", help="router file to write (JSON + .npz)")] = Path(
        "router.json"
    ),
    format: Annotated[str, typer.Option("--format", help="auto | routellm | mmlu-pro | generic")] = "auto",
    target_cloud_share: Annotated[float, typer.Option("--target-cloud-share", min=0.0, max=1.0)] = 0.2,
    prices: Annotated[
        str | None, typer.Option("--prices", help="USD per 1M tokens in/out: cloud=0.55/2.19,edge=0.02/0.06")
    ] = None,
    embedding: Annotated[str, typer.Option("--embedding", help="static | contextual | none")] = "static",
    predictors: Annotated[
        str | None, typer.Option("--predictors", help="comma list to cross-validate (default: all)")
    ] = None,
    folds: Annotated[int, typer.Option("--folds", min=2)] = 3,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="embedding cache directory")] = None,
) -> None:
    """Train a router from per-query outcomes; the tolerance is calibrated to the target cloud share."""
    from rich.console import Console

    from tierwise.outcomes import load_outcomes
    from tierwise.routing.embed import default_cache_dir
    from tierwise.routing.features import FeaturizerSettings
    from tierwise.routing.selection import DEFAULT_GRID
    from tierwise.routing.train import mix_outcomes, parse_tiers, train_router

    console = Console(stderr=True)
    started = time.perf_counter()
    if data is None and log is None:
        raise typer.BadParameter("give --data, --log or both", param_hint="--data")
    if data_weight <= 0.0:
        raise typer.BadParameter("must be > 0", param_hint="--data-weight")
    table = mix_outcomes(
        load_outcomes(data, format=format) if data is not None else None,
        _log_labels(log) if log is not None else None,
        data_weight=data_weight,
    )
    specs = parse_tiers(tiers, prices=_parse_prices(prices))
    missing = [s.model for s in specs if s.model not in table.models]
    if missing:
        raise typer.BadParameter(f"no outcomes for {missing}; the data has {table.models}", param_hint="--tiers")
    grid = DEFAULT_GRID if not predictors else {k: DEFAULT_GRID[k] for k in predictors.split(",")}
    console.print(f"{len(table)} queries, models {table.models}")
    rf = train_router(
        table,
        specs,
        target_cloud_share=target_cloud_share,
        featurizer=FeaturizerSettings(embedding=embedding),  # type: ignore[arg-type]
        grid=grid,
        folds=folds,
        cache_dir=str(cache_dir or default_cache_dir()),
        progress=True,
        on_candidate=lambda r: console.print(f"  cv {r.predictor_label}: log loss {r.log_loss:.4f}"),
    )
    path = rf.save(output)
    chosen = rf.training["chosen"]
    console.print(
        f"chose {chosen['predictor']} {chosen['params']}; tolerance {rf.tolerance:.4f} → "
        f"{rf.calibration['heldout_cloud_share']:.1%} cloud on held-out predictions; "
        f"wrote {path} in {time.perf_counter() - started:.1f} s"
    )


def train_cascade_command(
    model: Annotated[str, typer.Option("--model", help="the model (outcome column) whose answers are checked")],
    data: Annotated[
        Path | None, typer.Option("--data", help="outcome file or directory holding the model's answers")
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="decision log: the model's labelled answers, with its confidence in each"),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="cascade file to write (JSON)")] = Path("cascade.json"),
    format: Annotated[str, typer.Option("--format", help="auto | routellm | mmlu-pro | generic")] = "auto",
    escalate_share: Annotated[
        float, typer.Option("--escalate-share", min=0.0, max=1.0, help="share of answers to escalate")
    ] = 0.3,
    folds: Annotated[int, typer.Option("--folds", min=2)] = 5,
) -> None:
    """Train the check a cascade runs on a cheaper tier's answer before returning it (see docs/routing.md)."""
    from tierwise.outcomes import load_outcomes
    from tierwise.routing.cascade import train_cascade

    if (data is None) == (log is None):
        raise typer.BadParameter("give either --data or --log", param_hint="--data")
    confidences = None
    if log is not None:
        table, confidences = _log_answers(log, model)
    else:
        assert data is not None
        table = load_outcomes(data, format=format)
    if model not in table.models:
        raise typer.BadParameter(f"unknown model {model!r}; the data has {table.models}", param_hint="--model")
    try:
        check = train_cascade(table, model, escalate_share=escalate_share, folds=folds, confidences=confidences)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--data") from None
    path = check.save(output)
    t = check.training
    typer.echo(
        f"{t['rows']} answers of {model}; threshold P(good) < {check.threshold:.3f} escalates "
        f"{t['heldout_escalated_share']:.1%} of held-out answers (accuracy of those kept {t['heldout_accuracy_kept']}, "
        f"of those escalated {t['heldout_accuracy_escalated']}, overall {t['accuracy']}); wrote {path}"
    )


def _views(router_tiers: list, spec: str | None) -> list[TierView]:
    names = [n.strip() for n in spec.split(",")] if spec else [t.name for t in router_tiers]
    by_name = {t.name: t for t in router_tiers}
    return [
        TierView(n, by_name[n].location, by_name[n].input_per_mtok, by_name[n].output_per_mtok)
        for n in names
        if n in by_name
    ]


def route(
    prompt: Annotated[str, typer.Argument(help="the prompt to route")],
    router: Annotated[Path, typer.Option("-r", "--router", help="router file written by `tierwise train`")],
    allowed: Annotated[str | None, typer.Option("--allowed", help="comma list of allowed tiers")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
) -> None:
    """Print which tier would answer PROMPT, with the predicted quality and cost per tier and the reasons."""
    from tierwise.routing.learned import LearnedRouter

    r = LearnedRouter.from_path(router)
    decision = r.decide(RouteRequest(prompt=prompt, conversation=prompt), _views(r.file.tiers, allowed))
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), indent=2))
        return
    typer.echo(f"tier: {decision.tier}   (fallbacks: {', '.join(decision.fallbacks) or '-'})")
    for name, q in (decision.predicted_quality or {}).items():
        cost = (decision.expected_cost_usd or {}).get(name, 0.0)
        typer.echo(f"  {name:<10} predicted quality {q:.3f}   expected cost {cost:.3g} USD")
    for reason in decision.reasons:
        typer.echo(f"  - {reason}")

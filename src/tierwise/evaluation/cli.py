"""`tierwise eval`: cost–quality curves and APGR/CPT of routers and baselines on an outcome table.

    tierwise eval --data ../shared/datasets/routellm/gsm8k/gsm8k_responses.csv -o out/gsm8k
    tierwise eval --data ../shared/datasets/mmlu_pro/outcomes.csv.gz --format mmlu-pro \
        --tiers Phi-3-mini-4k-instruct=0.05,Llama-3.1-8B-Instruct=0.1,Llama-3.1-70B-Instruct=1 -o out/pro
    tierwise eval --router router.json --data PATH -o DIR     # a trained router, no training
    tierwise eval --data …/gsm8k_responses.csv --cascade -o out/gsm8k   # + cascades on the weak model's answers
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from tierwise.evaluation.folds import Split, holdout_splits, kfold_splits
from tierwise.evaluation.report import published_key, write_report
from tierwise.evaluation.runner import prepare_table, run_evaluation, steps
from tierwise.evaluation.scorers import PredictorScorer, Scorer
from tierwise.evaluation.setup import (
    cheapest_answers,
    default_costs,
    default_tiers,
    find_contaminated,
    parse_tiers,
    predictor_scorers,
    router_file_scorer,
)
from tierwise.outcomes import OutcomeTable, load_contaminated_prompts, load_outcomes


def _splits(table: OutcomeTable, *, folds: int, train_size: int | None, seed: int, repeats: int) -> list[Split]:
    if train_size is not None:
        return holdout_splits(table, train_size=train_size, seed=seed, repeats=repeats)
    return kfold_splits(table, folds=folds, seed=seed)


def _run_with_progress(
    table: OutcomeTable, costs: np.ndarray, scorers: list[Scorer], splits: list[Split], **kw: Any
) -> dict[str, dict[str, Any]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = steps(len(scorers), len(splits), random_seeds=kw["random_seeds"], baselines=kw["baselines"])
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("evaluating", total=total)

        def advance(name: str) -> None:
            progress.update(task, advance=1, description=f"evaluating {name}")

        return run_evaluation(table, costs, scorers, splits, advance=advance, **kw)


def eval_command(
    data: Annotated[Path, typer.Option(help="outcome table: a file, or a directory of RouteLLM CSVs")],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for report.md, results.json, plots")],
    format: Annotated[str, typer.Option(help="auto | routellm | mmlu-pro | generic")] = "auto",
    tiers: Annotated[str | None, typer.Option(help="MODEL[=COST],… cheapest first (default: by mean quality)")] = None,
    predictors: Annotated[str, typer.Option(help="comma-separated predictor names, or 'all' or 'none'")] = "all",
    folds: Annotated[int, typer.Option(help="k for k-fold cross-validation")] = 5,
    train_size: Annotated[
        int | None, typer.Option(help="instead of folds: train on this many rows, test on all the rest")
    ] = None,
    repeats: Annotated[int, typer.Option(help="with --train-size: how many random splits to average")] = 1,
    seed: Annotated[int, typer.Option(help="seed of the fold assignment")] = 0,
    random_seeds: Annotated[int, typer.Option(help="seeds the random baseline is averaged over")] = 10,
    contaminated: Annotated[
        Path | None, typer.Option(help="contaminated_prompts.jsonl (default: next to the data, if present)")
    ] = None,
    decontaminate: Annotated[bool, typer.Option(help="drop contaminated prompts")] = True,
    router: Annotated[Path | None, typer.Option(help="evaluate this trained router file; no training")] = None,
    features: Annotated[
        str, typer.Option(help="query features: static | contextual | none (MiniLM) | hashing")
    ] = "static",
    cache_dir: Annotated[Path | None, typer.Option(help="embedding cache directory")] = None,
    cascade: Annotated[
        bool,
        typer.Option(
            help="also score each predictor as a cascade that reads the cheapest tier's answer first "
            "(needs answer texts in the data; every query then pays for a cheapest-tier call)"
        ),
    ] = False,
    plots: Annotated[bool, typer.Option(help="write PNG plots (needs the 'plot' extra)")] = True,
) -> None:
    """Evaluate routers and baselines on held-out folds; write report.md, results.json and plots to OUT."""
    raw = load_outcomes(data, format=format)
    file_scorer = router_file_scorer(router, cache_dir=cache_dir) if router is not None else None
    if tiers:
        names, costs = parse_tiers(tiers)
    elif file_scorer is not None:
        names = file_scorer.tier_models()
        costs = default_costs(len(names))
    else:
        names, costs = default_tiers(raw)
    cont_path = contaminated or (find_contaminated(data) if decontaminate else None)
    cont = load_contaminated_prompts(cont_path) if (cont_path and decontaminate) else None
    table, info = prepare_table(raw, names, contaminated=cont)
    if file_scorer is not None:
        scorers: list[Scorer] = [file_scorer]
        splits = [Split(np.zeros(0, dtype=int), np.arange(len(table)))]
        protocol = f"trained router {router} scored on every row (no training here)"
    else:
        if cascade:
            try:
                cheapest_answers(table)  # fail now, not after the other predictors have run
            except ValueError as err:
                raise typer.BadParameter(str(err), param_hint="--cascade") from None
        scorers = predictor_scorers(predictors, features=features, cache_dir=cache_dir, cascade=cascade)
        splits = _splits(table, folds=folds, train_size=train_size, seed=seed, repeats=repeats)
        protocol = (
            f"train on {train_size} rows, test on the rest ({repeats} split(s), seed {seed})"
            if train_size is not None
            else f"{folds}-fold cross-validation (seed {seed}), held-out predictions pooled"
        ) + (
            "; cascade:* routers read the cheapest tier's answer first (its call is paid for every query)"
            if cascade
            else ""
        )
    for scorer in scorers:  # embed once, before the progress bar (the featurizer shows its own)
        if isinstance(scorer, PredictorScorer):
            scorer.features(table)
            break
    results = _run_with_progress(
        table, costs, scorers, splits, pool=train_size is None, random_seeds=random_seeds, baselines=True
    )
    meta = {
        "data": str(data),
        "format": format,
        "tiers": names,
        "costs": [float(c) for c in costs],
        "protocol": protocol,
        "contaminated": None if cont_path is None else str(cont_path),
        "data_info": info,
        "published": published_key(names, str(data)),
    }
    for path in write_report(results, meta, out, plots=plots):
        typer.echo(f"wrote {path}")

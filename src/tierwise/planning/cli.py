"""`tierwise plan fleet|cluster|check`, `tierwise profile gpu|compare`, `tierwise simulate`: thin wrappers.

torch is imported only inside `profile gpu` (via profile_gpu), never at import.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from tierwise.planning.capacity import ClusterSpec
    from tierwise.planning.catalog import GPUEfficiency
    from tierwise.planning.cluster_file import ClusterFile
    from tierwise.planning.fleet import FleetPlan
    from tierwise.planning.perf_model import StepModel

plan_app = typer.Typer(help="Plan on-device coverage (fleet) and cloud GPUs (cluster).", no_args_is_help=True)
profile_app = typer.Typer(help="Measure step times on a GPU and compare the performance model.", no_args_is_help=True)

FileOpt = Annotated[Path, typer.Option("-f", "--file", exists=True, dir_okay=False, help="YAML spec")]


def _console() -> Console:
    """A console wide enough for the plan tables even when the output is piped (rich defaults to 80)."""
    return Console() if sys.stdout.isatty() else Console(width=150)


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _quality(outcomes: Path | None) -> dict[str, float]:
    if outcomes is None:
        return {}
    from tierwise.outcomes import load_outcomes

    return load_outcomes(outcomes).mean_scores()


def _fleet_plan(path: Path, outcomes: Path | None, *, sensitivity: bool = True) -> FleetPlan:
    from tierwise.planning.catalog import load_catalog
    from tierwise.planning.fleet import FleetSpec, plan_fleet

    spec = FleetSpec.model_validate(_yaml(path))
    return plan_fleet(spec, cat=load_catalog(), quality=_quality(outcomes), sensitivity=sensitivity)


@plan_app.command("fleet")
def plan_fleet_cmd(
    file: FileOpt,
    outcomes: Annotated[
        Path | None,
        typer.Option(help="outcomes CSV (e.g. mmlu_pro/outcomes.csv.gz) for each model's measured accuracy"),
    ] = None,
) -> None:
    """For each device class, the best model × quantization within the budget; coverage and quality."""
    from tierwise.planning.report import render_fleet

    render_fleet(_fleet_plan(file, outcomes), _console())


def _prices(pairs: list[str] | None) -> dict[str, float]:
    out = {}
    for pair in pairs or []:
        name, _, value = pair.partition("=")
        out[name.strip().lower()] = float(value)
    return out


def _load_cluster(
    file: Path, *, gpus: str | None, price: list[str] | None, outcomes: Path | None, engine: str | None = None
) -> tuple[ClusterFile, ClusterSpec, str]:
    from tierwise.planning.cluster_file import ClusterFile, cloud_share, to_spec

    cfg = ClusterFile.model_validate(_yaml(file))
    if engine:
        cfg = cfg.model_copy(update={"engine": engine})
    if cfg.fleet is not None and not cfg.fleet.is_absolute():
        cfg = cfg.model_copy(update={"fleet": file.parent / cfg.fleet})
    if gpus:
        cfg = cfg.model_copy(update={"gpus": [g.strip() for g in gpus.split(",")]})
    cfg = cfg.model_copy(update={"prices": {**cfg.prices, **_prices(price)}})
    coverage = _fleet_plan(cfg.fleet, outcomes, sensitivity=False).coverage if cfg.fleet else None
    share, note = cloud_share(cfg, coverage=coverage)
    return cfg, to_spec(cfg, share), note


GpusOpt = Annotated[str | None, typer.Option(help="comma-separated GPU types (overrides the file)")]
PriceOpt = Annotated[list[str] | None, typer.Option(help="GPU=USD per GPU-hour, repeatable")]
OutcomesOpt = Annotated[Path | None, typer.Option(help="outcomes CSV for the fleet's quality ranking")]
EngineOpt = Annotated[
    str | None,
    typer.Option(help="engine whose calibrated efficiency to use: vllm, tensorrt-llm, nim, roofline (overrides file)"),
]


def _efficiency(engine: str) -> tuple[GPUEfficiency, str]:
    from tierwise.planning.calibration import engine_efficiency
    from tierwise.planning.catalog import load_catalog

    try:
        return engine_efficiency(engine, load_catalog())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="engine") from exc


@plan_app.command("cluster")
def plan_cluster_cmd(
    file: FileOpt,
    gpus: GpusOpt = None,
    price: PriceOpt = None,
    outcomes: OutcomesOpt = None,
    profile: Annotated[list[Path] | None, typer.Option(help="measured profile JSON (TP 1), repeatable")] = None,
    engine: EngineOpt = None,
) -> None:
    """Replicas and GPUs per GPU type for the cloud share of a workload, within TTFT/TPOT SLOs."""
    from tierwise.planning.capacity import plan_cluster
    from tierwise.planning.catalog import load_catalog
    from tierwise.planning.profile import FittedStepModel, Profile
    from tierwise.planning.report import render_cluster

    cfg, spec, note = _load_cluster(file, gpus=gpus, price=price, outcomes=outcomes, engine=engine)
    efficiency, efficiency_note = _efficiency(spec.engine)
    measured: dict[str, StepModel] = {}
    for path in profile or []:
        p = Profile.load(path)
        if p.model == spec.model and p.tp == 1:
            measured[p.gpu] = FittedStepModel.from_profile(p)
    plans = plan_cluster(
        spec, cfg.gpus, cat=load_catalog(), prices=cfg.prices, step_models=measured, efficiency=efficiency
    )
    render_cluster(spec, plans, note, _console(), efficiency_note=efficiency_note)


@plan_app.command("check")
def plan_check_cmd(
    split: Annotated[str, typer.Option(help="held-out split: loo (leave one out) or by-source")] = "loo",
    engine: Annotated[str | None, typer.Option(help="only the points of this engine class")] = None,
    quick: Annotated[bool, typer.Option(help="less simulated traffic per replay (faster, noisier)")] = False,
) -> None:
    """Replay published measurements (MLPerf, vLLM, NIM) through the simulator; calibrate and test on held-out."""
    from tierwise.planning.calibration import check
    from tierwise.planning.catalog import load_catalog
    from tierwise.planning.measurements import load_measurements
    from tierwise.planning.replay import Fidelity
    from tierwise.planning.report import render_check

    data = load_measurements()
    points = [p for p in data.points if engine is None or p.engine == engine]
    if not points:
        raise typer.BadParameter(f"no points for engine {engine!r}", param_hint="engine")
    fidelity = Fidelity(offline_requests=600, server_seconds=60, closed_loop_rounds=3) if quick else Fidelity()
    try:
        report = check(data, cat=load_catalog(), fidelity=fidelity, split=split, points=points)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    render_check(report, _console())


def simulate_cmd(
    file: FileOpt,
    gpu: Annotated[str, typer.Option(help="GPU type to size and simulate")] = "h100",
    replicas: Annotated[int, typer.Option(help="replicas to simulate for the whole day")] = 1,
    outcomes: OutcomesOpt = None,
    engine: EngineOpt = None,
) -> None:
    """Size the cluster on one GPU type, then simulate a day of its replicas' traffic."""
    from tierwise.planning.capacity import plan_gpu
    from tierwise.planning.catalog import load_catalog
    from tierwise.planning.day import simulate_day

    cfg, spec, note = _load_cluster(file, gpus=gpu, price=None, outcomes=outcomes, engine=engine)
    efficiency, efficiency_note = _efficiency(spec.engine)
    cat = load_catalog()
    plan = plan_gpu(spec, gpu, cat=cat, efficiency=efficiency)
    day = simulate_day(spec, plan, cat=cat, replicas_simulated=replicas, seed=cfg.seed, efficiency=efficiency)
    console = _console()
    console.print(f"Efficiency: {efficiency_note}")
    console.print(f"cloud share {spec.cloud_share:.3f} [{note}]; {plan.replicas} replicas × TP{plan.tp} {gpu}")
    console.print(
        f"fleet cloud requests/day {day.fleet_requests_per_day:,.0f}; simulated {replicas} replica(s): "
        f"{day.simulated_requests:,} requests, {day.simulated_steps:,} engine steps"
    )
    console.print(
        f"TTFT p50/p90/p99 s: {day.quantile('ttft', 0.5):.3f} / {day.quantile('ttft', 0.9):.3f} / "
        f"{day.quantile('ttft', 0.99):.3f}; TPOT p90 ms: {day.quantile('tpot', 0.9) * 1000:.1f}; "
        f"busy {day.utilization:.1%}"
    )


@profile_app.command("gpu")
def profile_gpu_cmd(
    model: Annotated[str, typer.Option(help="catalog model name, e.g. llama-3.1-8b")],
    output: Annotated[Path, typer.Option("-o", "--output", help="profile JSON to write")],
    gpu: Annotated[str | None, typer.Option(help="catalog GPU name (default: detected)")] = None,
    batches: Annotated[str, typer.Option(help="decode batch sizes")] = "1,8,32,64",
    contexts: Annotated[str, typer.Option(help="decode context lengths")] = "1024,4096",
    prompt_lens: Annotated[str, typer.Option(help="prefill prompt lengths (batch 1)")] = "128,512,2048,4096,8192",
    compile: Annotated[bool, typer.Option(help="CUDA graphs via torch.compile for decode")] = True,
    device: Annotated[str, typer.Option(help="cuda or cpu")] = "cuda",
) -> None:
    """Measure real prefill and decode step times with random bf16 weights; writes the profile JSON."""
    from tierwise.planning.catalog import load_catalog
    from tierwise.planning.profile_gpu import ProfileGrid, profile_model

    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    grid = ProfileGrid(decode_batches=ints(batches), decode_contexts=ints(contexts), prompt_lens=ints(prompt_lens))
    try:
        prof = profile_model(
            load_catalog().model(model),
            grid=grid,
            gpu_name=gpu,
            device=device,
            compile=compile,
            progress=lambda msg: typer.echo(msg, err=True),
        )
    except (RuntimeError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    prof.dump(output)
    typer.echo(f"wrote {output} ({len(prof.prefill)} prefill, {len(prof.decode)} decode points)")


@profile_app.command("compare")
def profile_compare_cmd(
    profiles: Annotated[list[Path], typer.Argument(exists=True, help="profile JSON files")],
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """The roofline performance model's error against measured profiles (median target ≤ 10 %)."""
    from tierwise.planning.catalog import load_catalog
    from tierwise.planning.perf_model import RooflineModel
    from tierwise.planning.profile import Profile, profile_error

    cat = load_catalog()
    t = Table(title="Roofline vs measured (|pred − meas| / meas)")
    for col in ("profile", "prefill median", "prefill max", "decode median", "decode max", "all median"):
        t.add_column(col, justify="left" if col == "profile" else "right")
    out = {}
    for path in profiles:
        p = Profile.load(path)
        pm = RooflineModel.for_gpu(cat.model(p.model), cat.gpu(p.gpu), quant=cat.quant(p.quant), cat=cat, tp=p.tp)
        s = profile_error(p, pm).summary()
        out[str(path)] = s
        t.add_row(
            path.name,
            *(f"{s[k]:.1%}" for k in ("prefill_median", "prefill_max", "decode_median", "decode_max", "all_median")),
        )
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        _console().print(t)

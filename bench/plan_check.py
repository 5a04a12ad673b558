"""Benchmark: the planner against published measurements (MLPerf Inference, vLLM's dashboard, NVIDIA NIM).

Replays every point of src/tierwise/planning/catalog/measurements.yaml through the simulator, fits one efficiency
scale per engine class, and reports each point's throughput error out of sample (leave-one-out and by-source),
with TTFT / TPOT next to it; then fits the per-GPU step model on one model's published step table (DistServe,
A100) and predicts a second model. Prints Markdown for bench/RESULTS.md.

Run: python bench/plan_check.py [--write-calibration] [--quick] [--sensitivity]
  --write-calibration  rewrites src/tierwise/planning/catalog/calibration.yaml from the leave-one-out run
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from tierwise.planning.calibration import CheckReport, calibration_yaml, check
from tierwise.planning.catalog import load_catalog
from tierwise.planning.hardware_fit import HardwareFitModel, fit_hardware, published_step_table
from tierwise.planning.measurements import load_measurements
from tierwise.planning.profile import FittedStepModel, profile_error
from tierwise.planning.replay import Fidelity
from tierwise.planning.report import latency_pair

CALIBRATION = Path(__file__).resolve().parents[1] / "src" / "tierwise" / "planning" / "catalog" / "calibration.yaml"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1%}"


def _markdown(report: CheckReport) -> str:
    lines = [
        "| point (source id) | engine | scenario | measured tok/s | predicted tok/s | error | uncalibrated | "
        "TTFT ms meas / pred | TPOT ms meas / pred |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        cells = []
        for metric in ("ttft", "tpot"):
            stat, meas, pred = latency_pair(r, metric)
            cells.append("—" if meas is None else f"{stat} {meas:,.0f} / {'—' if pred is None else f'{pred:,.0f}'}")
        flag = "" if r.point.calibrate else " (not calibrated)"
        predicted = "—" if r.prediction is None else f"{r.prediction.throughput:,.0f}"
        lines.append(
            f"| {r.point.id}{flag} | {r.point.engine} | {r.point.scenario} | {r.point.measured_throughput:,.0f} | "
            f"{predicted} | {_pct(r.error())} | {_pct(r.error(r.default))} | {cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines)


def _summary(report: CheckReport) -> str:
    out = []
    for engine, (scale, ids) in report.engine_scales.items():
        fits = [r.fitted_scale for r in report.rows if r.point.id in ids and r.fitted_scale is not None]
        held = report.median_held_out_error(engine)
        held_text = "— (a single source: nothing to hold it out from)" if math.isnan(held) else f"{held:.1%}"
        out.append(
            f"- {engine}: {len(ids)} points, scale {scale:.3f} (per-point fits {min(fits):.2f}–{max(fits):.2f}); "
            f"held-out median |error| {held_text}"
        )
    uncal = [abs(e) for r in report.rows if r.point.calibrate and (e := r.error(r.default)) is not None]
    out.append(
        f"- all calibrated points: held-out median |throughput error| **{report.median_held_out_error():.1%}** "
        f"(uncalibrated catalog factors: {statistics.median(uncal):.1%})"
    )
    return "\n".join(out)


def _cross_model() -> str:
    cat = load_catalog()
    bf16 = cat.quant("bf16")
    lines = [
        "| GPU, TP | fit on | predict | median error (prefill / decode / all) | reusing the fit model's own "
        "DistServe coefficients |",
        "|---|---|---|---|---|",
    ]
    for tp in (2, 4):
        train, test = published_step_table("opt-13b", tp), published_step_table("opt-66b", tp)
        coef = fit_hardware(train, cat.model("opt-13b"), bf16)
        s = profile_error(test, HardwareFitModel(coef, cat.model("opt-66b"), bf16, tp=tp)).summary()
        naive = profile_error(test, FittedStepModel.from_profile(train)).summary()
        lines.append(
            f"| A100-80GB, TP{tp} | OPT-13B | OPT-66B | {s['prefill_median']:.1%} / {s['decode_median']:.1%} / "
            f"{s['all_median']:.1%} | {naive['all_median']:.1%} |"
        )
    return "\n".join(lines)


def _seed_question(report: CheckReport) -> str:
    """examples/cluster.yaml sized with each engine's calibrated scale, and with its lowest / highest per-point fit."""
    import yaml

    from tierwise.planning.calibration import scale_efficiency
    from tierwise.planning.capacity import plan_cluster
    from tierwise.planning.cluster_file import ClusterFile, cloud_share, to_spec
    from tierwise.planning.fleet import FleetSpec, plan_fleet

    examples = Path(__file__).resolve().parents[1] / "examples"
    cat = load_catalog()
    fleet = plan_fleet(FleetSpec.model_validate(yaml.safe_load((examples / "fleet.yaml").read_text())), cat=cat)
    cfg = ClusterFile.model_validate(yaml.safe_load((examples / "cluster.yaml").read_text()))
    share, _ = cloud_share(cfg, coverage=fleet.coverage)
    spec = to_spec(cfg, share)
    lines = ["| engine (efficiency scale) | " + " | ".join(cfg.gpus) + " |", "|---|" + "---|" * len(cfg.gpus)]
    for engine in ("vllm", "tensorrt-llm"):
        scale, ids = report.engine_scales[engine]
        fits = [r.fitted_scale for r in report.rows if r.point.id in ids and r.fitted_scale is not None]
        for label, s in (("calibrated", scale), ("lowest fit", min(fits)), ("highest fit", max(fits))):
            plans = plan_cluster(spec, cfg.gpus, cat=cat, efficiency=scale_efficiency(cat, s, source=label))
            cells = [f"{p.gpus:,} (TP{p.tp} × {p.replicas})" if p.feasible else "infeasible" for p in plans]
            lines.append(f"| {engine} {label} ({s:.3f}) | " + " | ".join(cells) + " |")
    plans = plan_cluster(spec, cfg.gpus, cat=cat)
    cells = [f"{p.gpus:,} (TP{p.tp} × {p.replicas})" if p.feasible else "infeasible" for p in plans]
    lines.append("| uncalibrated catalog factors (1.000) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _prompt_sensitivity(fidelity: Fidelity) -> str:
    """The calibration again with the MLPerf datasets' assumed prompt means halved and raised by half."""
    data, cat = load_measurements(), load_catalog()
    lines = [
        "| assumed prompt means (OpenOrca / CNN-DM) | tensorrt-llm scale | vllm scale | held-out median (loo) |",
        "|---|---|---|---|",
    ]
    for factor in (0.5, 1.0, 1.5):
        datasets = {
            k: d.model_copy(update={"prompt": d.prompt.model_copy(update={"mean": d.prompt.mean * factor})})
            for k, d in data.datasets.items()
        }
        varied = data.model_copy(update={"datasets": datasets})
        report = check(varied, cat=cat, fidelity=fidelity)
        means = " / ".join(f"{d.prompt.mean:g}" for d in datasets.values())
        lines.append(
            f"| {means} (×{factor:g}) | {report.engine_scales['tensorrt-llm'][0]:.3f} | "
            f"{report.engine_scales['vllm'][0]:.3f} | {report.median_held_out_error():.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-calibration", action="store_true")
    parser.add_argument("--quick", action="store_true", help="less simulated traffic per replay")
    parser.add_argument("--sensitivity", action="store_true", help="also vary the assumed prompt means (~1.5 min)")
    args = parser.parse_args()
    fidelity = Fidelity(offline_requests=600, server_seconds=60, closed_loop_rounds=3) if args.quick else Fidelity()
    data, cat = load_measurements(), load_catalog()
    reports = {}
    for split in ("loo", "by-source"):
        t0, c0 = time.perf_counter(), time.process_time()
        reports[split] = check(data, cat=cat, fidelity=fidelity, split=split)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"\n### Held out: {split} ({wall:.1f} s wall, {cpu:.1f} s CPU)\n")
        print(_markdown(reports[split]))
        print()
        print(_summary(reports[split]))
    print("\n### Fit on one model, predict another (published per-step fits)\n")
    print(_cross_model())
    print("\n### The seed question (examples/cluster.yaml): GPUs for the peak, by efficiency scale\n")
    print(_seed_question(reports["loo"]))
    if args.sensitivity:
        print("\n### Sensitivity to the assumed MLPerf prompt means\n")
        print(_prompt_sensitivity(fidelity))
    if args.write_calibration:
        command = "python bench/plan_check.py --write-calibration" + (" --quick" if args.quick else "")
        CALIBRATION.write_text(calibration_yaml(reports["loo"], cat, command=command), encoding="utf-8")
        print(f"\nwrote {CALIBRATION}")


if __name__ == "__main__":
    main()

"""Rich tables for the plans, every assumption printed next to the answer."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tierwise.planning.calibration import CheckReport, CheckRow
from tierwise.planning.capacity import ClusterSpec, GpuPlan
from tierwise.planning.fleet import FleetPlan


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "—" if x is None else format(x, spec)


def render_fleet(plan: FleetPlan, console: Console) -> None:
    b = plan.budget
    console.print(
        f"Budget: ≤ {b.ram_fraction:.0%} of RAM, ≥ {b.min_decode_tok_s:g} tok/s decode at "
        f"{b.context_tokens} tokens of context, KV {b.kv_bits:g}-bit, runtime overhead "
        f"{b.runtime_overhead_gb:g} GB"
    )
    t = Table(title="On-device model per device class")
    for col in ("class", "devices", "RAM GB", "BW GB/s", "budget GB", "model", "quant", "mem GB", "tok/s", "quality"):
        t.add_column(col, justify="right" if col not in ("class", "model", "quant") else "left")
    for c in plan.classes:
        o = c.choice
        t.add_row(
            c.name,
            f"{c.count:,}",
            f"{c.ram_gb:g}",
            f"{c.bandwidth_gbs:g}",
            f"{c.budget_gb:.2f}",
            o.model if o else "— (cloud)",
            o.quant if o else "",
            _fmt(o.memory_gb if o else None, ".2f"),
            _fmt(o.decode_tok_s if o else None, ".1f"),
            _fmt(o.quality if o else None),
        )
    console.print(t)
    console.print(f"Coverage: {plan.covered:,} of {plan.total:,} devices = {plan.coverage:.1%} with an on-device model")
    console.print(
        f"Expected on-device quality (device-weighted, covered devices with a measured score): "
        f"{_fmt(plan.expected_quality)}"
    )
    for c in plan.classes:
        if c.choice is None:
            console.print(f"  {c.name}: {c.reason}")
    if plan.sensitivity:
        console.print("What would raise coverage:")
        for label, cov in plan.sensitivity:
            console.print(f"  {label}: {cov:.1%}")


def render_cluster(
    spec: ClusterSpec, plans: list[GpuPlan], share_note: str, console: Console, *, efficiency_note: str = ""
) -> None:
    w, s = spec.workload, spec.slo
    console.print(
        f"Workload: {w.devices:,} devices × {w.requests_per_device_per_day:g} req/day, cloud share "
        f"{spec.cloud_share:.3f} [{share_note}], peak/mean {w.peak_factor:g} → peak "
        f"{w.peak_rate(spec.cloud_share):.1f} req/s"
    )
    console.print(
        f"Tokens: prompt {w.prompt_tokens.dist} mean {w.prompt_tokens.mean:g} cv {w.prompt_tokens.cv:g} "
        f"≤ {w.prompt_tokens.max}; output {w.output_tokens.dist} mean {w.output_tokens.mean:g} cv "
        f"{w.output_tokens.cv:g} ≤ {w.output_tokens.max}"
    )
    console.print(
        f"Model {spec.model} ({spec.quant}, KV {spec.kv_bits:g}-bit); SLO p{s.quantile * 100:g}: TTFT ≤ "
        f"{s.ttft_s:g} s, TPOT ≤ {s.tpot_s * 1000:g} ms; engine: continuous batching, prefill-first, "
        f"≤ {spec.max_batch} seqs, ≤ {spec.max_prefill_tokens} prefill tokens/step, "
        f"{spec.memory_utilization:.0%} of GPU memory, each probe simulates {spec.probe_seconds:g} s of traffic"
    )
    if efficiency_note:
        console.print(f"Efficiency: {efficiency_note}")
    t = Table(title="GPUs for the peak cloud rate")
    for col in ("GPU", "TP", "KV tokens", "req/s per replica", "replicas", "GPUs", "power kW", "$/GPU-h", "$/h"):
        t.add_column(col, justify="left" if col == "GPU" else "right")
    for p in plans:
        if not p.feasible:
            t.add_row(p.gpu, "—", "", "", "", "infeasible", "", "", "")
            continue
        t.add_row(
            p.gpu,
            str(p.tp),
            f"{p.kv_capacity_tokens:,}",
            f"{p.replica_max_rate:.2f}",
            f"{p.replicas:,}",
            f"{p.gpus:,}",
            f"{p.power_kw:,.1f}",
            _fmt(p.price_per_gpu_hour, ".2f"),
            _fmt(p.cost_per_hour, ",.0f"),
        )
    console.print(t)
    for p in plans:
        if p.note:
            console.print(f"  {p.gpu}: {p.note}")


def latency_pair(row: CheckRow, metric: str) -> tuple[str, float | None, float | None]:
    """(statistic, measured, predicted ms) for `ttft` or `tpot`: the p99 where the source gives one, else the mean."""
    m = row.point.measured
    pred = row.prediction
    for stat in ("p99", "mean"):
        measured = getattr(m, f"{metric}_ms_{stat}")
        if measured is not None:
            return stat, measured, getattr(pred, f"{metric}_ms_{stat}") if pred else None
    return "", None, None


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1%}"


def render_check(report: CheckReport, console: Console) -> None:
    """Measured vs predicted for every published point, the held-out errors, and the calibrated factors."""
    t = Table(title=f"Published operating points vs the simulator (held out: {report.split})")
    cols = (
        "point",
        "scenario",
        "meas tok/s",
        "pred tok/s",
        "error",
        "uncal. error",
        "TTFT ms meas/pred",
        "TPOT ms meas/pred",
    )
    for col in cols:
        t.add_column(col, justify="left" if col in ("point", "scenario") else "right")
    for r in report.rows:
        pred = r.prediction
        cells = []
        for metric in ("ttft", "tpot"):
            stat, meas, p = latency_pair(r, metric)
            cells.append("—" if meas is None else f"{stat} {meas:,.0f} / {_fmt(p, ',.0f')}")
        t.add_row(
            r.point.id + ("" if r.point.calibrate else " *"),
            r.point.scenario,
            f"{r.point.measured_throughput:,.0f}",
            _fmt(pred.throughput if pred else None, ",.0f"),
            _pct(r.error()),
            _pct(r.error(r.default)),
            *cells,
        )
    console.print(t)
    if any(not r.point.calibrate for r in report.rows):
        console.print(
            "* not calibrated: a condition the model lacks (see the point's `calibrate` note); predicted with its "
            "engine's factors for reference, not counted in the medians"
        )
    for engine, (scale, ids) in report.engine_scales.items():
        console.print(
            f"{engine}: scale {scale:.3f} × catalog efficiency (median of {len(ids)} per-point fits); "
            f"held-out median |error| {report.median_held_out_error(engine):.1%}"
        )
    console.print(f"All engines: held-out median |throughput error| {report.median_held_out_error():.1%}")

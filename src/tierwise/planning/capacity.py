"""Capacity planning: the highest request rate one replica sustains within SLOs, and the GPUs a workload needs.

`max_rate` binary-searches the arrival rate, running the event simulation at each probe with common random
numbers (the same unit-rate gaps and token lengths, rescaled), so the answer moves monotonically with the SLOs.
Usage: `plan_gpu(spec, "h100", cat=load_catalog())` → `GpuPlan` (TP degree, replicas, GPUs, power, cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tierwise.planning.catalog import Catalog, GPUEfficiency
from tierwise.planning.perf_model import RooflineModel, StepModel
from tierwise.planning.simulate import SchedulerConfig, SimulationResult, simulate
from tierwise.planning.workload import Workload


class SLO(BaseModel):
    """Latency objectives at a quantile (default p90): time to first token, time per output token."""

    model_config = ConfigDict(extra="forbid")
    ttft_s: float = Field(2.0, gt=0)
    tpot_s: float = Field(0.1, gt=0)
    quantile: float = Field(0.9, gt=0, lt=1)

    def met_by(self, result: SimulationResult, *, warmup: int = 0) -> bool:
        """Whether the requests after the first `warmup` ones meet both objectives (and none was rejected)."""
        keep = np.arange(len(result.arrival)) >= warmup
        if not result.completed[keep].all():
            return False
        ttft = (result.first_token - result.arrival)[keep]
        ok = keep & (result.output_lens > 1)
        tpot = (result.finish - result.first_token)[ok] / (result.output_lens[ok] - 1)
        q = self.quantile * 100
        return bool(np.percentile(ttft, q) <= self.ttft_s and (not tpot.size or np.percentile(tpot, q) <= self.tpot_s))


class ClusterSpec(BaseModel):
    """What `tierwise plan cluster` sizes: a workload's cloud share, one model, SLOs, engine settings."""

    model_config = ConfigDict(extra="forbid")
    workload: Workload
    cloud_share: float = Field(gt=0, le=1)
    model: str
    quant: str = "bf16"
    kv_bits: float = 16
    engine: str = "vllm"  # whose calibrated efficiency factors the CLI applies (calibration.engine_efficiency)
    slo: SLO = SLO()
    memory_utilization: float = Field(0.9, gt=0, le=1)  # share of GPU memory the engine may use (vLLM default)
    activation_reserve_gb: float = Field(4.0, ge=0)  # per GPU, for activations and CUDA graphs
    max_batch: int = Field(256, ge=1)
    max_prefill_tokens: int = Field(8192, ge=1)
    tp_options: list[int] = [1, 2, 4, 8]
    # Each probe simulates `probe_seconds` of traffic (at least `min_probe_requests`, at most
    # `max_probe_requests`): near saturation a queue needs minutes, not a fixed request count, to show.
    probe_seconds: float = Field(900.0, gt=0)
    min_probe_requests: int = Field(1000, ge=50)
    max_probe_requests: int = Field(40_000, ge=50)
    seed: int = 0


@dataclass(frozen=True)
class GpuPlan:
    """One GPU type's answer: replicas × TP = GPUs for the peak cloud rate, with power and cost."""

    gpu: str
    tp: int
    kv_capacity_tokens: int
    replica_max_rate: float  # requests per second one replica sustains within the SLOs
    peak_rate: float
    replicas: int
    gpus: int
    power_kw: float
    price_per_gpu_hour: float | None
    feasible: bool
    note: str = ""

    @property
    def cost_per_hour(self) -> float | None:
        return None if self.price_per_gpu_hour is None else self.gpus * self.price_per_gpu_hour


def kv_capacity_tokens(pm: RooflineModel, memory_gb: float, *, tp: int, spec: ClusterSpec) -> int:
    """Tokens of KV cache that fit next to the weights on `tp` GPUs (≤ 0 when the weights do not fit)."""
    usable = (spec.memory_utilization * memory_gb - spec.activation_reserve_gb) * 1e9 * tp
    return int((usable - pm.weight_bytes) // pm.kv_bytes_per_token)


@dataclass(frozen=True)
class _Draws:
    """Common random numbers for every probe: each probe uses a prefix of the same draws."""

    gaps: np.ndarray  # unit-rate exponential gaps: arrivals at rate r are cumsum(gaps) / r
    prompt: np.ndarray
    output: np.ndarray
    probe_seconds: float
    min_n: int

    def prefix(self, n: int) -> _Draws:
        return _Draws(self.gaps[:n], self.prompt[:n], self.output[:n], self.probe_seconds, min(self.min_n, n))

    def count(self, rate: float) -> int:
        return int(np.clip(np.ceil(rate * self.probe_seconds), self.min_n, len(self.gaps)))


def _draws(spec: ClusterSpec) -> _Draws:
    rng = np.random.default_rng(spec.seed)
    n = spec.max_probe_requests
    w = spec.workload
    return _Draws(
        rng.exponential(1.0, n),
        w.prompt_tokens.sample(n, rng),
        w.output_tokens.sample(n, rng),
        spec.probe_seconds,
        spec.min_probe_requests,
    )


def meets_slo(step_model: StepModel, rate: float, draws: _Draws, sched: SchedulerConfig, slo: SLO) -> bool:
    """Simulate one replica at `rate` requests/s and check the SLOs (the first 20 % is warm-up)."""
    n = draws.count(rate)
    arrivals = np.cumsum(draws.gaps[:n]) / rate
    result = simulate(step_model, arrivals, draws.prompt[:n], draws.output[:n], config=sched)
    return slo.met_by(result, warmup=n // 5)


def _rate_guess(step_model: StepModel, sched: SchedulerConfig, draws: _Draws, slo: SLO) -> float:
    """A starting point for the search: decode throughput at the largest batch within the TPOT objective."""
    ctx = float(draws.prompt.mean() + draws.output.mean() / 2)
    batch = 1
    while batch * 2 <= sched.max_batch and step_model.decode_ms(batch * 2, int(batch * 2 * ctx)) <= slo.tpot_s * 1e3:
        batch *= 2
    return batch * 1000 / step_model.decode_ms(batch, int(batch * ctx)) / float(draws.output.mean())


def max_rate(step_model: StepModel, sched: SchedulerConfig, spec: ClusterSpec, *, rel_tol: float = 0.02) -> float:
    """The highest arrival rate (req/s) at which one replica meets the SLOs; 0 if even a trickle fails.

    The trickle check simulates a few requests far apart (each alone on the replica); the search then brackets
    the answer geometrically from a throughput guess, because probes far below capacity cost the most events.
    """
    draws = _draws(spec)
    few = draws.prefix(50)
    if not meets_slo(step_model, 1e-4, few, sched, spec.slo):
        return 0.0
    guess = _rate_guess(step_model, sched, draws, spec.slo)
    if meets_slo(step_model, guess, draws, sched, spec.slo):
        lo, hi = guess, guess * 2
        while meets_slo(step_model, hi, draws, sched, spec.slo):
            lo, hi = hi, hi * 2
            if hi > 1e7:
                raise RuntimeError("replica rate search diverged: check the step model")
    else:
        lo, hi = guess / 2, guess
        while not meets_slo(step_model, lo, draws, sched, spec.slo):
            lo, hi = lo / 2, lo
            if lo < 1e-6:
                return 0.0
    while hi - lo > rel_tol * lo:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if meets_slo(step_model, mid, draws, sched, spec.slo) else (lo, mid)
    return lo


def plan_gpu(
    spec: ClusterSpec,
    gpu_name: str,
    *,
    cat: Catalog,
    price_per_gpu_hour: float | None = None,
    step_model: StepModel | None = None,
    efficiency: GPUEfficiency | None = None,
) -> GpuPlan:
    """Size the cluster on one GPU type: try each TP degree that fits, keep the one needing fewest GPUs.

    `efficiency` replaces the catalog's uncalibrated factors (the CLI passes an engine's calibrated ones).
    """
    gpu, model, quant = cat.gpu(gpu_name), cat.model(spec.model), cat.quant(spec.quant)
    peak = spec.workload.peak_rate(spec.cloud_share)
    best: GpuPlan | None = None
    notes: list[str] = []
    for tp in sorted(spec.tp_options):
        pm = RooflineModel.for_gpu(model, gpu, quant=quant, cat=cat, kv_bits=spec.kv_bits, tp=tp, efficiency=efficiency)
        kv = kv_capacity_tokens(pm, gpu.memory_gb, tp=tp, spec=spec)
        if kv < spec.workload.prompt_tokens.max + spec.workload.output_tokens.max:
            notes.append(f"TP{tp}: weights {pm.weight_bytes / 1e9:.0f} GB leave KV room for {max(kv, 0)} tokens")
            continue
        sched = SchedulerConfig(
            kv_capacity_tokens=kv, max_batch=spec.max_batch, max_prefill_tokens=spec.max_prefill_tokens
        )
        rate = max_rate(step_model if step_model is not None and tp == 1 else pm, sched, spec)
        if rate <= 0:
            notes.append(f"TP{tp}: misses the SLOs even at a trickle")
            continue
        replicas = math.ceil(peak / rate)
        plan = GpuPlan(
            gpu.name,
            tp,
            kv,
            rate,
            peak,
            replicas,
            replicas * tp,
            replicas * tp * gpu.tdp_w / 1000,
            price_per_gpu_hour,
            True,
        )
        if best is not None and plan.gpus >= best.gpus:
            break  # more GPUs per replica stopped paying off
        best = plan
    if best is None:
        return GpuPlan(gpu.name, 0, 0, 0.0, peak, 0, 0, 0.0, price_per_gpu_hour, False, "; ".join(notes))
    return best


def plan_cluster(
    spec: ClusterSpec,
    gpu_names: list[str],
    *,
    cat: Catalog,
    prices: dict[str, float] | None = None,
    step_models: dict[str, StepModel] | None = None,
    efficiency: GPUEfficiency | None = None,
) -> list[GpuPlan]:
    """GPU types side by side for the same workload and SLOs (`step_models`: measured profiles by GPU, TP 1)."""
    prices, step_models = prices or {}, step_models or {}
    return [
        plan_gpu(
            spec, g, cat=cat, price_per_gpu_hour=prices.get(g), step_model=step_models.get(g), efficiency=efficiency
        )
        for g in gpu_names
    ]

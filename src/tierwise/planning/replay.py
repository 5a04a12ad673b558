"""Replay a published operating point through the simulator: same model, precision, TP, lengths and load.

- offline: a backlog of requests at t = 0 per replica; throughput over the steady part (10th to 90th percentile of
  completions), so the drain at the end does not count (MLPerf's offline runs last 40 minutes).
- server: Poisson arrivals at the measured rate → predicted TTFT / TPOT (mean, p99, after a 20 % warm-up); and
  the predicted throughput is the highest rate whose p99 TTFT and p99 TPOT meet the run's constraint
  (`capacity.max_rate`), as MLPerf's server result is.
- batch: `batch` requests waiting at t = 0, the batch's latency (vLLM's latency benchmark).
- closed_loop: `concurrency` clients (NIM / AIPerf), throughput between the first and last wave's completions.
System throughput = one replica's × gpus / tp.

Usage: `replay(point, cat=load_catalog(), data=load_measurements(), efficiency=eff)` → `Prediction`
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierwise.planning.capacity import SLO, ClusterSpec, kv_capacity_tokens, max_rate
from tierwise.planning.catalog import Catalog, GPUEfficiency
from tierwise.planning.closed_loop import simulate_closed_loop
from tierwise.planning.measurements import Measurements, OperatingPoint
from tierwise.planning.perf_model import RooflineModel
from tierwise.planning.simulate import SchedulerConfig, SimulationResult, simulate
from tierwise.planning.workload import TokenDist, Workload


@dataclass(frozen=True)
class Fidelity:
    """How much traffic each replay simulates (smaller in tests, larger in the bench)."""

    offline_requests: int = 3000
    server_seconds: float = 300.0
    server_max_requests: int = 12_000
    closed_loop_rounds: int = 4
    seed: int = 0


DEFAULT_FIDELITY = Fidelity()


@dataclass(frozen=True)
class Prediction:
    """The simulator's figures for one operating point (system throughput in output tokens/s, latencies in ms)."""

    throughput: float
    ttft_ms_mean: float | None = None
    ttft_ms_p99: float | None = None
    tpot_ms_mean: float | None = None
    tpot_ms_p99: float | None = None
    latency_ms: float | None = None


def scaled_efficiency(base: GPUEfficiency, scale: float, *, source: str) -> GPUEfficiency:
    """`base` with its bandwidth and compute efficiencies multiplied by `scale` (capped at 1: the peak)."""
    return base.model_copy(
        update={
            "decode_bandwidth": min(base.decode_bandwidth * scale, 1.0),
            "prefill_compute": min(base.prefill_compute * scale, 1.0),
            "source": {**base.source, "calibration": source},
        }
    )


def _spec(point: OperatingPoint, prompt: TokenDist, output: TokenDist, fidelity: Fidelity) -> ClusterSpec:
    # ClusterSpec carries the token lengths, engine limits and search settings max_rate needs; the fleet fields
    # (devices, requests per day, cloud share) play no part in a replay.
    slo = point.slo
    return ClusterSpec(
        workload=Workload(devices=1, requests_per_device_per_day=1, prompt_tokens=prompt, output_tokens=output),
        cloud_share=1.0,
        model=point.model,
        quant=point.quant,
        kv_bits=point.kv_bits,
        slo=SLO(ttft_s=slo.ttft_ms / 1000, tpot_s=slo.tpot_ms / 1000, quantile=slo.quantile) if slo else SLO(),
        max_batch=point.max_batch,
        max_prefill_tokens=point.max_prefill_tokens,
        probe_seconds=fidelity.server_seconds,
        min_probe_requests=200,
        max_probe_requests=fidelity.server_max_requests,
        seed=fidelity.seed,
    )


def replay(
    point: OperatingPoint,
    *,
    cat: Catalog,
    data: Measurements,
    efficiency: GPUEfficiency,
    fidelity: Fidelity = DEFAULT_FIDELITY,
) -> Prediction:
    """Simulate one operating point with the given efficiency factors."""
    prompt, output = data.lengths(point)
    spec = _spec(point, prompt, output, fidelity)
    gpu = cat.gpu(point.gpu)
    pm = RooflineModel.for_gpu(
        cat.model(point.model), gpu, quant=cat.quant(point.quant), cat=cat, kv_bits=point.kv_bits, tp=point.tp,
        efficiency=efficiency,
    )  # fmt: skip
    kv = kv_capacity_tokens(pm, gpu.memory_gb, tp=point.tp, spec=spec)
    if kv < prompt.max + output.max:
        raise ValueError(f"{point.id}: the weights leave KV room for {max(kv, 0)} tokens only")
    sched = SchedulerConfig(
        kv_capacity_tokens=kv, max_batch=point.max_batch, max_prefill_tokens=point.max_prefill_tokens
    )
    rng = np.random.default_rng(fidelity.seed)
    return _REPLAYERS[point.scenario](point, pm, sched, spec, rng, fidelity)


def _latencies(result: SimulationResult, keep: np.ndarray) -> dict[str, float]:
    ok = keep & result.completed
    ttft = (result.first_token - result.arrival)[ok] * 1000
    multi = ok & (result.output_lens > 1)
    tpot = (result.finish - result.first_token)[multi] / (result.output_lens[multi] - 1) * 1000
    return {
        "ttft_ms_mean": float(ttft.mean()),
        "ttft_ms_p99": float(np.percentile(ttft, 99)),
        "tpot_ms_mean": float(tpot.mean()) if tpot.size else 0.0,
        "tpot_ms_p99": float(np.percentile(tpot, 99)) if tpot.size else 0.0,
    }


def _window_throughput(result: SimulationResult, lo: int, hi: int) -> float:
    """Output tokens/s of the requests completing between the lo-th and hi-th completion (steady state)."""
    order = np.argsort(result.finish)
    t = result.finish[order]
    tokens = result.output_lens[order]
    return float(tokens[lo + 1 : hi + 1].sum() / (t[hi] - t[lo]))


def _offline(point, pm, sched, spec, rng, fidelity) -> Prediction:  # type: ignore[no-untyped-def]
    n = max(fidelity.offline_requests, 3 * min(point.max_batch, sched.kv_capacity_tokens // 512))
    prompt, output = spec.workload.prompt_tokens.sample(n, rng), spec.workload.output_tokens.sample(n, rng)
    result = simulate(pm, np.zeros(n), prompt, output, config=sched)
    return Prediction(throughput=_window_throughput(result, n // 10, (9 * n) // 10) * point.replicas)


def _server(point, pm, sched, spec, rng, fidelity) -> Prediction:  # type: ignore[no-untyped-def]
    rate = point.measured.samples_per_s / point.replicas
    n = int(np.clip(rate * fidelity.server_seconds, 500, fidelity.server_max_requests))
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    prompt, output = spec.workload.prompt_tokens.sample(n, rng), spec.workload.output_tokens.sample(n, rng)
    result = simulate(pm, arrivals, prompt, output, config=sched)
    lat = _latencies(result, np.arange(n) >= n // 5)
    best = max_rate(pm, sched, spec)
    return Prediction(throughput=best * spec.workload.output_tokens.mean * point.replicas, **lat)


def _batch(point, pm, sched, spec, rng, fidelity) -> Prediction:  # type: ignore[no-untyped-def]
    n = point.batch
    prompt, output = spec.workload.prompt_tokens.sample(n, rng), spec.workload.output_tokens.sample(n, rng)
    # n clients sending once, all at t = 0: the whole batch is waiting before the first step, as in vLLM's
    # latency benchmark (`simulate` would take simultaneous arrivals one by one and prefill the first alone)
    result = simulate_closed_loop(pm, concurrency=n, prompt_lens=prompt, output_lens=output, config=sched)
    latency = result.end_time
    return Prediction(
        throughput=float(output.sum()) / latency * point.replicas,
        latency_ms=latency * 1000,
        **_latencies(result, np.ones(n, dtype=bool)),
    )


def _closed_loop(point, pm, sched, spec, rng, fidelity) -> Prediction:  # type: ignore[no-untyped-def]
    c = point.concurrency
    n = c * fidelity.closed_loop_rounds
    prompt, output = spec.workload.prompt_tokens.sample(n, rng), spec.workload.output_tokens.sample(n, rng)
    # clients start spread over one lone request's duration, as a benchmark client ramps up (see closed_loop)
    alone = pm.prefill_ms(int(prompt[0]), sq_tokens=int(prompt[0]) ** 2) + (int(output[0]) - 1) * pm.decode_ms(
        1, int(prompt[0] + output[0] / 2)
    )
    starts = rng.uniform(0, alone / 1000, c)
    result = simulate_closed_loop(
        pm, concurrency=c, prompt_lens=prompt, output_lens=output, config=sched, start_times=starts
    )
    keep = np.arange(n) >= c  # the first wave starts together; later ones are staggered as in a real client
    tput = _window_throughput(result, c - 1, n - c)
    return Prediction(throughput=tput * point.replicas, **_latencies(result, keep))


_REPLAYERS = {"offline": _offline, "server": _server, "batch": _batch, "closed_loop": _closed_loop}

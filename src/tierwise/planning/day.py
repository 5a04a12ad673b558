"""A day of the fleet's cloud traffic, simulated honestly at the scale that fits in a process.

The fleet's cloud requests of one day are spread evenly over the replicas the capacity planner sized; each
replica sees a diurnal Poisson stream at 1/replicas of the fleet's rate. `simulate_day` runs `replicas_simulated`
of those replicas (independent seeds) request by request through continuous batching for 24 hours, and the
fleet totals are the simulated replicas' totals scaled by replicas / replicas_simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierwise.planning.capacity import ClusterSpec, GpuPlan, kv_capacity_tokens
from tierwise.planning.catalog import Catalog, GPUEfficiency
from tierwise.planning.perf_model import RooflineModel
from tierwise.planning.simulate import SchedulerConfig, SimulationResult, simulate
from tierwise.planning.workload import diurnal_arrivals


@dataclass
class DayResult:
    """Simulated replicas of one day, and the fleet-level figures scaled from them."""

    plan: GpuPlan
    replicas: list[SimulationResult]
    fleet_requests_per_day: float

    @property
    def simulated_requests(self) -> int:
        return sum(len(r.arrival) for r in self.replicas)

    @property
    def simulated_steps(self) -> int:
        return sum(r.prefill_steps + r.decode_steps for r in self.replicas)

    def quantile(self, metric: str, q: float) -> float:
        """A latency quantile over every simulated request: metric is `ttft`, `tpot` or `latency`."""
        return float(np.percentile(np.concatenate([getattr(r, metric) for r in self.replicas]), q * 100))

    @property
    def utilization(self) -> float:
        """Share of the day the simulated replicas' engines were busy."""
        return float(np.mean([r.busy_time / 86_400 for r in self.replicas]))

    @property
    def fleet_output_tokens(self) -> float:
        per = np.mean([float(r.output_lens[r.completed].sum()) for r in self.replicas])
        return float(per * self.plan.replicas)


def simulate_day(
    spec: ClusterSpec,
    plan: GpuPlan,
    *,
    cat: Catalog,
    replicas_simulated: int = 1,
    seed: int = 0,
    efficiency: GPUEfficiency | None = None,
) -> DayResult:
    """Simulate `replicas_simulated` of the plan's replicas for 24 h (diurnal arrivals, seeded)."""
    if not plan.feasible:
        raise ValueError(f"{plan.gpu}: the plan is infeasible, nothing to simulate")
    model, gpu = cat.model(spec.model), cat.gpu(plan.gpu)
    quant = cat.quant(spec.quant)
    pm = RooflineModel.for_gpu(
        model, gpu, quant=quant, cat=cat, kv_bits=spec.kv_bits, tp=plan.tp, efficiency=efficiency
    )
    sched = SchedulerConfig(
        kv_capacity_tokens=kv_capacity_tokens(pm, gpu.memory_gb, tp=plan.tp, spec=spec),
        max_batch=spec.max_batch,
        max_prefill_tokens=spec.max_prefill_tokens,
    )
    per_replica = spec.workload.mean_rate(spec.cloud_share) / plan.replicas
    results = []
    for k in range(replicas_simulated):
        rng = np.random.default_rng([seed, k])
        arrivals = diurnal_arrivals(per_replica, peak_factor=spec.workload.peak_factor, rng=rng)
        n = len(arrivals)
        prompt = spec.workload.prompt_tokens.sample(n, rng)
        output = spec.workload.output_tokens.sample(n, rng)
        results.append(simulate(pm, arrivals, prompt, output, config=sched))
    return DayResult(plan, results, spec.workload.mean_rate(spec.cloud_share) * 86_400)

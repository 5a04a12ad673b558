"""Benchmark: a day of a 10-million-device fleet (examples/fleet.yaml + examples/cluster.yaml).

What is simulated, honestly: the fleet planner over all 10 M devices (per class, analytic); the capacity planner
sizes H100 replicas for the peak cloud rate (event simulation per probe); then ONE representative replica is
simulated request by request for a full 24 h of diurnal traffic at 1/replicas of the fleet's cloud rate, and the
fleet figures are that replica's scaled by the replica count. Prints wall and CPU times (the machine is shared, so
wall time depends on its load; CPU time much less) and the figures for RESULTS.md.

Run: python bench/simulate_fleet.py [--gpu h100] [--replicas 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from tierwise.planning.capacity import plan_gpu
from tierwise.planning.catalog import load_catalog
from tierwise.planning.cluster_file import ClusterFile, cloud_share, to_spec
from tierwise.planning.day import simulate_day
from tierwise.planning.fleet import FleetSpec, plan_fleet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="h100")
    parser.add_argument("--replicas", type=int, default=1, help="replicas simulated for the whole day")
    args = parser.parse_args()
    cat = load_catalog()
    c0, t0 = time.process_time(), time.perf_counter()
    fleet = plan_fleet(FleetSpec.model_validate(yaml.safe_load((EXAMPLES / "fleet.yaml").read_text())), cat=cat)
    t1 = time.perf_counter()
    cfg = ClusterFile.model_validate(yaml.safe_load((EXAMPLES / "cluster.yaml").read_text()))
    share, note = cloud_share(cfg, coverage=fleet.coverage)
    spec = to_spec(cfg, share)
    plan = plan_gpu(spec, args.gpu, cat=cat)
    t2 = time.perf_counter()
    day = simulate_day(spec, plan, cat=cat, replicas_simulated=args.replicas, seed=0)
    t3, c3 = time.perf_counter(), time.process_time()
    print(f"fleet: {fleet.total:,} devices, coverage {fleet.coverage:.1%} ({t1 - t0:.2f} s)")
    print(f"cloud share {share:.3f} [{note}]; fleet cloud requests/day {day.fleet_requests_per_day:,.0f}")
    print(
        f"capacity: {plan.replicas} replicas × TP{plan.tp} {plan.gpu} = {plan.gpus} GPUs, "
        f"{plan.replica_max_rate:.2f} req/s per replica at the SLOs ({t2 - t1:.1f} s)"
    )
    print(
        f"day: {args.replicas} replica(s) simulated for 24 h: {day.simulated_requests:,} requests, "
        f"{day.simulated_steps:,} engine steps ({t3 - t2:.1f} s)"
    )
    print(
        f"  TTFT p50/p90/p99 {day.quantile('ttft', 0.5):.3f} / {day.quantile('ttft', 0.9):.3f} / "
        f"{day.quantile('ttft', 0.99):.3f} s; TPOT p50/p90 {day.quantile('tpot', 0.5) * 1e3:.1f} / "
        f"{day.quantile('tpot', 0.9) * 1e3:.1f} ms; engine busy {day.utilization:.1%}"
    )
    print(f"  fleet output tokens/day (scaled ×{plan.replicas}): {day.fleet_output_tokens:,.0f}")
    print(f"total wall time {t3 - t0:.1f} s, CPU time {c3 - c0:.1f} s")


if __name__ == "__main__":
    main()

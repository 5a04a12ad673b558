from __future__ import annotations

import itertools

import pytest

from tierwise.planning.capacity import SLO, ClusterSpec, max_rate, plan_cluster, plan_gpu
from tierwise.planning.catalog import Catalog
from tierwise.planning.perf_model import RooflineModel
from tierwise.planning.simulate import SchedulerConfig
from tierwise.planning.workload import TokenDist, Workload

WORKLOAD = Workload(
    devices=1_000_000,
    requests_per_device_per_day=10,
    peak_factor=2.0,
    prompt_tokens=TokenDist(mean=500, max=4096),
    output_tokens=TokenDist(mean=150, max=1024),
)


def _spec(**kw: object) -> ClusterSpec:
    base: dict[str, object] = dict(
        workload=WORKLOAD, cloud_share=0.3, model="llama-3.1-8b", probe_seconds=60, min_probe_requests=200
    )
    return ClusterSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def pm(cat: Catalog) -> RooflineModel:
    return RooflineModel.for_gpu(cat.model("llama-3.1-8b"), cat.gpu("h100"), quant=cat.quant("bf16"), cat=cat)


SCHED = SchedulerConfig(kv_capacity_tokens=400_000)


def test_capacity_falls_monotonically_as_tpot_tightens(pm: RooflineModel) -> None:
    rates = [max_rate(pm, SCHED, _spec(slo=SLO(ttft_s=5.0, tpot_s=t))) for t in (0.1, 0.04, 0.02, 0.012)]
    assert all(a >= b for a, b in itertools.pairwise(rates)), rates
    assert rates[0] > 1.5 * rates[-1] > 0


def test_capacity_falls_monotonically_as_ttft_tightens(pm: RooflineModel) -> None:
    rates = [max_rate(pm, SCHED, _spec(slo=SLO(ttft_s=t, tpot_s=1.0))) for t in (2.0, 0.5, 0.2, 0.1)]
    assert all(a >= b for a, b in itertools.pairwise(rates)), rates
    assert rates[0] > rates[-1] > 0


def test_impossible_slo_gives_zero(pm: RooflineModel) -> None:
    # TPOT below a single request's decode step can never be met
    assert max_rate(pm, SCHED, _spec(slo=SLO(ttft_s=5.0, tpot_s=pm.decode_ms(1, 100) / 2000))) == 0.0


def test_tensor_parallel_where_memory_needs_it(cat: Catalog) -> None:
    spec = _spec(model="llama-3.1-70b", slo=SLO(ttft_s=3.0, tpot_s=0.1), tp_options=[1, 2, 4])
    plan = plan_gpu(spec, "h100", cat=cat, price_per_gpu_hour=2.0)
    assert plan.feasible and plan.tp >= 2  # 141 GB of bf16 weights cannot fit one 80 GB GPU
    assert plan.gpus == plan.replicas * plan.tp
    assert plan.replicas * plan.replica_max_rate >= plan.peak_rate
    assert plan.cost_per_hour == pytest.approx(plan.gpus * 2.0)
    assert plan.power_kw == pytest.approx(plan.gpus * 0.7)


def test_gpu_types_side_by_side(cat: Catalog) -> None:
    plans = plan_cluster(_spec(slo=SLO(ttft_s=2.0, tpot_s=0.05), tp_options=[1]), ["h100", "h20", "l40s"], cat=cat)
    by = {p.gpu: p for p in plans}
    assert all(p.feasible for p in plans)
    assert by["h100"].replica_max_rate > by["l40s"].replica_max_rate  # 4x bandwidth, 2.7x compute
    assert by["h100"].gpus <= by["h20"].gpus

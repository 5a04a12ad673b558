from __future__ import annotations

import numpy as np
import pytest

from tierwise.planning.catalog import Catalog
from tierwise.planning.closed_loop import simulate_closed_loop
from tierwise.planning.perf_model import RooflineModel
from tierwise.planning.simulate import SchedulerConfig

SCHED = SchedulerConfig(kv_capacity_tokens=400_000)


@pytest.fixture(scope="module")
def pm(cat: Catalog) -> RooflineModel:
    return RooflineModel.for_gpu(cat.model("llama-3.1-8b"), cat.gpu("h100"), quant=cat.quant("bf16"), cat=cat)


def _run(pm: RooflineModel, c: int, n: int, **kw: object) -> object:
    return simulate_closed_loop(
        pm, concurrency=c, prompt_lens=np.full(n, 1000), output_lens=np.full(n, 100), config=SCHED, **kw
    )


def test_one_client_sends_each_request_when_the_last_one_finished(pm: RooflineModel) -> None:
    r = _run(pm, 1, 3)
    alone = (pm.prefill_ms(1000, sq_tokens=1000**2) + sum(pm.decode_ms(1, 1001 + k) for k in range(99))) / 1000
    assert r.latency == pytest.approx([alone] * 3)
    assert r.arrival[1:] == pytest.approx(r.finish[:-1])


def test_more_clients_more_throughput_and_littles_law(pm: RooflineModel) -> None:
    low, high = _run(pm, 2, 40), _run(pm, 16, 160)
    assert high.throughput > 4 * low.throughput
    for r in (low, high):
        assert r.mean_in_system == pytest.approx(r.throughput * r.latency.mean(), rel=0.02)
        assert r.mean_in_system <= 16


def test_staggered_clients_start_at_their_times(pm: RooflineModel) -> None:
    r = _run(pm, 3, 6, start_times=np.array([0.1, 0.0, 0.05]))
    assert r.arrival[:3] == pytest.approx([0.0, 0.05, 0.1])  # each request takes longer than the stagger
    assert r.completed.all()
    assert sorted(r.arrival[3:]) == pytest.approx(sorted(r.finish[:3]))  # then each client sends on completion

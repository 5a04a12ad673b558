from __future__ import annotations

import numpy as np
import pytest

from tierwise.planning.catalog import Catalog
from tierwise.planning.perf_model import RooflineModel
from tierwise.planning.simulate import SchedulerConfig, simulate
from tierwise.planning.workload import TokenDist, diurnal_arrivals, poisson_arrivals


@pytest.fixture(scope="module")
def pm(cat: Catalog) -> RooflineModel:
    return RooflineModel.for_gpu(cat.model("llama-3.1-8b"), cat.gpu("h100"), quant=cat.quant("bf16"), cat=cat)


def _run(pm: RooflineModel, rate: float, n: int = 1500, seed: int = 1, kv: int = 300_000):
    rng = np.random.default_rng(seed)
    arrivals = poisson_arrivals(rate, n, rng)
    prompt = TokenDist(mean=600, cv=1.0, max=4096).sample(n, rng)
    output = TokenDist(mean=200, cv=1.0, max=2048).sample(n, rng)
    return simulate(pm, arrivals, prompt, output, config=SchedulerConfig(kv_capacity_tokens=kv))


def test_single_request_matches_analytic_latency(pm: RooflineModel) -> None:
    prompt, out = 700, 50
    res = simulate(
        pm, np.array([3.0]), np.array([prompt]), np.array([out]), config=SchedulerConfig(kv_capacity_tokens=10_000)
    )
    ttft = pm.prefill_ms(prompt, sq_tokens=prompt**2) / 1000
    decode = sum(pm.decode_ms(1, prompt + 1 + k) for k in range(out - 1)) / 1000
    assert res.ttft[0] == pytest.approx(ttft, rel=1e-9)
    assert res.latency[0] == pytest.approx(ttft + decode, rel=1e-9)
    assert res.decode_steps == out - 1 and res.prefill_steps == 1


@pytest.mark.parametrize("rate", [2.0, 20.0])
def test_littles_law(pm: RooflineModel, rate: float) -> None:
    res = _run(pm, rate)
    assert res.completed.all()
    # L (time-average in system, integrated event by event) = λ (completions / time) × W (mean latency)
    assert res.mean_in_system == pytest.approx(res.throughput * res.latency.mean(), rel=1e-6)
    # and the queue really formed at the higher rate: more than one request in the system on average
    assert res.mean_in_system > (1.0 if rate > 10 else 0.0)


def test_load_raises_latency_and_batch(pm: RooflineModel) -> None:
    light, heavy = _run(pm, 2.0), _run(pm, 25.0)
    assert heavy.mean_decode_batch > 3 * light.mean_decode_batch
    assert np.percentile(heavy.tpot, 90) > np.percentile(light.tpot, 90)


def test_seeded_and_kv_limited(pm: RooflineModel) -> None:
    a, b = _run(pm, 10.0, n=300), _run(pm, 10.0, n=300)
    assert np.array_equal(a.finish, b.finish)
    tight = _run(pm, 10.0, n=300, kv=2500)  # requests larger than the cache are rejected, the rest wait
    assert 0 < (~tight.completed).sum() < 300
    assert np.nanmax(tight.ttft) > np.nanmax(a.ttft)


def test_diurnal_arrivals_mean_and_peak() -> None:
    rng = np.random.default_rng(0)
    t = diurnal_arrivals(2.0, peak_factor=2.0, rng=rng)
    assert len(t) == pytest.approx(2.0 * 86_400, rel=0.02)
    per_hour = np.histogram(t, bins=24, range=(0, 86_400))[0] / 3600
    assert per_hour.max() == pytest.approx(4.0, rel=0.08) and per_hour.argmax() in (19, 20)
    assert np.all(np.diff(t) >= 0)

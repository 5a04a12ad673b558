"""The fast event loop reproduces the heap-based one (tests/planning/heap_reference.py) bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.planning.catalog import Catalog
from tierwise.planning.perf_model import RooflineModel, StepModel
from tierwise.planning.profile import FittedStepModel
from tierwise.planning.simulate import SchedulerConfig, SimulationResult, simulate
from tierwise.planning.workload import TokenDist, poisson_arrivals

from .heap_reference import reference_simulate


class _Called:
    """A step model without `decode_lines`: the simulator must call it, not inline the roofline."""

    def __init__(self, inner: StepModel) -> None:
        self.inner = inner

    def prefill_ms(self, tokens: int, *, sq_tokens: int, batch: int = 1) -> float:
        return self.inner.prefill_ms(tokens, sq_tokens=sq_tokens, batch=batch)

    def decode_ms(self, batch: int, context_sum: int) -> float:
        return self.inner.decode_ms(batch, context_sum)


class _Ticks:
    """Step times that are exact binary fractions of a second, so arrivals and step ends tie."""

    def prefill_ms(self, tokens: int, *, sq_tokens: int, batch: int = 1) -> float:
        return 250.0 * batch

    def decode_ms(self, batch: int, context_sum: int) -> float:
        return 125.0


def _assert_identical(fast: SimulationResult, ref: SimulationResult) -> None:
    assert np.array_equal(fast.first_token, ref.first_token, equal_nan=True)
    assert np.array_equal(fast.finish, ref.finish, equal_nan=True)
    assert (fast.prefill_steps, fast.decode_steps, fast.decoded_tokens) == (
        ref.prefill_steps,
        ref.decode_steps,
        ref.decoded_tokens,
    )
    assert fast.end_time == ref.end_time
    assert fast.busy_time == ref.busy_time
    assert fast.in_system_time_integral == ref.in_system_time_integral


def _workload(rate: float, n: int, seed: int, output_mean: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrivals = poisson_arrivals(rate, n, rng)
    prompt = TokenDist(mean=600, cv=1.2, max=4096).sample(n, rng)
    output = TokenDist(mean=output_mean, cv=1.2, max=2048).sample(n, rng)
    return arrivals, prompt, output


CONFIGS = {
    "roomy": SchedulerConfig(kv_capacity_tokens=400_000),
    # rejections (requests larger than the cache), KV-bound waiting, batch slots and prefill budget all bind
    "tight": SchedulerConfig(kv_capacity_tokens=3_000, max_batch=4, max_prefill_tokens=1_500),
    "slots": SchedulerConfig(kv_capacity_tokens=60_000, max_batch=8, max_prefill_tokens=2_048),
}


def _models(cat: Catalog) -> dict[str, StepModel]:
    def roofline(model: str, quant: str = "bf16", tp: int = 1) -> RooflineModel:
        return RooflineModel.for_gpu(cat.model(model), cat.gpu("h100"), quant=cat.quant(quant), cat=cat, tp=tp)

    return {
        "dense": roofline("llama-3.1-8b"),
        "tp4": roofline("llama-3.1-70b", "fp8", tp=4),
        "moe": roofline("mixtral-8x7b", tp=2),
        "called": _Called(roofline("llama-3.1-8b")),
        "fitted": FittedStepModel(np.array([5.0, 0.02, 1e-6]), np.array([8.0, 0.05, 2e-5])),
    }


@pytest.mark.parametrize("model", ["dense", "tp4", "moe", "called", "fitted"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize(("rate", "output_mean"), [(0.5, 120.0), (12.0, 60.0), (60.0, 3.0)])
def test_fast_loop_matches_heap_reference(
    cat: Catalog, model: str, config: str, rate: float, output_mean: float
) -> None:
    pm = _models(cat)[model]
    arrivals, prompt, output = _workload(rate, 600, seed=int(rate * 10), output_mean=output_mean)
    fast = simulate(pm, arrivals, prompt, output, config=CONFIGS[config])
    ref = reference_simulate(pm, arrivals, prompt, output, config=CONFIGS[config])
    _assert_identical(fast, ref)
    assert fast.decode_steps > 0 and fast.completed.any()


def test_tight_config_exercises_rejection_and_one_token_outputs(cat: Catalog) -> None:
    # the scenarios above must really contain the rare paths the fast loop special-cases
    arrivals, prompt, output = _workload(60.0, 600, seed=600, output_mean=3.0)
    res = simulate(_models(cat)["dense"], arrivals, prompt, output, config=CONFIGS["tight"])
    assert (~res.completed).sum() > 0  # rejected
    assert (output[res.completed] == 1).sum() > 0  # finished at their first token
    assert res.prefill_steps < res.completed.sum()  # some prefill steps admitted several requests


def test_ties_between_arrivals_and_step_ends() -> None:
    # Light load, so that a request arriving as a step ends joins that instant's admission (in the heap, the
    # arrival came first) instead of waiting behind a decode step.
    n = 300
    rng = np.random.default_rng(3)
    arrivals = np.sort(rng.integers(0, 3200, n)) * 0.125  # on the same 1/8 s grid as every step end
    prompt = rng.integers(50, 400, n)
    output = rng.integers(1, 30, n)
    config = SchedulerConfig(kv_capacity_tokens=5_000, max_batch=6, max_prefill_tokens=1_000)
    fast = simulate(_Ticks(), arrivals, prompt, output, config=config)
    ref = reference_simulate(_Ticks(), arrivals, prompt, output, config=config)
    _assert_identical(fast, ref)
    step_ends = fast.first_token[fast.completed]
    assert np.isin(step_ends, arrivals).any()  # some step really ended at an arrival's instant

from __future__ import annotations

import pytest

from tierwise.planning.catalog import Catalog
from tierwise.planning.measurements import Measurements, OperatingPoint, load_measurements
from tierwise.planning.perf_model import RooflineModel
from tierwise.planning.replay import Fidelity, replay, scaled_efficiency

QUICK = Fidelity(offline_requests=300, server_seconds=40, server_max_requests=2000, closed_loop_rounds=2)


def _point(pid: str) -> OperatingPoint:
    return next(p for p in load_measurements().points if p.id == pid)


def test_a_batch_replay_is_prefill_plus_decode_steps(cat: Catalog) -> None:
    point, data = _point("vllm-ci/h200/llama3.1-8b/tp1-batch8"), load_measurements()
    pred = replay(point, cat=cat, data=data, efficiency=cat.gpu_efficiency, fidelity=QUICK)
    pm = RooflineModel.for_gpu(cat.model("llama-3.1-8b"), cat.gpu("h200"), quant=cat.quant("bf16"), cat=cat)
    steps = sum(pm.decode_ms(8, 8 * (33 + k)) for k in range(127))
    assert pred.latency_ms == pytest.approx(pm.prefill_ms(256, sq_tokens=8 * 32**2, batch=8) + steps)
    assert pred.throughput == pytest.approx(8 * 128 / (pred.latency_ms / 1000))


def test_lower_efficiency_predicts_less_throughput(cat: Catalog) -> None:
    data = load_measurements()
    for pid in ("mlperf5.1/redhat/1xh100/llama3.1-8b/offline", "nim1.8/2xh100/llama3.3-70b/c5"):
        point = _point(pid)
        full = replay(point, cat=cat, data=data, efficiency=cat.gpu_efficiency, fidelity=QUICK)
        slow = scaled_efficiency(cat.gpu_efficiency, 0.6, source="test")
        assert replay(point, cat=cat, data=data, efficiency=slow, fidelity=QUICK).throughput < 0.8 * full.throughput


def test_server_throughput_is_the_rate_within_the_constraint(cat: Catalog) -> None:
    data = load_measurements()
    point = _point("mlperf5.1/redhat/1xh100/llama3.1-8b/server")
    tight = point.model_copy(update={"slo": point.slo.model_copy(update={"tpot_ms": 30.0})})
    loose = replay(point, cat=cat, data=data, efficiency=cat.gpu_efficiency, fidelity=QUICK)
    strict = replay(tight, cat=cat, data=Measurements.model_validate(data.model_dump()), efficiency=cat.gpu_efficiency,
                    fidelity=QUICK)  # fmt: skip
    assert strict.throughput < loose.throughput
    assert loose.ttft_ms_p99 is not None and loose.ttft_ms_p99 >= loose.ttft_ms_mean > 0


def test_scaled_efficiency_caps_at_the_peak(cat: Catalog) -> None:
    eff = scaled_efficiency(cat.gpu_efficiency, 2.0, source="x")
    assert eff.decode_bandwidth == 1.0 and eff.prefill_compute == 1.0
    assert eff.source["calibration"] == "x"

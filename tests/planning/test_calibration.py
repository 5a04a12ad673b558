from __future__ import annotations

import pytest

from tierwise.planning.calibration import (
    SCALE_RANGE,
    check,
    engine_efficiency,
    fit_scale,
    held_out_scales,
    load_calibration,
    scale_efficiency,
)
from tierwise.planning.catalog import Catalog
from tierwise.planning.measurements import OperatingPoint, load_measurements
from tierwise.planning.replay import Fidelity, replay

QUICK = Fidelity(offline_requests=300, server_seconds=40, server_max_requests=2000, closed_loop_rounds=2)


def _points(*ids: str) -> list[OperatingPoint]:
    by_id = {p.id: p for p in load_measurements().points}
    return [by_id[i] for i in ids]


def test_fitted_scale_reproduces_the_measured_throughput(cat: Catalog) -> None:
    (point,) = _points("vllm-ci/h200/llama3-70b/tp4-batch8")
    data = load_measurements()
    scale = fit_scale(point, cat=cat, data=data, fidelity=QUICK)
    assert SCALE_RANGE[0] < scale < 1.0  # vLLM reaches less than the catalog's default efficiency here
    eff = scale_efficiency(cat, scale, source="test")
    pred = replay(point, cat=cat, data=data, efficiency=eff, fidelity=QUICK)
    assert pred.throughput == pytest.approx(point.measured_throughput, rel=0.01)


def test_held_out_scale_never_uses_the_point_itself_or_its_source() -> None:
    points = _points(
        "mlperf5.1/redhat/1xh100/llama3.1-8b/offline",
        "mlperf5.1/redhat/1xh100/llama3.1-8b/server",
        "vllm-ci/h200/llama3.1-8b/tp1-batch8",
        "mlperf4.1/nvidia/8xh200/llama2-70b/offline",
    )
    fits = {points[0].id: 0.5, points[1].id: 0.7, points[2].id: 0.9, points[3].id: 0.1}
    loo = held_out_scales(points, fits, split="loo")
    assert loo[points[0].id] == pytest.approx(0.8)  # median of the other two vLLM points, not the TRT one
    assert loo[points[3].id] is None  # the only tensorrt-llm point: nothing to hold it out from
    by_source = held_out_scales(points, fits, split="by-source")
    assert by_source[points[0].id] == by_source[points[1].id] == pytest.approx(0.9)  # the other source only
    assert by_source[points[2].id] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="by-source"):
        held_out_scales(points, fits, split="random")


def test_shipped_calibration_is_consistent_with_the_measurements(cat: Catalog) -> None:
    ids = {p.id: p for p in load_measurements().points}
    table = load_calibration()
    assert {"vllm", "tensorrt-llm"} <= set(table)
    for engine, c in table.items():
        assert all(ids[i].engine == engine and ids[i].calibrate for i in c.points)
        assert SCALE_RANGE[0] <= c.scale <= SCALE_RANGE[1]
        assert c.decode_bandwidth == pytest.approx(min(cat.gpu_efficiency.decode_bandwidth * c.scale, 1), abs=1e-3)
        assert 0 <= c.held_out_median_error < 1


def test_engine_efficiency_says_where_it_came_from(cat: Catalog) -> None:
    eff, note = engine_efficiency("vllm", cat)
    assert eff.decode_bandwidth == load_calibration()["vllm"].decode_bandwidth
    assert "calibrated for vllm" in note and "measurements.yaml" in note and "held-out" in note
    base, note = engine_efficiency("roofline", cat)
    assert base == cat.gpu_efficiency and "uncalibrated" in note
    with pytest.raises(ValueError, match="tensorrt-llm"):
        engine_efficiency("sglang", cat)


def test_shipped_vllm_factors_are_what_the_check_computes(cat: Catalog) -> None:
    # guards calibration.yaml against drifting from measurements.yaml or the simulator (rerun the bench to update)
    data = load_measurements()
    report = check(data, cat=cat, points=[p for p in data.points if p.engine == "vllm"])
    shipped = load_calibration()["vllm"]
    scale, ids = report.engine_scales["vllm"]
    assert scale == pytest.approx(shipped.scale, abs=1e-4) and ids == shipped.points
    assert report.median_held_out_error("vllm") == pytest.approx(shipped.held_out_median_error, abs=1e-4)
    assert all(r.scale is not None and r.scale != r.fitted_scale for r in report.rows)  # held out, not self-fitted

"""Calibrate the GPU efficiency factors per engine class on published points, and test them on held-out ones.

The roofline's decode-bandwidth and prefill-compute efficiencies are multiplied by one scale per engine class
(TensorRT-LLM, vLLM, NIM serve the same GPU at different speeds). For each point, `fit_scale` finds the scale at
which the simulator reproduces the point's measured throughput (bisection: throughput rises with the scale). A
point is then predicted with the median scale of the *other* points of its engine (leave-one-out), or of the
other sources (`by-source`: every point of a source held out at once), so each reported error is out of sample.
The shipped factors (`catalog/calibration.yaml`) are the median over all of an engine's points.

Usage: `report = check(load_measurements(), cat=load_catalog())`; `engine_efficiency("vllm", cat)`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict

from tierwise.planning.catalog import Catalog, GPUEfficiency
from tierwise.planning.measurements import Measurements, OperatingPoint
from tierwise.planning.replay import DEFAULT_FIDELITY, Fidelity, Prediction, replay, scaled_efficiency

SCALE_RANGE = (0.2, 1.25)  # 1.25 × the catalog's 0.8 bandwidth factor is the bandwidth peak


def scale_efficiency(cat: Catalog, scale: float, *, source: str) -> GPUEfficiency:
    return scaled_efficiency(cat.gpu_efficiency, scale, source=source)


def fit_scale(
    point: OperatingPoint,
    *,
    cat: Catalog,
    data: Measurements,
    fidelity: Fidelity = DEFAULT_FIDELITY,
    iterations: int = 12,
) -> float:
    """The efficiency scale at which the replayed throughput equals the measured one (clipped to SCALE_RANGE)."""
    target = point.measured_throughput

    def predicted(scale: float) -> float:
        eff = scale_efficiency(cat, scale, source=f"fit to {point.id}")
        return replay(point, cat=cat, data=data, efficiency=eff, fidelity=fidelity).throughput

    lo, hi = SCALE_RANGE
    if predicted(hi) <= target:
        return hi
    if predicted(lo) >= target:
        return lo
    for _ in range(iterations):  # bisection in log(scale)
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if predicted(mid) < target else (lo, mid)
    return math.sqrt(lo * hi)


def source_of(point: OperatingPoint) -> str:
    """The publication a point belongs to: its id's first two parts (e.g. `mlperf5.1/hpe`)."""
    return "/".join(point.id.split("/")[:2])


def held_out_scales(points: list[OperatingPoint], fits: dict[str, float], *, split: str) -> dict[str, float | None]:
    """For each point, the median fitted scale of the points it is held out from (None: nothing to fit on)."""
    keys: dict[str, Callable[[OperatingPoint], str]] = {"loo": lambda p: p.id, "by-source": source_of}
    try:
        key = keys[split]
    except KeyError:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(keys)}") from None
    out: dict[str, float | None] = {}
    for p in points:
        train = [fits[q.id] for q in points if q.id in fits and q.engine == p.engine and key(q) != key(p)]
        out[p.id] = statistics.median(train) if train else None
    return out


@dataclass(frozen=True)
class CheckRow:
    """One point: the scale it was predicted with, the prediction, and the uncalibrated prediction."""

    point: OperatingPoint
    fitted_scale: float | None  # its own fit (None when excluded)
    scale: float | None  # held-out scale used for `prediction` (None: no other point of its engine)
    prediction: Prediction | None
    default: Prediction

    def error(self, prediction: Prediction | None = None) -> float | None:
        pred = prediction if prediction is not None else self.prediction
        if pred is None:
            return None
        return pred.throughput / self.point.measured_throughput - 1


@dataclass(frozen=True)
class CheckReport:
    rows: list[CheckRow]
    engine_scales: dict[str, tuple[float, list[str]]]  # engine → (median scale over all its points, point ids)
    split: str

    def held_out_errors(self, engine: str | None = None) -> list[float]:
        return [
            abs(e)
            for r in self.rows
            if r.point.calibrate and (engine is None or r.point.engine == engine) and (e := r.error()) is not None
        ]

    def median_held_out_error(self, engine: str | None = None) -> float:
        errors = self.held_out_errors(engine)
        return statistics.median(errors) if errors else math.nan


def check(
    data: Measurements,
    *,
    cat: Catalog,
    fidelity: Fidelity = DEFAULT_FIDELITY,
    split: str = "loo",
    points: Iterable[OperatingPoint] | None = None,
) -> CheckReport:
    """Fit every calibratable point, predict each from the others (`split`), and the uncalibrated roofline."""
    chosen = list(points if points is not None else data.points)
    fits = {p.id: fit_scale(p, cat=cat, data=data, fidelity=fidelity) for p in chosen if p.calibrate}
    held = held_out_scales(chosen, fits, split=split)
    rows = []
    for p in chosen:
        scale = held[p.id]
        pred = None
        if scale is not None:
            eff = scale_efficiency(cat, scale, source=f"held-out {split} for {p.id}")
            pred = replay(p, cat=cat, data=data, efficiency=eff, fidelity=fidelity)
        default = replay(p, cat=cat, data=data, efficiency=cat.gpu_efficiency, fidelity=fidelity)
        rows.append(CheckRow(p, fits.get(p.id), scale, pred, default))
    engines: dict[str, tuple[float, list[str]]] = {}
    for engine in sorted({p.engine for p in chosen if p.id in fits}):
        ids = [p.id for p in chosen if p.engine == engine and p.id in fits]
        engines[engine] = (statistics.median(fits[i] for i in ids), ids)
    return CheckReport(rows, engines, split)


class EngineCalibration(BaseModel):
    """The shipped calibrated factors of one engine class (`catalog/calibration.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scale: float
    decode_bandwidth: float
    prefill_compute: float
    points: list[str]
    held_out_median_error: float
    split: str
    source: str


@cache
def load_calibration() -> dict[str, EngineCalibration]:
    text = resources.files("tierwise.planning").joinpath("catalog", "calibration.yaml").read_text(encoding="utf-8")
    return {k: EngineCalibration(**v) for k, v in yaml.safe_load(text)["engines"].items()}


UNCALIBRATED = "roofline"  # the engine name that keeps the catalog's uncalibrated factors


def engine_efficiency(engine: str, cat: Catalog) -> tuple[GPUEfficiency, str]:
    """Efficiency factors for an engine class and a line saying where they came from."""
    base = cat.gpu_efficiency
    if engine == UNCALIBRATED:
        return base, (
            f"uncalibrated catalog factors (decode bandwidth {base.decode_bandwidth:g}, prefill compute "
            f"{base.prefill_compute:g}): not checked against measurements"
        )
    table = load_calibration()
    if engine not in table:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join([*sorted(table), UNCALIBRATED])}")
    c = table[engine]
    eff = base.model_copy(
        update={
            "decode_bandwidth": c.decode_bandwidth,
            "prefill_compute": c.prefill_compute,
            "source": {**base.source, "calibration": c.source},
        }
    )
    note = (
        f"calibrated for {engine}: decode bandwidth {c.decode_bandwidth:.3f}, prefill compute "
        f"{c.prefill_compute:.3f} (scale {c.scale:.3f} × catalog) from {len(c.points)} published points, "
        f"held-out ({c.split}) median throughput error {c.held_out_median_error:.1%}; source: {c.source}"
    )
    return eff, note


def calibration_yaml(report: CheckReport, cat: Catalog, *, command: str) -> str:
    """The calibration file for a report (what `bench/plan_check.py --write` ships)."""
    engines = {}
    for engine, (scale, ids) in report.engine_scales.items():
        eff = scale_efficiency(cat, scale, source="")
        engines[engine] = {
            "scale": round(scale, 4),
            "decode_bandwidth": round(eff.decode_bandwidth, 4),
            "prefill_compute": round(eff.prefill_compute, 4),
            "points": ids,
            "held_out_median_error": round(report.median_held_out_error(engine), 4),
            "split": report.split,
            "source": f"catalog/measurements.yaml via `{command}`",
        }
    header = (
        "# Efficiency factors calibrated per engine class on catalog/measurements.yaml (written by the command in\n"
        "# `source`; do not edit by hand). scale multiplies the catalog's decode_bandwidth and prefill_compute.\n"
    )
    return header + yaml.safe_dump({"engines": engines}, sort_keys=False, width=120)

"""Fleet planning: for each device class, the best model × quantization that fits a memory budget and a
minimum decode speed; the fleet's on-device coverage, expected quality, and what would raise coverage.

Usage: `plan = plan_fleet(FleetSpec.model_validate(yaml.safe_load(text)), cat=load_catalog())`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierwise.planning.catalog import Catalog, Device
from tierwise.planning.perf_model import RooflineModel, device_hardware


class DeviceClass(BaseModel):
    """A slice of the fleet: a catalog device (or explicit RAM/bandwidth/family) and how many there are."""

    model_config = ConfigDict(extra="forbid")
    name: str
    device: str | None = None  # catalog device name; explicit fields below override its figures
    count: int | None = Field(None, ge=0)
    share: float | None = Field(None, ge=0, le=1)  # of `FleetSpec.total_devices`, when `count` is not given
    ram_gb: float | None = Field(None, gt=0)
    bandwidth_gbs: float | None = Field(None, gt=0)
    family: str | None = None


class FleetBudget(BaseModel):
    """What an on-device model may use: a share of RAM, a minimum decode speed, a context it must hold."""

    model_config = ConfigDict(extra="forbid")
    ram_fraction: float = Field(0.25, gt=0, le=1)
    min_decode_tok_s: float = Field(10.0, ge=0)
    context_tokens: int = Field(2048, ge=1)
    kv_bits: float = Field(16, gt=0)
    runtime_overhead_gb: float = Field(0.3, ge=0)  # runtime, activations, buffers (assumption)


class FleetSpec(BaseModel):
    """The fleet: device classes, the candidate models and quantizations, and the budget."""

    model_config = ConfigDict(extra="forbid")
    total_devices: int | None = Field(None, gt=0)
    classes: list[DeviceClass]
    candidates: list[str]
    quantizations: list[str] = ["q4_k_m", "q8_0", "bf16"]
    budget: FleetBudget = FleetBudget()

    @model_validator(mode="after")
    def _counts_resolvable(self) -> FleetSpec:
        for c in self.classes:
            if c.count is None and (c.share is None or self.total_devices is None):
                raise ValueError(f"class {c.name!r}: give `count`, or `share` with `total_devices`")
        return self

    def count_of(self, c: DeviceClass) -> int:
        return c.count if c.count is not None else round((c.share or 0) * (self.total_devices or 0))


@dataclass(frozen=True)
class Option:
    """One model × quantization on one device class."""

    model: str
    quant: str
    memory_gb: float
    decode_tok_s: float
    quality: float | None
    params_b: float
    weight_bits: float

    def rank_key(self) -> tuple[float, float, float]:
        """Measured quality first (models without it rank below), then size, then bits per weight."""
        return (self.quality if self.quality is not None else -1.0, self.params_b, self.weight_bits)


@dataclass(frozen=True)
class ClassPlan:
    """The answer for one device class: the chosen option (None if nothing fits) and why."""

    name: str
    count: int
    ram_gb: float
    bandwidth_gbs: float
    budget_gb: float
    choice: Option | None
    reason: str


@dataclass
class FleetPlan:
    """Every class's answer, coverage (share of devices with an on-device model), expected quality."""

    classes: list[ClassPlan]
    budget: FleetBudget
    sensitivity: list[tuple[str, float]] = field(default_factory=list)  # (change, coverage with it)

    @property
    def total(self) -> int:
        return sum(c.count for c in self.classes)

    @property
    def covered(self) -> int:
        return sum(c.count for c in self.classes if c.choice is not None)

    @property
    def coverage(self) -> float:
        return self.covered / self.total if self.total else 0.0

    @property
    def expected_quality(self) -> float | None:
        """Device-weighted mean quality over covered devices whose model has a measured quality."""
        known = [(c.count, c.choice.quality) for c in self.classes if c.choice and c.choice.quality is not None]
        weight = sum(n for n, _ in known)
        return sum(n * q for n, q in known) / weight if weight else None


def _options(spec: FleetSpec, c: DeviceClass, *, cat: Catalog, quality: dict[str, float]) -> list[Option]:
    device = cat.device(c.device) if c.device else None
    family = c.family or (device.family if device else None)
    bandwidth = c.bandwidth_gbs or (device.bandwidth_gbs if device else None)
    if family is None or bandwidth is None:
        raise ValueError(f"class {c.name!r}: give `device`, or `family` and `bandwidth_gbs`")
    hw = device_hardware(device or _adhoc(c.name, family, bandwidth), cat, bandwidth_gbs=bandwidth)
    b = spec.budget
    out = []
    for name in spec.candidates:
        arch = cat.model(name)
        for qname in spec.quantizations:
            pm = RooflineModel(arch, hw, quant=cat.quant(qname), kv_bits=b.kv_bits)
            mem = (pm.weight_bytes + b.context_tokens * pm.kv_bytes_per_token) / 1e9 + b.runtime_overhead_gb
            speed = 1000 / pm.decode_ms(1, b.context_tokens)
            q = quality.get(arch.outcome_name or "", quality.get(name))
            out.append(Option(name, qname, mem, speed, q, arch.params_b, cat.quant(qname).weight_bits))
    return out


def _adhoc(name: str, family: str, bandwidth: float) -> Device:
    """A device described only in fleet.yaml (not in the catalog)."""
    return Device(name=name, label=name, family=family, ram_gb=1, bandwidth_gbs=bandwidth, source="fleet.yaml")


def _plan_class(spec: FleetSpec, c: DeviceClass, *, cat: Catalog, quality: dict[str, float]) -> ClassPlan:
    ram = c.ram_gb or (cat.device(c.device).ram_gb if c.device else 0.0)
    budget_gb = ram * spec.budget.ram_fraction
    options = _options(spec, c, cat=cat, quality=quality)
    fits = [o for o in options if o.memory_gb <= budget_gb]
    fast = [o for o in fits if o.decode_tok_s >= spec.budget.min_decode_tok_s]
    bw = c.bandwidth_gbs or (cat.device(c.device).bandwidth_gbs if c.device else 0.0)
    if fast:
        best = max(fast, key=Option.rank_key)
        return ClassPlan(
            c.name,
            spec.count_of(c),
            ram,
            bw,
            budget_gb,
            best,
            f"{len(fast)} of {len(options)} options fit the budget and speed",
        )
    smallest = min(options, key=lambda o: o.memory_gb)
    if not fits:
        need = smallest.memory_gb / ram if ram else float("inf")
        reason = (
            f"nothing fits {budget_gb:.2f} GB; smallest ({smallest.model} {smallest.quant}, "
            f"{smallest.memory_gb:.2f} GB) needs ram_fraction ≥ {need:.2f} or ≥ "
            f"{smallest.memory_gb / spec.budget.ram_fraction:.1f} GB RAM"
        )
    else:
        quickest = max(fits, key=lambda o: o.decode_tok_s)
        reason = (
            f"{len(fits)} fit in memory but the fastest ({quickest.model} {quickest.quant}) decodes "
            f"{quickest.decode_tok_s:.1f} tok/s < {spec.budget.min_decode_tok_s:g}"
        )
    return ClassPlan(c.name, spec.count_of(c), ram, bw, budget_gb, None, reason)


def plan_fleet(
    spec: FleetSpec, *, cat: Catalog, quality: dict[str, float] | None = None, sensitivity: bool = True
) -> FleetPlan:
    """Plan every class; with `sensitivity`, also the coverage under a few looser budgets and quantizations."""
    quality = quality or {}
    plan = FleetPlan([_plan_class(spec, c, cat=cat, quality=quality) for c in spec.classes], spec.budget)
    if sensitivity and plan.coverage < 1.0:
        plan.sensitivity = [
            (label, plan_fleet(s, cat=cat, quality=quality, sensitivity=False).coverage)
            for label, s in _variants(spec, cat)
        ]
    return plan


def _variants(spec: FleetSpec, cat: Catalog) -> list[tuple[str, FleetSpec]]:
    b = spec.budget
    out = []
    for frac in (0.35, 0.5):
        if frac > b.ram_fraction:
            out.append(
                (
                    f"ram_fraction {frac:g}",
                    spec.model_copy(update={"budget": b.model_copy(update={"ram_fraction": frac})}),
                )
            )
    if b.min_decode_tok_s > 0:
        half = b.min_decode_tok_s / 2
        out.append(
            (
                f"min_decode_tok_s {half:g}",
                spec.model_copy(update={"budget": b.model_copy(update={"min_decode_tok_s": half})}),
            )
        )
    lower = [q for q in ("q3_k_m", "q4_g32") if q not in spec.quantizations and q in cat.quantizations]
    if lower:
        out.append(
            (
                f"add quantizations {', '.join(lower)}",
                spec.model_copy(update={"quantizations": [*spec.quantizations, *lower]}),
            )
        )
    if b.context_tokens > 1024:
        out.append(
            ("context_tokens 1024", spec.model_copy(update={"budget": b.model_copy(update={"context_tokens": 1024})}))
        )
    return out

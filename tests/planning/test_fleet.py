from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tierwise.planning.catalog import Catalog
from tierwise.planning.fleet import DeviceClass, FleetBudget, FleetSpec, plan_fleet

from .conftest import REPO


def _example() -> FleetSpec:
    return FleetSpec.model_validate(yaml.safe_load((REPO / "examples" / "fleet.yaml").read_text()))


def test_example_fleet_coverage_and_reasons(cat: Catalog) -> None:
    plan = plan_fleet(_example(), cat=cat)
    assert plan.total == 10_000_000
    assert 0.5 < plan.coverage < 1.0
    by = {c.name: c for c in plan.classes}
    assert by["flagship-16gb"].choice is not None
    assert by["entry-4gb"].choice is None and "ram_fraction" in by["entry-4gb"].reason
    for c in plan.classes:  # every choice respects the budget it was chosen under
        if c.choice:
            assert c.choice.memory_gb <= c.budget_gb and c.choice.decode_tok_s >= 10
    # a bigger RAM share is listed among the changes and covers more devices
    assert dict(plan.sensitivity)["ram_fraction 0.5"] > plan.coverage


def test_coverage_monotone_in_budget(cat: Catalog) -> None:
    spec = _example()
    covs = [
        plan_fleet(spec.model_copy(update={"budget": FleetBudget(ram_fraction=f)}), cat=cat, sensitivity=False).coverage
        for f in (0.1, 0.2, 0.3, 0.5)
    ]
    assert covs == sorted(covs) and covs[0] < covs[-1]


def test_speed_floor_excludes_slow_devices(cat: Catalog) -> None:
    spec = FleetSpec(
        classes=[DeviceClass(name="pi", device="raspberry-pi-5", count=10)],
        candidates=["llama-3.2-1b", "llama-3.2-3b"],
        budget=FleetBudget(min_decode_tok_s=100),
    )
    plan = plan_fleet(spec, cat=cat)
    assert plan.coverage == 0.0 and "tok/s" in plan.classes[0].reason


def test_measured_quality_picks_the_model(cat: Catalog) -> None:
    spec = FleetSpec(
        classes=[DeviceClass(name="big", device="apple-m1-max", count=5)],
        candidates=["llama-3.1-8b", "mistral-7b-v0.2"],
        quantizations=["q4_k_m"],
    )
    quality = {"Llama-3.1-8B-Instruct": 0.30, "Mistral-7B-Instruct-v0.2": 0.40}
    plan = plan_fleet(spec, cat=cat, quality=quality)
    assert plan.classes[0].choice is not None and plan.classes[0].choice.model == "mistral-7b-v0.2"
    assert plan.expected_quality == pytest.approx(0.40)


def test_counts_need_total_for_shares() -> None:
    with pytest.raises(ValueError, match="total_devices"):
        FleetSpec(classes=[DeviceClass(name="x", device="a17-pro", share=0.5)], candidates=["llama-3.2-1b"])


def test_outcome_table_quality(cat: Catalog, outcomes_path: Path) -> None:
    from tierwise.outcomes import load_outcomes

    quality = load_outcomes(outcomes_path).mean_scores()
    assert quality["Phi-3-mini-4k-instruct"] == pytest.approx(0.415, abs=0.005)  # datasets README
    plan = plan_fleet(_example(), cat=cat, quality=quality)
    assert plan.expected_quality is not None and 0.3 < plan.expected_quality < 0.7

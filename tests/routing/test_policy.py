"""Each hard policy excludes exactly what it should, and the whole is fail-closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tierwise.errors import NoTierAvailable, RateLimited
from tierwise.routing.budget import BudgetLedger
from tierwise.routing.policy import apply_policies
from tierwise.routing.router import RouteRequest, TierView
from tierwise.routing.settings import PolicySettings, RouterSettings

DEVICE = TierView("phone", "device", 0.0, 0.0)
EDGE = TierView("edge", "edge", 0.02, 0.06)
CLOUD = TierView("cloud", "cloud", 0.55, 2.19, max_concurrent=8)
TIERS = [DEVICE, EDGE, CLOUD]


def _req(text: str = "What is the capital of France?", **kw: object) -> RouteRequest:
    return RouteRequest(prompt=text, conversation=text, **kw)  # type: ignore[arg-type]


def _allowed(outcome: object) -> list[str]:
    return [t.name for t in outcome.allowed]  # type: ignore[attr-defined]


def test_no_policy_triggers_keeps_every_tier() -> None:
    out = apply_policies(_req(), TIERS, PolicySettings())
    assert _allowed(out) == ["phone", "edge", "cloud"] and out.excluded == {}


def test_personal_data_device_only_and_device_and_edge() -> None:
    req = _req("my email is alice@example.com, summarise my inbox")
    out = apply_policies(req, TIERS, PolicySettings(personal_data="device_only"))
    assert _allowed(out) == ["phone"] and set(out.excluded) == {"edge", "cloud"}
    assert "email" in out.excluded["cloud"] and out.pii_kinds == {"email"}
    out = apply_policies(req, TIERS, PolicySettings(personal_data="device_and_edge"))
    assert _allowed(out) == ["phone", "edge"] and set(out.excluded) == {"cloud"}
    assert _allowed(apply_policies(req, TIERS, PolicySettings(personal_data="off"))) == ["phone", "edge", "cloud"]
    only_phone_kind = PolicySettings(pii_kinds=["phone"])
    assert _allowed(apply_policies(req, TIERS, only_phone_kind)) == ["phone", "edge", "cloud"]


def test_personal_data_in_earlier_messages_counts() -> None:
    req = RouteRequest(prompt="and now?", conversation="I live at 10.1.2.3\nand now?")
    assert _allowed(apply_policies(req, TIERS, PolicySettings())) == ["phone"]


def test_personal_data_fails_closed_when_device_is_down() -> None:
    down = [TierView("phone", "device", 0, 0, healthy=False), EDGE, CLOUD]
    out = apply_policies(_req("call me on +86 138 0013 8000"), down, PolicySettings())
    assert out.allowed == [] and out.excluded["phone"] == "unhealthy or unreachable"
    assert "personal data" in out.excluded["cloud"] and isinstance(out.refusal(), NoTierAvailable)


def test_unhealthy_tiers_out_and_offline_fallback() -> None:
    offline = [DEVICE, EDGE, TierView("cloud", "cloud", 0.55, 2.19, healthy=False)]
    out = apply_policies(_req(), offline, PolicySettings(offline_fallback=True))
    assert _allowed(out) == ["phone", "edge"] and set(out.excluded) == {"cloud"}
    out = apply_policies(_req(), offline, PolicySettings(offline_fallback=False))
    assert out.allowed == [] and "offline_fallback is off" in out.excluded["phone"]


def test_latency_slo_uses_the_given_estimates() -> None:
    est = {"phone": 120.0, "edge": 400.0, "cloud": 950.0}
    out = apply_policies(_req(), TIERS, PolicySettings(ttft_slo_ms=500), ttft_estimates_ms=est)
    assert _allowed(out) == ["phone", "edge"] and "950 ms" in out.excluded["cloud"]
    no_estimate = apply_policies(_req(), TIERS, PolicySettings(ttft_slo_ms=500), ttft_estimates_ms={})
    assert _allowed(no_estimate) == ["phone", "edge", "cloud"]


def test_cloud_saturation_sheds_to_edge_but_never_leaves_nothing() -> None:
    busy = [DEVICE, EDGE, TierView("cloud", "cloud", 0.55, 2.19, in_flight=4)]
    out = apply_policies(_req(), busy, PolicySettings(cloud_max_in_flight=4))
    assert _allowed(out) == ["phone", "edge"] and "saturated" in out.excluded["cloud"]
    assert _allowed(apply_policies(_req(), busy, PolicySettings(cloud_max_in_flight=5))) == ["phone", "edge", "cloud"]
    full = [TierView("cloud", "cloud", 0.55, 2.19, in_flight=9, max_concurrent=8)]
    assert _allowed(apply_policies(_req(), full, PolicySettings())) == ["cloud"]


def test_budget_pushes_to_cheaper_tiers_then_429() -> None:
    settings = PolicySettings(daily_budget_usd=1.0)
    assert _allowed(apply_policies(_req(), TIERS, settings, spent_today_usd=0.5)) == ["phone", "edge", "cloud"]
    # 0.0002 USD left: the cloud estimate (~256 output tokens at 2.19/M ≈ 0.00056) no longer fits
    squeezed = apply_policies(_req(), TIERS, settings, spent_today_usd=0.9998)
    assert _allowed(squeezed) == ["phone", "edge"] and "daily budget" in squeezed.excluded["cloud"]
    spent = apply_policies(_req(), TIERS, settings, spent_today_usd=1.0)
    assert _allowed(spent) == ["phone"]
    paid_only = apply_policies(_req(), [EDGE, CLOUD], settings, spent_today_usd=1.0)
    assert paid_only.allowed == [] and isinstance(paid_only.refusal(), RateLimited)


def test_budget_ledger_per_key_per_utc_day() -> None:
    ledger = BudgetLedger()
    day1 = datetime(2026, 1, 1, 23, 0, tzinfo=UTC)
    ledger.charge("a", 0.25, now=day1)
    ledger.charge("a", 0.5, now=day1)
    ledger.charge("b", 0.1, now=day1)
    assert ledger.spent("a", now=day1) == 0.75 and ledger.spent("b", now=day1) == 0.1
    assert ledger.spent("a", now=day1 + timedelta(hours=2)) == 0.0  # a new UTC day
    with pytest.raises(ValueError):
        ledger.charge("a", -1.0)


def test_settings_forbid_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        PolicySettings(personal_data="device_only", typo_key=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PolicySettings(personal_data="cloud")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RouterSettings(target_cloud_share=1.5)
    assert RouterSettings(model="r.json").model is not None

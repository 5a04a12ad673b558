"""Hard policies, applied before predicted quality: which tiers may serve a request, and why not the others.

Pure functions of the request, the tier views and the inputs the gateway measures (TTFT estimates, the day's
spending); no I/O. Policies run in `POLICIES` order, each over the tiers still allowed, and the result is
fail-closed: personal data with no healthy private tier leaves nothing allowed. Usage::

    outcome = apply_policies(request, views, settings, spent_today_usd=ledger.spent(key),
                             ttft_estimates_ms={"cloud": 950.0})
    if not outcome.allowed: ...   # answer outcome.status_code (429 when the budget ruled tiers out)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from tierwise.routing.decision import CHARS_PER_TOKEN, expected_cost_usd
from tierwise.routing.pii import pii_kinds_found
from tierwise.routing.router import RouteRequest, TierView
from tierwise.routing.settings import PolicySettings

PRIVATE_LOCATIONS = {"device_only": {"device"}, "device_and_edge": {"device", "edge"}}
DEFAULT_OUTPUT_TOKENS = 256


@dataclass(frozen=True)
class PolicyContext:
    """What the policies look at for one request."""

    request: RouteRequest
    settings: PolicySettings
    spent_today_usd: float = 0.0
    ttft_estimates_ms: Mapping[str, float] = field(default_factory=dict)
    all_tiers: Sequence[TierView] = ()

    @cached_property
    def pii_kinds(self) -> set[str]:
        """Kinds of personal data in everything the request would send (scanned once: it is the costly part)."""
        if self.settings.personal_data == "off":
            return set()
        if self.request.pii_kinds is not None:
            return set(self.request.pii_kinds)
        return pii_kinds_found(self.request.conversation or self.request.prompt, kinds=self.settings.pii_kinds)


@dataclass
class PolicyOutcome:
    """Allowed tiers (config order), excluded tier → reason, and which policy excluded each."""

    allowed: list[TierView]
    excluded: dict[str, str]
    excluded_by: dict[str, str]
    pii_kinds: set[str]

    @property
    def status_code(self) -> int:
        """429 when nothing is allowed and the budget ruled out a tier; else 503 when nothing is allowed."""
        if self.allowed:
            return 200
        return 429 if "budget" in self.excluded_by.values() else 503


Policy = Callable[[PolicyContext, list[TierView]], dict[str, str]]


def health_policy(ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
    """Unhealthy tiers are out; with no healthy cloud tier and `offline_fallback` off, every tier is out."""
    out = {t.name: "unhealthy or unreachable" for t in tiers if not t.healthy}
    clouds = [t for t in ctx.all_tiers if t.location == "cloud"]
    if clouds and not any(t.healthy for t in clouds) and not ctx.settings.offline_fallback:
        out.update({t.name: "offline (no healthy cloud tier) and offline_fallback is off" for t in tiers})
    return out


def personal_data_policy(ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
    """Requests with personal data stay on the private tiers (`personal_data` setting)."""
    rule = ctx.settings.personal_data
    if rule == "off":
        return {}
    kinds = ctx.pii_kinds
    if not kinds:
        return {}
    where = " or ".join(sorted(PRIVATE_LOCATIONS[rule]))
    reason = f"personal data ({', '.join(sorted(kinds))}) may only go to {where} tiers"
    return {t.name: reason for t in tiers if t.location not in PRIVATE_LOCATIONS[rule]}


def capability_policy(ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
    """Tiers that would drop part of the request (tools, a response format, images) or cannot fit it are out."""
    unsupported = ctx.request.unsupported
    return {t.name: f"cannot honour {', '.join(unsupported[t.name])}" for t in tiers if unsupported.get(t.name)}


def saturation_policy(ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
    """A tier at its in-flight limit sheds load to the others (only while another tier remains)."""
    out: dict[str, str] = {}
    for t in tiers:
        limits = [x for x in (t.max_concurrent,) if x is not None]
        if t.location == "cloud" and ctx.settings.cloud_max_in_flight is not None:
            limits.append(ctx.settings.cloud_max_in_flight)
        if limits and t.in_flight >= min(limits):
            out[t.name] = f"saturated ({t.in_flight} in flight, limit {min(limits)}): shedding load"
    return out if len(out) < len(tiers) else {}


def latency_policy(ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
    """Tiers whose estimated time to first token is over `ttft_slo_ms` are out (no estimate: kept)."""
    slo = ctx.settings.ttft_slo_ms
    if slo is None:
        return {}
    est = ctx.ttft_estimates_ms
    return {
        t.name: f"estimated TTFT {est[t.name]:.0f} ms is over the {slo:.0f} ms SLO"
        for t in tiers
        if t.name in est and est[t.name] > slo
    }


def budget_policy(ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
    """Tiers whose estimated cost for this request exceeds the key's budget left today are out."""
    budget = ctx.settings.daily_budget_usd
    if budget is None:
        return {}
    left = budget - ctx.spent_today_usd
    text = ctx.request.conversation or ctx.request.prompt
    out_tokens = ctx.request.max_tokens or DEFAULT_OUTPUT_TOKENS
    out: dict[str, str] = {}
    for t in tiers:
        cost = expected_cost_usd(t, input_tokens=len(text) / CHARS_PER_TOKEN, output_tokens=out_tokens)
        if cost > 0 and cost > left:
            out[t.name] = f"daily budget: {max(left, 0.0):.4g} of {budget:g} USD left, this request ~{cost:.3g} USD"
    return out


POLICIES: dict[str, Policy] = {
    "health": health_policy,
    "personal_data": personal_data_policy,
    "capability": capability_policy,
    "saturation": saturation_policy,
    "latency": latency_policy,
    "budget": budget_policy,
}


def apply_policies(
    request: RouteRequest,
    tiers: Sequence[TierView],
    settings: PolicySettings,
    *,
    spent_today_usd: float = 0.0,
    ttft_estimates_ms: Mapping[str, float] | None = None,
) -> PolicyOutcome:
    """Run every policy in order over the still-allowed tiers; see the module docstring."""
    ctx = PolicyContext(request, settings, spent_today_usd, dict(ttft_estimates_ms or {}), tuple(tiers))
    allowed = list(tiers)
    excluded: dict[str, str] = {}
    excluded_by: dict[str, str] = {}
    for name, policy in POLICIES.items():
        for tier, reason in policy(ctx, allowed).items():
            excluded[tier], excluded_by[tier] = reason, name
        allowed = [t for t in allowed if t.name not in excluded]
    return PolicyOutcome(allowed, excluded, excluded_by, ctx.pii_kinds)

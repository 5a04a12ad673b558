"""Hard policies, applied before predicted quality: which tiers may serve a request, and why not the others.

Each policy is an object: which tiers it rules out (a pure function of the request, the tier views and what the
gateway measures — TTFT estimates, the day's spending; no I/O), whether it binds a request that names its tier
(`binds_pinned`: a promise to someone other than the client, or a request the tier would silently mangle), and
which error a refusal on its account is. Policies run in `POLICIES` order, each over the tiers still allowed, and
the result is fail-closed: personal data with no healthy private tier leaves nothing allowed. Usage::

    outcome = apply_policies(request, views, settings, spent_today_usd=ledger.spent(key),
                             ttft_estimates_ms={"cloud": 950.0})
    if not outcome.allowed:
        raise outcome.refusal()            # the error the client gets, with every tier's reason
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from tierwise.costs import cost_usd, expected_tokens
from tierwise.errors import InvalidRequest, NoTierAvailable, PolicyRefused, RateLimited, TierwiseError
from tierwise.routing.pii import pii_kinds_found
from tierwise.routing.router import RouteRequest, TierView
from tierwise.routing.settings import PolicySettings

PRIVATE_LOCATIONS = {"device_only": {"device"}, "device_and_edge": {"device", "edge"}}


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


class Policy:
    """One hard rule. Subclasses set `name` and implement `exclude`; the refusal hooks say how a client is told."""

    name = ""
    binds_pinned = False  # does it refuse a request that names one of the tiers it rules out?
    # when it has ruled out tiers and nothing is left: "any" = its refusal is the answer, "alone" = only when it is
    # the only policy that ruled tiers out, "never" = the generic 503 (trying again later may succeed)
    decides_refusal = "never"

    def exclude(self, ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
        """Tiers among `tiers` (the ones still allowed) this policy rules out, and why."""
        raise NotImplementedError

    def refusal(self, message: str) -> TierwiseError:
        """The error for a request refused on this policy's account."""
        return NoTierAvailable(message)


@dataclass
class PolicyOutcome:
    """Allowed tiers (config order), excluded tier → reason, and which policy excluded each."""

    allowed: list[TierView]
    excluded: dict[str, str]
    excluded_by: dict[str, Policy]
    pii_kinds: set[str]

    def pinned_refusal(self, tier: str) -> TierwiseError | None:
        """The error for a request that names `tier`, when a policy that binds pinned requests ruled it out."""
        policy = self.excluded_by.get(tier)
        if policy is None or not policy.binds_pinned:
            return None
        return policy.refusal(f"tier {tier!r} refused: {self.excluded[tier]}; choose another tier or model='auto'")

    def refusal(self) -> TierwiseError:
        """The error when nothing is allowed: the deciding policy's, else 503 with every tier's reason."""
        detail = "; ".join(f"{name}: {why}" for name, why in self.excluded.items())
        policies = list(dict.fromkeys(self.excluded_by.values()))
        for policy in policies:
            if policy.decides_refusal == "any" or (policy.decides_refusal == "alone" and len(policies) == 1):
                return policy.refusal(f"no tier may serve this request: {detail}")
        return NoTierAvailable(f"no tier may serve this request: {detail}", excluded=self.excluded)


class HealthPolicy(Policy):
    """Unhealthy tiers are out; with no healthy cloud tier and `offline_fallback` off, every tier is out."""

    name = "health"

    def exclude(self, ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
        out = {t.name: "unhealthy or unreachable" for t in tiers if not t.healthy}
        clouds = [t for t in ctx.all_tiers if t.location == "cloud"]
        if clouds and not any(t.healthy for t in clouds) and not ctx.settings.offline_fallback:
            out.update({t.name: "offline (no healthy cloud tier) and offline_fallback is off" for t in tiers})
        return out


class PersonalDataPolicy(Policy):
    """Requests with personal data stay on the private tiers (`personal_data` setting)."""

    name = "personal_data"
    binds_pinned = True

    def refusal(self, message: str) -> TierwiseError:
        return PolicyRefused(message)

    def exclude(self, ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
        rule = ctx.settings.personal_data
        if rule == "off":
            return {}
        kinds = ctx.pii_kinds
        if not kinds:
            return {}
        where = " or ".join(sorted(PRIVATE_LOCATIONS[rule]))
        reason = f"personal data ({', '.join(sorted(kinds))}) may only go to {where} tiers"
        return {t.name: reason for t in tiers if t.location not in PRIVATE_LOCATIONS[rule]}


class CapabilityPolicy(Policy):
    """Tiers that would drop part of the request (tools, a response format, images) or cannot fit it are out."""

    name = "capability"
    binds_pinned = True
    decides_refusal = "alone"

    def refusal(self, message: str) -> TierwiseError:
        return InvalidRequest(message, code="unsupported_capability")

    def exclude(self, ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
        unsupported = ctx.request.unsupported
        return {t.name: f"cannot honour {', '.join(unsupported[t.name])}" for t in tiers if unsupported.get(t.name)}


class SaturationPolicy(Policy):
    """A tier at its in-flight limit sheds load to the others (only while another tier remains)."""

    name = "saturation"

    def exclude(self, ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
        out: dict[str, str] = {}
        for t in tiers:
            limits = [x for x in (t.max_concurrent,) if x is not None]
            if t.location == "cloud" and ctx.settings.cloud_max_in_flight is not None:
                limits.append(ctx.settings.cloud_max_in_flight)
            if limits and t.in_flight >= min(limits):
                out[t.name] = f"saturated ({t.in_flight} in flight, limit {min(limits)}): shedding load"
        return out if len(out) < len(tiers) else {}


class LatencyPolicy(Policy):
    """Tiers whose estimated time to first token is over `ttft_slo_ms` are out (no estimate: kept)."""

    name = "latency"

    def exclude(self, ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
        slo = ctx.settings.ttft_slo_ms
        if slo is None:
            return {}
        est = ctx.ttft_estimates_ms
        return {
            t.name: f"estimated TTFT {est[t.name]:.0f} ms is over the {slo:.0f} ms SLO"
            for t in tiers
            if t.name in est and est[t.name] > slo
        }


class BudgetPolicy(Policy):
    """Tiers whose estimated cost for this request exceeds the key's budget left today are out."""

    name = "budget"
    binds_pinned = True
    decides_refusal = "any"

    def refusal(self, message: str) -> TierwiseError:
        return RateLimited(message, code="daily_budget_exceeded")

    def exclude(self, ctx: PolicyContext, tiers: list[TierView]) -> dict[str, str]:
        budget = ctx.settings.daily_budget_usd
        if budget is None:
            return {}
        left = budget - ctx.spent_today_usd
        tokens = expected_tokens(ctx.request.conversation or ctx.request.prompt, ctx.request.max_tokens)
        out: dict[str, str] = {}
        for t in tiers:
            cost = cost_usd(t, *tokens)
            if cost > 0 and cost > left:
                out[t.name] = f"daily budget: {max(left, 0.0):.4g} of {budget:g} USD left, this request ~{cost:.3g} USD"
        return out


# The order matters: each policy sees only the tiers the ones before it left.
POLICIES: tuple[Policy, ...] = (
    HealthPolicy(), PersonalDataPolicy(), CapabilityPolicy(), SaturationPolicy(), LatencyPolicy(), BudgetPolicy()
)


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
    excluded_by: dict[str, Policy] = {}
    for policy in POLICIES:
        for tier, reason in policy.exclude(ctx, allowed).items():
            excluded[tier], excluded_by[tier] = reason, policy
        allowed = [t for t in allowed if t.name not in excluded]
    return PolicyOutcome(allowed, excluded, excluded_by, ctx.pii_kinds)

"""From a validated request to the ordered tiers to try: hard policies first, then the router.

`model="auto"`: the policies decide which tiers are allowed (fail-closed), the router orders the allowed ones.
`model="<tier>"`: the client pinned a tier; health, latency and load do not overrule that choice, but personal
data and the budget still do (they are promises to someone other than the client).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierwise.errors import ModelNotFound, PolicyRefused, RateLimited
from tierwise.gateway.state import GatewayState
from tierwise.protocol import ChatCompletionRequest
from tierwise.routing.policy import PolicyOutcome, apply_policies
from tierwise.routing.router import NoTierAvailable, RouteRequest

PINNED_POLICIES = {"personal_data", "budget"}


@dataclass
class RoutePlan:
    """Which tiers to try, in order, and the decision to report to the client."""

    order: list[str]
    info: dict[str, Any]
    pinned: bool


def plan_route(state: GatewayState, chat: ChatCompletionRequest, api_key: str | None) -> RoutePlan:
    if chat.model != "auto" and chat.model not in state.tiers:
        known = ", ".join(["auto", *state.tiers])
        raise ModelNotFound(f"model {chat.model!r} does not exist; choose one of: {known}", param="model")
    request = RouteRequest(
        prompt=chat.last_user_text(),
        conversation=chat.conversation_text(),
        api_key=api_key,
        max_tokens=chat.token_limit,
    )
    outcome = apply_policies(
        request,
        state.tier_views(),
        state.settings.policies,
        spent_today_usd=state.ledger.spent(api_key),
        ttft_estimates_ms=state.ttft_estimates_ms(),
    )
    if chat.model != "auto":
        return _pinned(chat.model, outcome)
    if not outcome.allowed:
        _refuse(outcome)
    decision = state.router.decide(request, outcome.allowed)
    decision.excluded = {**outcome.excluded, **decision.excluded}
    info = decision.to_dict()
    if outcome.pii_kinds:
        info["personal_data"] = sorted(outcome.pii_kinds)
    return RoutePlan(decision.order, info, pinned=False)


def _pinned(tier: str, outcome: PolicyOutcome) -> RoutePlan:
    policy = outcome.excluded_by.get(tier)
    if policy in PINNED_POLICIES:
        reason = outcome.excluded[tier]
        if policy == "budget":
            raise RateLimited(f"tier {tier!r} refused: {reason}", code="daily_budget_exceeded")
        raise PolicyRefused(f"tier {tier!r} refused: {reason}")
    info: dict[str, Any] = {"router": "pinned", "tier": tier, "reasons": [f"the request names tier {tier!r}"]}
    if outcome.pii_kinds:
        info["personal_data"] = sorted(outcome.pii_kinds)
    return RoutePlan([tier], info, pinned=True)


def _refuse(outcome: PolicyOutcome) -> None:
    detail = "; ".join(f"{name}: {why}" for name, why in outcome.excluded.items())
    if outcome.status_code == 429:
        raise RateLimited(f"no tier within today's budget: {detail}", code="daily_budget_exceeded")
    raise NoTierAvailable(f"no tier may serve this request: {detail}", excluded=outcome.excluded)

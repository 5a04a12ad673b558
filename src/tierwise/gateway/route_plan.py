"""From a validated request to the ordered tiers to try: hard policies first, then the router.

`model="auto"`: the policies decide which tiers are allowed (fail-closed), the router orders the allowed ones.
`model="<tier>"`: the client pinned a tier; health, latency and load do not overrule that choice, but personal
data and the budget still do (they are promises to someone other than the client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tierwise.errors import InvalidRequest, ModelNotFound, PolicyRefused, RateLimited, TierwiseError
from tierwise.gateway.state import GatewayState
from tierwise.protocol import ChatCompletionRequest
from tierwise.routing.pii import pii_kinds_found
from tierwise.routing.policy import PolicyOutcome, apply_policies
from tierwise.routing.router import NoTierAvailable, RouteRequest


def _unsupported(tier: str, reason: str) -> TierwiseError:
    return InvalidRequest(f"tier {tier!r} {reason}; choose another tier or model='auto'", code="unsupported_capability")


# The policies that bind a pinned request too (promises to someone other than the client, or a request the tier
# would silently mangle), and the error each answers with.
PINNED_POLICIES: dict[str, Callable[[str, str], TierwiseError]] = {
    "personal_data": lambda tier, reason: PolicyRefused(f"tier {tier!r} refused: {reason}"),
    "budget": lambda tier, reason: RateLimited(f"tier {tier!r} refused: {reason}", code="daily_budget_exceeded"),
    "capability": _unsupported,
}


@dataclass
class RoutePlan:
    """Which tiers to try, in order, and the decision to report to the client."""

    order: list[str]
    info: dict[str, Any]
    pinned: bool


# Above this many characters the personal-data scan (≈ 0.3–1 µs a character) runs in a thread: the event loop
# then keeps serving other streams between the scan's GIL slices instead of stalling for the whole scan.
SCAN_IN_THREAD_CHARS = 32 * 1024


async def plan_route(state: GatewayState, chat: ChatCompletionRequest, api_key: str | None) -> RoutePlan:
    if chat.model != "auto" and chat.model not in state.tiers:
        known = ", ".join(["auto", *state.tiers])
        raise ModelNotFound(f"model {chat.model!r} does not exist; choose one of: {known}", param="model")
    conversation = outbound_text(chat)
    policies = state.settings.policies
    pii_kinds = None
    if policies.personal_data != "off" and len(conversation) > SCAN_IN_THREAD_CHARS:
        pii_kinds = frozenset(await asyncio.to_thread(pii_kinds_found, conversation, kinds=policies.pii_kinds))
    request = RouteRequest(
        prompt=chat.last_user_text(),
        conversation=conversation,
        api_key=api_key,
        max_tokens=chat.token_limit,
        unsupported={name: tier.capabilities.missing_for(chat) for name, tier in state.tiers.items()},
        pii_kinds=pii_kinds,
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


def outbound_text(chat: ChatCompletionRequest) -> str:
    """Every key and value the client sent, as text: what any tier's payload is made of (a dialect only renames
    or maps fields), so the personal-data policy sees all of it — contents, `user`, `metadata`, tools, a numeric
    `seed`, `stream_options`, a content part's `type` — not a list of fields chosen for scanning."""
    texts: list[str] = []
    stack: list[Any] = [chat.model_dump(exclude_unset=True)]
    while stack:  # iterative: client JSON may be nested as deep as the parser allows
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            texts.append(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            texts.append(str(value))  # a phone number sent as a JSON number is still a phone number
    return "\n".join(reversed(texts))


def _pinned(tier: str, outcome: PolicyOutcome) -> RoutePlan:
    policy = outcome.excluded_by.get(tier)
    if policy in PINNED_POLICIES:
        raise PINNED_POLICIES[policy](tier, outcome.excluded[tier])
    info: dict[str, Any] = {"router": "pinned", "tier": tier, "reasons": [f"the request names tier {tier!r}"]}
    if outcome.pii_kinds:
        info["personal_data"] = sorted(outcome.pii_kinds)
    return RoutePlan([tier], info, pinned=True)


def _refuse(outcome: PolicyOutcome) -> None:
    detail = "; ".join(f"{name}: {why}" for name, why in outcome.excluded.items())
    if set(outcome.excluded_by.values()) == {"capability"}:
        raise InvalidRequest(f"no tier can serve this request: {detail}", code="unsupported_capability")
    if outcome.status_code == 429:
        raise RateLimited(f"no tier within today's budget: {detail}", code="daily_budget_exceeded")
    raise NoTierAvailable(f"no tier may serve this request: {detail}", excluded=outcome.excluded)

"""The typed record of one request's way through the gateway: what the policies and the router decided, which
tiers were tried and how they failed, the cascade's check, and the cost. `ChatService` fills it in as the request
goes; it is turned into the client's `tierwise` report and response headers in one place, `RequestTrace.report`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tierwise.errors import TierwiseError
from tierwise.routing.policy import PolicyOutcome
from tierwise.routing.router import Decision

if TYPE_CHECKING:
    from tierwise.gateway.cascade import Escalation
    from tierwise.routing.answer_signals import AnswerConfidence
    from tierwise.tiers.base import Tier
    from tierwise.traffic.record import DecisionRecord

TIER_HEADER = "x-tierwise-tier"
COST_HEADER = "x-tierwise-cost-usd"


@dataclass(frozen=True)
class Attempt:
    """A tier tried for this request that did not serve it, and the typed error it failed with."""

    tier: str
    error: TierwiseError

    def report(self) -> dict[str, str]:
        return {"tier": self.tier, "error": self.error.message, "code": self.error.code or "error"}


@dataclass(frozen=True)
class RoutePlan:
    """Which tiers to try, in order, and why: the policies' outcome and the router's choice (None when pinned)."""

    order: list[str]
    policy: PolicyOutcome
    choice: Decision | None
    router_version: str | None = None  # the router file's version, when the router is reloaded from one

    @property
    def pinned(self) -> bool:
        """The client named the tier: health, latency and load do not overrule that (see `ChatService.plan`)."""
        return self.choice is None

    @property
    def excluded(self) -> dict[str, str]:
        """Every tier ruled out, by a policy or the router, and why."""
        return {**self.policy.excluded, **(self.choice.excluded if self.choice else {})}

    @property
    def reasons(self) -> list[str]:
        if self.choice is None:
            return [f"the request names tier {self.order[0]!r}"]
        return list(self.choice.reasons)


@dataclass
class RequestTrace:
    """What happened to one request, from plan to charge."""

    request_id: str | None
    plan: RoutePlan
    attempts: list[Attempt] = field(default_factory=list)
    tier: Tier | None = None  # the tier whose answer the client gets
    escalation: Escalation | None = None
    escalated_from: str | None = None  # the tier whose answer the cascade replaced
    cost_usd: float | None = None  # every call's cost, the cascade's first answer included
    ttft_s: float | None = None  # until the served tier's first chunk
    usage: dict[str, Any] | None = None  # the served answer's token counts
    started: float = field(default_factory=time.perf_counter)

    def add_cost(self, usd: float) -> None:
        self.cost_usd = usd if self.cost_usd is None else self.cost_usd + usd

    @property
    def reasons(self) -> list[str]:
        """Why this tier answered: the plan's reasons, then the failover and the cascade's step, if any."""
        reasons = self.plan.reasons
        if self.attempts and self.tier is not None:
            reasons = [*reasons, f"failed over to {self.tier.name!r}"]
        if self.escalation is not None and self.escalated_from is not None:
            reasons = [*reasons, self.escalation.reason]
        return reasons

    def report(self) -> dict[str, Any]:
        """The response's `tierwise` object: the one place the decision is serialised."""
        plan, choice = self.plan, self.plan.choice
        # the router's own fields as it serialises them (fallbacks, predicted quality, expected cost)
        out: dict[str, Any] = choice.to_dict() if choice is not None else {"router": "pinned"}
        if self.tier is not None:
            out |= {"tier": self.tier.name, "location": self.tier.location, "model": self.tier.model_name}
        out.pop("excluded", None)
        if plan.excluded:
            out["excluded"] = plan.excluded
        if plan.policy.pii_kinds:
            out["personal_data"] = sorted(plan.policy.pii_kinds)
        if self.attempts:
            out["failover"] = [a.report() for a in self.attempts]
        if self.escalation is not None:
            out["cascade"] = self.escalation.report()
        out["reasons"] = self.reasons
        if plan.router_version is not None:
            out["router_version"] = plan.router_version
        out["request_id"] = self.request_id
        if self.cost_usd is not None:
            out["cost_usd"] = self.cost_usd
        return out

    def headers(self) -> dict[str, str]:
        headers = {TIER_HEADER: self.tier.name} if self.tier is not None else {}
        if self.attempts:
            headers["x-tierwise-failover"] = ",".join(a.tier for a in self.attempts)
        if self.escalated_from is not None:
            headers["x-tierwise-escalated-from"] = self.escalated_from
        if self.cost_usd is not None:
            headers[COST_HEADER] = f"{self.cost_usd:.8g}"
        return headers

    def decision_record(
        self, *, key_hash: str | None, status: str, confidence: AnswerConfidence | None = None,
        prompt: str | None = None, answer: str | None = None,
    ) -> DecisionRecord:
        """The decision log's row for this request (`traffic/record.py`); the log decides whether text is kept."""
        from tierwise.traffic.record import DecisionRecord

        plan, choice, usage = self.plan, self.plan.choice, self.usage or {}
        escalation = self.escalation
        return DecisionRecord(
            request_id=self.request_id or "", time=time.time(), key_hash=key_hash,
            tier=self.tier.name if self.tier else "", model=self.tier.model_name if self.tier else "",
            router=choice.router if choice else "pinned", router_version=plan.router_version,
            reasons=self.reasons, allowed=[t.name for t in plan.policy.allowed],
            excluded=plan.excluded, predicted_quality=choice.predicted_quality if choice else None,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            ttft_ms=None if self.ttft_s is None else self.ttft_s * 1000,
            prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
            cost_usd=self.cost_usd,
            cascade=None if escalation is None else ("escalated" if self.escalated_from else "kept"),
            cascade_p_good=None if escalation is None else escalation.p_good,
            escalated_to=self.tier.name if self.escalated_from and self.tier else None,
            # personal data found: the policy kept it on private tiers, so its text stays out of a log elsewhere
            confidence=confidence, device_only=bool(plan.policy.pii_kinds),
            status=status, prompt=prompt, answer=answer,
        )

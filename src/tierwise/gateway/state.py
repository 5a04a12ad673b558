"""What the gateway holds while it runs (on `app.state.tierwise`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tierwise.config import Settings
from tierwise.gateway.auth import ApiKeyAuth
from tierwise.gateway.dispatch import Dispatcher
from tierwise.gateway.health import TierHealthTracker
from tierwise.gateway.metrics import GatewayMetrics
from tierwise.routing.budget import SpendLedger
from tierwise.routing.cascade import CascadeCheck
from tierwise.routing.router import Router, TierView
from tierwise.tiers.base import Tier, TierHealth

if TYPE_CHECKING:
    from tierwise.gateway.request_scope import RequestScope
    from tierwise.protocol import ChatCompletionRequest
    from tierwise.routing.reload import RouterReloader
    from tierwise.state import RateLimiter, SharedStateStore
    from tierwise.state.budget_guard import BudgetGuard
    from tierwise.traffic.log import DecisionLog

log = logging.getLogger("tierwise.gateway")


@dataclass
class GatewayState:
    settings: Settings
    tiers: dict[str, Tier]
    health: dict[str, TierHealthTracker]
    dispatcher: Dispatcher
    router: Router
    metrics: GatewayMetrics
    auth: ApiKeyAuth
    ledger: SpendLedger  # in-process, or `shared.ledger` when budget and tier health are shared through Redis
    cascade: CascadeCheck | None = None
    shared: SharedStateStore | None = None  # with gateway.state_url; synced in the background while serving
    rate_limits: RateLimiter | None = None  # policies.rate_limits, admitted at each request's entry
    budget_guard: BudgetGuard | None = None  # with policies.daily_budget_usd: budget reserved at each entry
    last_probe: dict[str, TierHealth] = field(default_factory=dict)  # tier -> its latest probe's result
    router_reloader: RouterReloader | None = None  # a router file watched and reloaded while serving
    decision_log: DecisionLog | None = None  # router.log: one record per routed request

    def __post_init__(self) -> None:
        # read at each scrape: a tier marked down by a failed request, or by another replica through Redis, shows
        # at once, not only after this replica's next probe
        for name, tracker in self.health.items():
            self.metrics.tier_up.labels(name).set_function(tracker.available)  # True/False → 1.0/0.0

    def current_router(self) -> tuple[Router, str | None]:
        """The router deciding now, and the version of its file (None when it has no file to reload)."""
        if self.router_reloader is not None:
            return self.router_reloader.current()
        return self.router, None

    async def admit(self, chat: ChatCompletionRequest, api_key: str | None) -> None:
        """Count the request against its key's rate limits (`policies.rate_limits`; RateLimited, a 429, when
        over) and reserve its expected cost from the key's budget. Called once per request, before routing."""
        if self.rate_limits is not None:
            from tierwise.state.rate_limits import estimated_tokens

            await self.rate_limits.admit(api_key, estimated_tokens(chat))
        budget = self.settings.policies.daily_budget_usd
        if self.budget_guard is not None and budget is not None:
            from tierwise.gateway.request_scope import current_scope
            from tierwise.state.budget_guard import expected_costs

            views = [v for v in self.tier_views() if chat.model in ("auto", v.name)]
            await self.budget_guard.reserve(current_scope(), api_key, expected_costs(chat, views), budget_usd=budget)

    def settle_usage(self, usage: Mapping[str, Any]) -> None:
        """A tier's answer was charged: correct the admitted token estimate with its real usage, and release the
        budget reserved for it (sent to Redis with the charge)."""
        if self.rate_limits is not None:
            self.rate_limits.settle_current(usage)
        if self.budget_guard is not None:
            from tierwise.gateway.request_scope import current_scope

            self.budget_guard.release(current_scope())

    def end_request(self, scope: RequestScope) -> None:
        """The request is over (answered, refused or failed): release what it still holds."""
        if self.budget_guard is not None:
            self.budget_guard.release(scope)

    def ttft_estimates_ms(self) -> dict[str, float]:
        """Measured time to first token plus the configured network round trip, for tiers measured so far."""
        estimates = {}
        for name, tracker in self.health.items():
            if tracker.ttft_ms is not None:
                rtt = getattr(self.tiers[name].config, "network_rtt_ms", 0.0)
                estimates[name] = tracker.ttft_ms + rtt
        return estimates

    def tier_views(self) -> list[TierView]:
        """The tiers as a router sees them, in config order.

        With shared state, `in_flight` is every live replica's count together (this one's live, the others' as
        of the last sync), and `max_concurrent` — a per-replica limit — is multiplied by the live replicas, so
        the saturation policy compares the fleet's load with the fleet's capacity (and with
        `cloud_max_in_flight`, a limit for the whole fleet)."""
        shared = self.shared.in_flight if self.shared is not None else None
        replicas = shared.replicas() if shared is not None else 1
        views = []
        for name, tier in self.tiers.items():
            tracker = self.health[name]
            views.append(
                TierView(
                    name=name,
                    location=tier.location,
                    input_per_mtok=tier.cost.input_per_mtok,
                    output_per_mtok=tier.cost.output_per_mtok,
                    healthy=tracker.available(),
                    in_flight=tracker.in_flight + (shared.others(name) if shared is not None else 0),
                    max_concurrent=tier.config.max_concurrent * replicas,
                )
            )
        return views

    async def probe(self) -> None:
        """Probe every idle tier at once; probes feed the health trackers (a failed probe marks a tier down).

        A tier with requests in flight is not probed: its requests already report its health, and a probe can
        disturb serving (llama.cpp's server ends a running stream early when another request arrives)."""
        names = list(self.tiers)
        results = await asyncio.gather(*(self._probe_one(n) for n in names))
        for name, result in zip(names, results, strict=True):
            tracker = self.health[name]
            if result is None:
                result = TierHealth(True, f"serving {tracker.in_flight} request(s): not probed")
            elif result.healthy:
                if tracker.is_down:
                    log.info("tier %s is back", name)
                tracker.record_success()
            elif not tracker.is_down or tracker.available():
                tracker.record_failure(result.detail, immediately=True)
            self.last_probe[name] = result

    def health_report(self, *, detailed: bool) -> dict[str, dict[str, object]]:
        """Each tier's health as the probes and requests have left it (no upstream call is made for this).
        Without `detailed` only availability: error texts and latencies are not for anonymous callers."""
        report: dict[str, dict[str, object]] = {}
        for name, tracker in self.health.items():
            # a tier in cooldown or half-open is down for a health check, even though a request may try it
            entry: dict[str, object] = {"available": not tracker.is_down}
            probe = self.last_probe.get(name)
            if detailed:
                entry |= {
                    "healthy": probe.healthy if probe else None,
                    "state": tracker.describe(),
                    "detail": probe.detail if probe else "not probed yet",
                    "latency_ms": None if probe is None or probe.latency_ms is None else round(probe.latency_ms, 2),
                    "location": self.tiers[name].location,
                }
            report[name] = entry
        return report

    async def _probe_one(self, name: str) -> TierHealth | None:
        if self.health[name].in_flight > 0:
            return None
        return await self.tiers[name].health()

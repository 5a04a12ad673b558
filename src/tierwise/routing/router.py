"""The router interface: given a request and the tiers, decide which tier serves it, and say why.

The gateway depends only on `Router.decide`; concrete routers (the placeholder cheapest-healthy rule here, the
learned router trained from outcome logs) live behind it and are chosen by name in a registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tierwise.errors import NoTierAvailable

if TYPE_CHECKING:
    from tierwise.routing.settings import RouterSettings


@dataclass(frozen=True)
class TierView:
    """What a router may know about one tier at decision time (no backend details)."""

    name: str
    location: str  # "device" | "edge" | "cloud"
    input_per_mtok: float  # USD per 1M input tokens
    output_per_mtok: float  # USD per 1M output tokens
    healthy: bool = True
    in_flight: int = 0
    max_concurrent: int | None = None

    @property
    def price_per_mtok(self) -> float:
        """A single price to rank tiers by: input and output weighted equally."""
        return self.input_per_mtok + self.output_per_mtok


@dataclass(frozen=True)
class RouteRequest:
    """The parts of a chat request a router looks at."""

    prompt: str  # the last user message: what is being asked now
    conversation: str  # every message's text, joined: what would leave the device
    api_key: str | None = None
    max_tokens: int | None = None
    # tier name -> what the request needs that the tier cannot honour (tools, a JSON schema, images, context)
    unsupported: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # kinds of personal data in `conversation`, when the caller scanned it already (off the event loop)
    pii_kinds: frozenset[str] | None = None


@dataclass
class Decision:
    """Which tier serves a request, the tiers to fail over to, and the reasons for both."""

    tier: str
    fallbacks: list[str]
    reasons: list[str]
    excluded: dict[str, str] = field(default_factory=dict)  # tier name -> why it may not serve
    predicted_quality: dict[str, float] | None = None
    expected_cost_usd: dict[str, float] | None = None
    router: str = ""

    @property
    def order(self) -> list[str]:
        return [self.tier, *self.fallbacks]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "router": self.router,
            "tier": self.tier,
            "fallbacks": self.fallbacks,
            "reasons": self.reasons,
        }
        if self.excluded:
            out["excluded"] = self.excluded
        if self.predicted_quality is not None:
            out["predicted_quality"] = {k: round(v, 4) for k, v in self.predicted_quality.items()}
        if self.expected_cost_usd is not None:
            out["expected_cost_usd"] = {k: float(f"{v:.3g}") for k, v in self.expected_cost_usd.items()}
        return out


class Router(ABC):
    """Chooses a tier for a request among the tiers the policies allow."""

    name: str = "router"

    @abstractmethod
    def decide(self, request: RouteRequest, tiers: Sequence[TierView]) -> Decision:
        """Return the decision; raise `NoTierAvailable` when no tier may serve the request."""


class CheapestHealthyRouter(Router):
    """Placeholder rule until a learned router is configured: the cheapest healthy tier serves.

    Ties keep config order. Unhealthy tiers are not dropped: they go last, so a request still has somewhere to
    go when health information is stale.
    """

    name = "cheapest-healthy"

    def decide(self, request: RouteRequest, tiers: Sequence[TierView]) -> Decision:
        if not tiers:
            raise NoTierAvailable("no tier is configured", excluded={})
        ranked = sorted(enumerate(tiers), key=lambda it: (not it[1].healthy, it[1].price_per_mtok, it[0]))
        order = [t for _, t in ranked]
        chosen = order[0]
        reason = (
            f"cheapest healthy tier ({chosen.price_per_mtok:g} USD/Mtok in+out)"
            if chosen.healthy
            else "no tier reports healthy; trying the cheapest"
        )
        return Decision(
            tier=chosen.name,
            fallbacks=[t.name for t in order[1:]],
            reasons=[reason],
            router=self.name,
        )


RouterFactory = Callable[["RouterSettings"], Router]


def _learned(settings: RouterSettings) -> Router:
    from tierwise.routing.learned import LearnedRouter  # numpy model code: only when configured

    return LearnedRouter.from_settings(settings)


# `router.name` in the config picks one; the gateway builds its router only through `build_router`.
ROUTERS: dict[str, RouterFactory] = {
    CheapestHealthyRouter.name: lambda settings: CheapestHealthyRouter(),
    "learned": _learned,
}


def build_router(settings: RouterSettings) -> Router:
    """The configured router: `router.name`, else the learned router when a router file is set, else the
    cheapest-healthy rule."""
    name = settings.name or ("learned" if settings.model is not None else CheapestHealthyRouter.name)
    return ROUTERS[name](settings)

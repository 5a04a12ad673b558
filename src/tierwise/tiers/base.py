"""The `Tier` interface: everything the gateway and the router know about a backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierwise.errors import TierwiseError, UpstreamError

if TYPE_CHECKING:
    from tierwise.config import CostConfig, TierConfig
    from tierwise.protocol import ChatCompletionRequest

Chunk = dict[str, Any]  # one chat.completion.chunk in the OpenAI wire format


class TierUnavailable(TierwiseError):
    """The tier failed before sending anything (refused, timed out, 5xx): another tier may serve instead."""

    status = 503
    error_type = "service_unavailable"
    code = "tier_unavailable"


class TierStreamBroken(UpstreamError):
    """The tier failed after it had started answering; what was sent cannot be taken back."""

    code = "stream_broken"


class TierRejected(TierwiseError):
    """The tier refused the request itself (an upstream 4xx): the client's request, not the tier, is at fault."""

    error_type = "invalid_request_error"
    code = "upstream_rejected"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TierHealth:
    healthy: bool
    detail: str = ""
    latency_ms: float | None = None


class Tier(ABC):
    """A backend that answers chat requests.

    Usage::

        tier = build_tier(config)
        await tier.start()
        async for chunk in tier.generate(request):
            ...
        await tier.aclose()
    """

    def __init__(self, config: TierConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def location(self) -> str:
        return self.config.location

    @property
    def cost(self) -> CostConfig:
        return self.config.cost

    @property
    def model_name(self) -> str:
        """The model behind this tier, as its backend calls it."""
        return self.name

    async def start(self) -> None:  # noqa: B027 - optional hook, most tiers need nothing
        """Acquire resources (load a model, open connections). Called once before serving."""

    @abstractmethod
    def generate(self, request: ChatCompletionRequest) -> AsyncIterator[Chunk]:
        """Stream the answer as chat.completion.chunk dicts.

        Raise `TierUnavailable` if nothing could be produced (before the first chunk), `TierStreamBroken` if the
        answer broke off after chunks were yielded, `TierRejected` if the backend refused the request itself.
        A final chunk with empty `choices` and a `usage` object reports token counts when known.
        """

    @abstractmethod
    async def health(self) -> TierHealth:
        """Probe the tier cheaply; never raises."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What serving this many tokens costs on this tier."""
        return (prompt_tokens * self.cost.input_per_mtok + completion_tokens * self.cost.output_per_mtok) / 1e6

"""The `Tier` interface: everything the gateway and the router know about a backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tierwise.errors import TierwiseError, UpstreamError
from tierwise.tiers.capabilities import Capabilities

if TYPE_CHECKING:
    from tierwise.config import CostConfig, TierConfig
    from tierwise.protocol import ChatCompletionRequest, TextCompletionRequest

Chunk = dict[str, Any]  # one chat.completion.chunk (or, from `complete_text`, text_completion) in the wire format


class TierUnavailable(TierwiseError):
    """The tier failed before sending anything (refused, timed out, 5xx): another tier may serve instead."""

    status = 503
    error_type = "service_unavailable"
    code = "tier_unavailable"


class TierRequestFailed(TierUnavailable):
    """The tier answered 5xx to this request while its health probe passes: most likely the request broke it
    (llama.cpp's server answers 500 to what it cannot handle). Another tier may still serve it, but the failure
    does not count against this tier's health; if no tier serves it the client gets a 422."""

    status = 422
    error_type = "invalid_request_error"
    code = "upstream_request_failed"


class TierBusy(TierUnavailable):
    """The tier's admission queue is full (or a slot did not free up in time): another tier may serve; this is
    load, not a fault, so it does not count against the tier's health. Answered with 503 and Retry-After."""

    code = "tier_busy"


class TierRateLimited(TierUnavailable):
    """The tier answered 429: another tier may serve; if none does, the client gets 429 with its Retry-After."""

    status = 429
    error_type = "rate_limit_error"
    code = "upstream_rate_limited"


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
        """The model behind this tier, as answers name it (every chunk's `model`)."""
        return self.name

    def default_capabilities(self) -> Capabilities:
        """What this backend can honour when the config says nothing; backends override this."""
        return Capabilities()

    @cached_property
    def capabilities(self) -> Capabilities:
        """The backend's defaults with the config's `capabilities:` overrides applied."""
        overrides = {k: v for k, v in self.config.capabilities.model_dump().items() if v is not None}
        return replace(self.default_capabilities(), **overrides)

    async def start(self) -> None:  # noqa: B027 - optional hook, most tiers need nothing
        """Acquire resources (load a model, open connections). Called once before serving."""

    @abstractmethod
    def generate(self, request: ChatCompletionRequest) -> AsyncIterator[Chunk]:
        """Stream the answer as chat.completion.chunk dicts.

        Raise `TierUnavailable` if nothing could be produced (before the first chunk), `TierStreamBroken` if the
        answer broke off after chunks were yielded, `TierRejected` if the backend refused the request itself.
        A final chunk with empty `choices` and a `usage` object reports token counts when known.
        """

    async def complete_text(self, request: TextCompletionRequest) -> AsyncIterator[Chunk]:
        """Stream a legacy text completion of `request.prompt` (no chat template) as `text_completion` chunks
        (`choices[i].text`), ending with a chunk with empty `choices` and `usage`; raises as `generate` does.
        Only called on tiers whose capabilities include `text_completion`."""
        raise TierRejected(f"tier {self.name!r} does not serve text completions", status=400)
        yield {}  # pragma: no cover - makes this an async generator: it raises on the first chunk, like a tier

    def answer(self, request: ChatCompletionRequest) -> AsyncIterator[Chunk]:
        """What the dispatcher streams for `request`: the text completion it stands for, or the chat answer."""
        text = request.text_completion
        return self.complete_text(text) if text is not None else self.generate(request)

    async def embed(self, texts: list[str], *, dimensions: int | None = None) -> tuple[list[list[float]], int]:
        """Embedding vectors for `texts`, and the prompt tokens they cost. Only called on tiers that embed
        (`embedding_model` set); raises `TierUnavailable` / `TierRejected` like `generate`."""
        raise TierRejected(f"tier {self.name!r} does not embed", status=400)

    @property
    def embedding_model(self) -> str | None:
        """The model this tier embeds with; None: `/v1/embeddings` is never forwarded to it."""
        return None

    @abstractmethod
    async def health(self) -> TierHealth:
        """Probe the tier cheaply; never raises."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What serving this many tokens costs on this tier."""
        return (prompt_tokens * self.cost.input_per_mtok + completion_tokens * self.cost.output_per_mtok) / 1e6

"""The `Tier` interface: everything the gateway and the router know about a backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tierwise.costs import cost_usd
from tierwise.errors import (  # re-exported: what a tier may raise, named where the interface is
    TierBusy,
    TierRateLimited,
    TierRejected,
    TierRequestFailed,
    TierStreamBroken,
    TierUnavailable,
)
from tierwise.tiers.capabilities import Capabilities

if TYPE_CHECKING:
    from tierwise.config import CostConfig, TierConfig
    from tierwise.protocol import ChatCompletionRequest, TextCompletionRequest
    from tierwise.routing.answer_signals import AnswerConfidence

__all__ = [
    "Chunk", "Tier", "TierBusy", "TierHealth", "TierRateLimited", "TierRejected", "TierRequestFailed",
    "TierStreamBroken", "TierUnavailable",
]

Chunk = dict[str, Any]  # one chat.completion.chunk (or, from `complete_text`, text_completion) in the wire format


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

    def confidence(self, answer_id: str) -> AnswerConfidence | None:
        """How sure the model was of the answer with this id (the id of the tier's own chunks), from its token
        logprobs; None when the tier does not compute it (only the in-process llama.cpp tier does)."""
        return None

    @abstractmethod
    async def health(self) -> TierHealth:
        """Probe the tier cheaply; never raises."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What serving this many tokens costs on this tier."""
        return cost_usd(self.cost, prompt_tokens, completion_tokens)

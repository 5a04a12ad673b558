"""`ScriptedTier`: an in-process tier that answers from a script — no server, no model — so tests can drive the
gateway's `ChatService` directly (failover, policies, the cascade, charging) without sockets or threads.

    tier = ScriptedTier(scripted_config("edge", "edge"), pieces=["4"], usage=(20, 1))
    tier.fail_with(TierUnavailable("down"))          # the next request fails before its first chunk
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from tierwise.config import OpenAITierConfig
from tierwise.errors import TierwiseError
from tierwise.protocol import ChatCompletionRequest
from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.tiers.base import Chunk, Tier, TierHealth

_ANSWER_ID = "chatcmpl-scripted"  # the id of every scripted answer's chunks


def scripted_config(name: str, location: str, **fields: Any) -> OpenAITierConfig:
    """A tier config for a scripted tier (an `openai` tier whose server is never called)."""
    return OpenAITierConfig(name=name, location=location, backend="openai",  # type: ignore[arg-type]
                            base_url="http://127.0.0.1:9/v1", model=f"{name}-model", **fields)


class ScriptedTier(Tier):
    """Answers every request with `pieces` (one chunk each), a finishing chunk and a usage chunk, unless told to
    fail: `fail_with(err, after=k)` makes the next requests raise `err` after `k` chunks (0: before the first)."""

    def __init__(
        self, config: OpenAITierConfig, *, pieces: Sequence[str] = ("hello",), usage: tuple[int, int] | None = (10, 2)
    ) -> None:
        super().__init__(config)
        self.pieces = list(pieces)
        self.usage = usage
        self.healthy = True
        self.answer_confidence: AnswerConfidence | None = None  # what `confidence()` reports for its answers
        self.received: list[ChatCompletionRequest] = []
        self._failure: tuple[TierwiseError, int] | None = None

    @property
    def model_name(self) -> str:
        return f"{self.name}-model"

    def fail_with(self, error: TierwiseError | None, *, after: int = 0) -> None:
        self._failure = None if error is None else (error, after)

    async def generate(self, request: ChatCompletionRequest) -> AsyncIterator[Chunk]:
        self.received.append(request)
        for i, piece in enumerate(self.pieces):
            self._maybe_fail(i)
            yield _chunk({"content": piece}, None)
        self._maybe_fail(len(self.pieces))
        yield _chunk({}, "stop")
        if self.usage is not None:
            prompt, completion = self.usage
            yield {"object": "chat.completion.chunk", "choices": [],
                   "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}}

    def _maybe_fail(self, index: int) -> None:
        if self._failure is not None and self._failure[1] == index:
            raise self._failure[0]

    async def health(self) -> TierHealth:
        return TierHealth(self.healthy, "scripted")

    def confidence(self, answer_id: str) -> AnswerConfidence | None:
        return self.answer_confidence if answer_id == _ANSWER_ID else None


def _chunk(delta: dict[str, Any], finish_reason: str | None) -> Chunk:
    return {"id": _ANSWER_ID, "object": "chat.completion.chunk", "created": 0, "model": "upstream-name",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

"""Token usage for answers whose server reports none (llama.cpp's servers ignore `stream_options` in streams).

Completion tokens are counted exactly (one per content chunk). The prompt is estimated without a tokenizer, and the
part a text estimate cannot see — the chat template, and the default system prompt some templates add (SmolLM2's
adds ~30 tokens) — is learned from the same tier's answers that do carry usage: the largest shortfall of the
estimate among recent ones is added, so a budget is over- rather than under-charged. Usage::

    overhead = PromptOverhead()
    overhead.observe(request, usage["prompt_tokens"])      # from every answer with real usage
    chunk = overhead.usage_chunk(request, completion_tokens=12)
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from tierwise.tiers.capabilities import estimated_prompt_tokens

if TYPE_CHECKING:
    from tierwise.protocol import ChatCompletionRequest
    from tierwise.tiers.base import Chunk

_RECENT = 32  # observations kept: recent enough to follow a model swap behind the same URL


class PromptOverhead:
    """What one tier's prompts cost beyond their text estimate, learned from its answers with real usage."""

    def __init__(self) -> None:
        self._shortfalls: collections.deque[int] = collections.deque(maxlen=_RECENT)

    def observe(self, request: ChatCompletionRequest, prompt_tokens: int) -> None:
        self._shortfalls.append(prompt_tokens - estimated_prompt_tokens(request))

    @property
    def tokens(self) -> int:
        return max(0, max(self._shortfalls, default=0))

    def estimate(self, request: ChatCompletionRequest) -> int:
        return estimated_prompt_tokens(request) + self.tokens

    def usage_chunk(self, request: ChatCompletionRequest, *, completion_tokens: int) -> Chunk:
        """The last chunk's usage, flagged `estimated` (with how many tokens were learned as template overhead)."""
        prompt_tokens = self.estimate(request)
        return {
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "estimated": True,
            },
        }

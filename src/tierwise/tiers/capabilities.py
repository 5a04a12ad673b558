"""What a tier can do, and what a request needs: so that `auto` never sends a request where part of it is dropped.

A tier's capabilities are its backend's defaults (`Tier.default_capabilities`), overridden by the config's
`capabilities:` section. Usage::

    missing = tier.capabilities.missing_for(request)   # e.g. ["tools"]; empty when the tier can serve it
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tierwise.costs import CHARS_PER_TOKEN

if TYPE_CHECKING:
    from tierwise.protocol import ChatCompletionRequest

# The prompt a chat template adds around each message (role markers, separators): a few tokens per message.
TEMPLATE_TOKENS_PER_MESSAGE = 8


@dataclass(frozen=True)
class Capabilities:
    """What a tier can honour. `context_length` None: unknown (not checked).

    `text_completion`: legacy `/v1/completions` on a raw prompt; `choices`: `n` > 1; `reasoning`: the model
    reasons and its backend takes `reasoning_effort` / a thinking budget (tiers/translate.py maps them);
    `logprobs`: token logprobs in the answer (the device tier only with `logits_all`)."""

    tools: bool = True
    response_format: bool = True  # json_object and json_schema
    images: bool = False
    context_length: int | None = None
    text_completion: bool = False
    choices: bool = False
    reasoning: bool = False
    logprobs: bool = True

    def missing_for(self, request: ChatCompletionRequest) -> list[str]:
        """The capabilities `request` needs that this tier lacks, named as clients know them."""
        missing = []
        if request.uses_tools and not self.tools:
            missing.append("tools")
        if request.response_format_type in {"json_object", "json_schema"} and not self.response_format:
            missing.append(f"response_format {request.response_format_type}")
        if request.has_media and not self.images:
            missing.append("images")
        if request.text_completion is not None and not self.text_completion:
            missing.append("text completions (/v1/completions)")
        if request.choices_wanted > 1 and not self.choices:
            missing.append(f"n={request.choices_wanted} (several choices)")
        if request.wants_logprobs and not self.logprobs:
            missing.append("logprobs")
        if request.wants_reasoning and not self.reasoning:
            missing.append("reasoning (reasoning_effort, thinking_token_budget)")
        if self.context_length is not None:
            needed = estimated_prompt_tokens(request) + (request.token_limit or 1)
            if needed > self.context_length:
                missing.append(f"context length ({needed} tokens needed, {self.context_length} available)")
        return missing


def estimated_prompt_tokens(request: ChatCompletionRequest) -> int:
    """A tokenizer-free estimate of a request's prompt: text at `chars_per_token`, plus each message's template."""
    text_tokens = round(len(request.conversation_text()) / CHARS_PER_TOKEN)
    return text_tokens + TEMPLATE_TOKENS_PER_MESSAGE * len(request.messages)

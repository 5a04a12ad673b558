"""Token and cost estimates: the one place for the rules of thumb and for the price arithmetic.

Every cost in tierwise — a policy's estimate before a request, the router's expected cost, what a served request
is charged — is `cost_usd(prices, input_tokens, output_tokens)`; only the token counts differ (estimated from text
here, or counted by the tier)."""

from __future__ import annotations

from typing import Protocol

CHARS_PER_TOKEN = 4.0  # the usual rule of thumb for English text
DEFAULT_OUTPUT_TOKENS = 256  # assumed answer length when a request sets no limit and no outcome data says more


class Prices(Protocol):
    """USD per million tokens (a tier's `CostConfig`, a router's `TierView`)."""

    @property
    def input_per_mtok(self) -> float: ...

    @property
    def output_per_mtok(self) -> float: ...


def cost_usd(prices: Prices, input_tokens: float, output_tokens: float) -> float:
    """USD for this many tokens at these prices."""
    return (input_tokens * prices.input_per_mtok + output_tokens * prices.output_per_mtok) / 1e6


def estimated_tokens(text: str) -> float:
    """Tokens in `text` by the rule of thumb (before a tier has counted them)."""
    return len(text) / CHARS_PER_TOKEN


def expected_tokens(text: str, token_limit: int | None) -> tuple[float, float]:
    """(input, output) tokens a request is expected to use, before a tier has counted them: its text by the rule
    of thumb, its output limit or the default answer length. The budget policy, the budget reservation and the
    rate limits all estimate so."""
    return estimated_tokens(text), float(token_limit or DEFAULT_OUTPUT_TOKENS)

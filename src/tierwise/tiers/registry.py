"""Backend name → Tier class. Add a backend by adding an entry here and a config model in config.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tierwise.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.config import TierConfig
    from tierwise.tiers.base import Tier


def _llama_cpp(config: TierConfig) -> Tier:
    from tierwise.tiers.llama_cpp import LlamaCppTier

    return LlamaCppTier(config)  # type: ignore[arg-type]


def _openai(config: TierConfig) -> Tier:
    from tierwise.tiers.openai_http import OpenAIHTTPTier

    return OpenAIHTTPTier(config)  # type: ignore[arg-type]


def _llama_cpp_server(config: TierConfig) -> Tier:
    from tierwise.tiers.llama_cpp_server import LlamaCppServerTier

    return LlamaCppServerTier(config)  # type: ignore[arg-type]


BACKENDS: dict[str, Callable[[TierConfig], Tier]] = {
    "llama_cpp": _llama_cpp,
    "openai": _openai,
    "llama_cpp_server": _llama_cpp_server,
}


def build_tier(config: TierConfig) -> Tier:
    """The Tier for a validated tier config."""
    try:
        factory = BACKENDS[config.backend]
    except KeyError:
        raise ConfigError(
            f"tier {config.name!r}: unknown backend {config.backend!r}; known: {', '.join(sorted(BACKENDS))}"
        ) from None
    return factory(config)

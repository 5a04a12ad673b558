"""tierwise: one OpenAI-compatible gateway in front of device, edge and cloud LLM tiers.

Usage::

    from tierwise import create_app, load_settings
    app = create_app(load_settings("tiers.yaml"))

Names are imported on first use: a process that needs one module (the device tier's worker process, a CLI
command) does not pay for importing the gateway's web stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tierwise.config import Settings, load_settings, settings_from_dict
    from tierwise.errors import ConfigError, TierwiseError
    from tierwise.gateway.app import create_app
    from tierwise.routing.router import Decision, Router, RouteRequest, TierView
    from tierwise.tiers.base import Tier, TierHealth

__version__ = "0.1.0"

_WHERE = {
    "ConfigError": "tierwise.errors",
    "Decision": "tierwise.routing.router",
    "RouteRequest": "tierwise.routing.router",
    "Router": "tierwise.routing.router",
    "Settings": "tierwise.config",
    "Tier": "tierwise.tiers.base",
    "TierHealth": "tierwise.tiers.base",
    "TierView": "tierwise.routing.router",
    "TierwiseError": "tierwise.errors",
    "create_app": "tierwise.gateway.app",
    "load_settings": "tierwise.config",
    "settings_from_dict": "tierwise.config",
}

__all__ = [
    "ConfigError",
    "Decision",
    "RouteRequest",
    "Router",
    "Settings",
    "Tier",
    "TierHealth",
    "TierView",
    "TierwiseError",
    "__version__",
    "create_app",
    "load_settings",
    "settings_from_dict",
]


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'tierwise' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)

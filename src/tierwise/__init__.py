"""tierwise: one OpenAI-compatible gateway in front of device, edge and cloud LLM tiers.

Usage::

    from tierwise import create_app, load_settings
    app = create_app(load_settings("tiers.yaml"))
"""

from tierwise.config import Settings, load_settings, settings_from_dict
from tierwise.errors import ConfigError, TierwiseError
from tierwise.gateway.app import create_app
from tierwise.routing.router import Decision, Router, RouteRequest, TierView
from tierwise.tiers.base import Tier, TierHealth

__version__ = "0.1.0"

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

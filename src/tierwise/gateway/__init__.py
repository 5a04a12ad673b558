"""The OpenAI-compatible HTTP gateway in front of the tiers."""

from tierwise.gateway.app import create_app

__all__ = ["create_app"]

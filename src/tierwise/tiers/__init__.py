"""Tiers: the places a request can be answered (a model on the device, an edge server, a cloud cluster)."""

from tierwise.tiers.base import Tier, TierHealth, TierStreamBroken, TierUnavailable
from tierwise.tiers.registry import BACKENDS, build_tier

__all__ = ["BACKENDS", "Tier", "TierHealth", "TierStreamBroken", "TierUnavailable", "build_tier"]

"""Typed settings for the router and the hard policies (the `router:` and `policies:` config sections).

The gateway's config imports these two models; they only validate values, they never read files.
Usage: `PolicySettings(personal_data="device_only", ttft_slo_ms=800)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tierwise.traffic.settings import DecisionLogSettings

PersonalDataRule = Literal["device_only", "device_and_edge", "off"]
PiiKind = Literal["email", "phone", "cn_id", "bank_card", "ip"]
ALL_PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "cn_id", "bank_card", "ip")


class RateLimit(BaseModel):
    """Requests and tokens (prompt + completion) one API key may use per minute; None: no such limit."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class RateLimitSettings(RateLimit):
    """The `policies.rate_limits` section: limits for every key, and `per_key` limits that replace them.

    `per_key` is keyed by the API key itself or by `sha256:<hex digest of the key>` (so a config file need not
    hold raw keys). With `gateway.state_url` the limits hold across all replicas together."""

    per_key: dict[str, RateLimit] = Field(default_factory=dict)


class PolicySettings(BaseModel):
    """Hard rules applied before predicted quality; a request the rules forbid everywhere is refused.

    - `personal_data`: where a request that contains personal data (per `pii_kinds`) may go.
    - `offline_fallback`: when no cloud tier is healthy, keep serving from the local tiers (else refuse).
    - `ttft_slo_ms`: exclude tiers whose estimated time to first token is over this.
    - `daily_budget_usd`: per API key per UTC day; over it, only tiers that cost nothing may serve.
    - `cloud_max_in_flight`: a cloud tier with this many requests in flight sheds to the edge (the tier's own
      `max_concurrent` applies too, whichever is smaller).
    - `rate_limits`: requests and tokens per minute per API key; past them a 429 with Retry-After.
    """

    model_config = ConfigDict(extra="forbid")

    personal_data: PersonalDataRule = "device_only"
    pii_kinds: list[PiiKind] = Field(default_factory=lambda: list(ALL_PII_KINDS))
    offline_fallback: bool = True
    ttft_slo_ms: float | None = Field(default=None, gt=0)
    daily_budget_usd: float | None = Field(default=None, ge=0)
    cloud_max_in_flight: int | None = Field(default=None, ge=1)
    rate_limits: RateLimitSettings | None = None


class CascadeSettings(BaseModel):
    """Check a cheaper tier's answer before returning it, and send the request up a tier when it looks wrong.

    - `model`: the cascade file written by `tierwise train-cascade`.
    - `check`: the tiers whose answers are checked (default: every tier not in the cloud).
    - `threshold`: escalate when P(answer good) is below this (default: the file's, set at training time).
    Only non-streaming answers are checked (a streamed answer is already on its way to the client), and the
    request goes only where the policies allow: personal data that must stay on the device stays there.
    """

    model_config = ConfigDict(extra="forbid")

    model: Path
    check: list[str] | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class RouterSettings(BaseModel):
    """Which router answers `model="auto"`: a trained router file, or the placeholder rule if `model` is None.

    `target_cloud_share` re-calibrates the file's threshold to this share of cloud calls at load time (the
    file keeps its held-out margins for that); None keeps the share the file was trained for.
    `embedding_cache_dir` overrides where embeddings are cached (default `~/.cache/tierwise/embeddings`).
    `cascade`: check cheaper tiers' answers and escalate doubtful ones (see `CascadeSettings`).
    `log`: record every routed request in a decision log (see `DecisionLogSettings`); None: no log.
    `reload_every_s`: how often the router file's mtime is checked; a changed file is loaded without restart.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="a router in ROUTERS; default: learned with a model file")
    model: Path | None = None
    target_cloud_share: float | None = Field(default=None, ge=0.0, le=1.0)
    embedding_cache_dir: Path | None = None
    cascade: CascadeSettings | None = None
    log: DecisionLogSettings | None = None
    reload_every_s: float = Field(default=5.0, gt=0)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str | None) -> str | None:
        from tierwise.routing.router import ROUTERS  # the registry of routers; imports nothing heavy

        if name is not None and name not in ROUTERS:
            raise ValueError(f"unknown router {name!r}; known: {', '.join(sorted(ROUTERS))}")
        return name

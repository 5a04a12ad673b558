"""Typed configuration: one YAML file → validated settings, one sub-config per component.

YAML and environment variables are read only here (`load_settings`) and at the CLI edge; everything else takes
the typed objects. Unknown keys are rejected so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tierwise.errors import ConfigError
from tierwise.routing.settings import PolicySettings, RouterSettings

Location = Literal["device", "edge", "cloud"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostConfig(_Strict):
    """Price of a tier in USD per million tokens (0 for hardware already paid for)."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class CapabilitiesConfig(_Strict):
    """What a tier can honour, where its backend's default is wrong (None: the backend's default).

    `auto` never sends a request to a tier that would drop part of it; a request pinned to such a tier gets a
    400 naming what is missing."""

    tools: bool | None = None
    response_format: bool | None = Field(None, description="json_object / json_schema response formats")
    images: bool | None = None
    context_length: int | None = Field(None, ge=1)
    text_completion: bool | None = Field(None, description="legacy /v1/completions on a raw prompt")
    choices: bool | None = Field(None, description="n > 1: several choices in one answer")
    reasoning: bool | None = Field(
        None, description="the model reasons: requests with reasoning_effort or thinking_token_budget may go here"
    )
    logprobs: bool | None = Field(None, description="token logprobs in answers (logprobs: true)")


class _TierBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=64)
    location: Location
    cost: CostConfig = CostConfig()
    max_concurrent: int = Field(8, ge=1, description="requests served at once; more wait in line")
    max_queue: int = Field(64, ge=0, description="requests waiting for a slot; past it: the next tier, or 503")
    queue_timeout_s: float = Field(60.0, gt=0, description="longest wait for a slot before the next tier, or 503")
    capabilities: CapabilitiesConfig = CapabilitiesConfig()
    think_tags: bool = Field(
        False, description="the model writes its reasoning as <think>…</think> in content: move it to reasoning_content"
    )

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name == "auto":
            raise ValueError("'auto' is reserved for routed requests")
        return name


class LlamaCppTierConfig(_TierBase):
    """A GGUF model run in-process by llama.cpp (the device tier)."""

    backend: Literal["llama_cpp"]
    model_path: Path
    model: str | None = Field(None, description="the model's name in answers (default: the file name's stem)")
    n_ctx: int = Field(2048, ge=64)
    n_threads: int | None = Field(None, ge=1)
    n_gpu_layers: int = 0
    chat_format: str | None = None  # None: the template stored in the GGUF
    logits_all: bool = Field(
        False, description="keep every position's logits: needed to answer logprobs requests; costs memory and prefill"
    )
    max_concurrent: int = Field(1, ge=1, description="llama.cpp contexts are single-threaded: one at a time")
    seed: int | None = None
    tools_chat_format: str | None = Field(
        "chatml-function-calling",
        description="llama-cpp-python chat handler for requests with tools (None: the tier has no tools)",
    )
    embeddings: bool = Field(
        False, description="serve /v1/embeddings from this model (mean-pooled; a second context per worker)"
    )


class _HTTPTierBase(_TierBase):
    dialect: str = Field("vllm", description="how the server differs from OpenAI's API (tiers/translate.py)")
    api_key_env: str | None = None
    connect_timeout_s: float = Field(3.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0, description="longest silence between two bytes of a response")
    retries: int = Field(2, ge=0, le=10, description="retries on connect errors and 5xx before the first byte")
    retry_backoff_s: float = Field(0.2, ge=0)
    max_answer_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="bytes read from the server per answer")
    max_answer_s: float = Field(600.0, gt=0, description="longest one answer may take, start to end")
    network_rtt_ms: float = Field(0.0, ge=0, description="added to measured speed for latency SLOs")
    embedding_model: str | None = Field(
        None, description="the server's embedding model: set, /v1/embeddings may be forwarded to this tier"
    )

    @field_validator("dialect")
    @classmethod
    def _known_dialect(cls, name: str) -> str:
        from tierwise.tiers.translate import DIALECTS

        if name not in DIALECTS:
            raise ValueError(f"unknown dialect {name!r}; known: {', '.join(sorted(DIALECTS))}")
        return name

    def api_key(self) -> str | None:
        """The key from the named environment variable (read at tier start, never stored in config)."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if value is None:
            raise ConfigError(f"tier {self.name!r}: environment variable {self.api_key_env} is not set")
        return value


class OpenAITierConfig(_HTTPTierBase):
    """Any OpenAI-compatible HTTP server: llama.cpp's server, vLLM, SGLang, a provider API."""

    backend: Literal["openai"]
    base_url: str = Field(pattern=r"^https?://")
    model: str


class LlamaCppServerTierConfig(_HTTPTierBase):
    """llama-cpp-python's OpenAI server on a GGUF file, started and stopped by tierwise as its own process.

    It listens on 127.0.0.1:`port` (0: a free port) and is spoken to like any `openai` tier, in the `llama_cpp`
    dialect; its stderr goes to tierwise's log."""

    backend: Literal["llama_cpp_server"]
    model_path: Path
    model: str | None = Field(None, description="the model's name in answers (default: the file name's stem)")
    port: int = Field(0, ge=0, le=65535)
    n_ctx: int = Field(2048, ge=64)
    n_threads: int | None = Field(None, ge=1)
    dialect: str = "llama_cpp"
    max_concurrent: int = Field(1, ge=1, description="the server runs one request at a time")
    startup_timeout_s: float = Field(120.0, gt=0)
    extra_args: list[str] = Field(default_factory=list, description="more `python -m llama_cpp.server` flags")


TierConfig = Annotated[
    LlamaCppTierConfig | OpenAITierConfig | LlamaCppServerTierConfig, Field(discriminator="backend")
]


class ConnectionsConfig(_Strict):
    """What one client connection may hold before its request reaches the app (gateway/connection_limits.py)."""

    header_timeout_s: float = Field(10.0, gt=0, description="the whole request head must arrive within this")
    body_timeout_s: float = Field(30.0, gt=0, description="longest silence while a request body is owed")
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    max_headers: int = Field(100, ge=8)
    max_connections: int | None = Field(1000, ge=1, description="open client connections; None: no cap")
    max_connections_per_client: int | None = Field(64, ge=1, description="per peer address; None behind a proxy")
    backlog: int = Field(128, ge=1, description="pending connections the kernel queues before they are accepted")


class GatewayConfig(_Strict):
    """The HTTP front door."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: list[str] = Field(default_factory=list, description="accepted bearer keys; empty: no auth")
    api_keys_env: str | None = Field(None, description="environment variable with comma-separated keys")
    allowed_hosts: list[str] | None = Field(
        None, description="Host names served (DNS rebinding); None: loopback only without keys, any with keys"
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    client_write_timeout_s: float = Field(
        30.0, gt=0, description="a streaming client that reads nothing for this long is cut off (its slot freed)"
    )
    connections: ConnectionsConfig = ConnectionsConfig()
    failure_threshold: int = Field(3, ge=1, description="consecutive failures that mark a tier down")
    cooldown_s: float = Field(5.0, gt=0, description="how long a down tier is skipped before a probe")
    probe_interval_s: float = Field(5.0, gt=0, description="how often every tier's health is probed")
    state_url: str | None = Field(
        None, description="redis://HOST:PORT/DB (or rediss://): budget and tier health shared by replicas; None: "
        "in-process"
    )
    state_password_env: str | None = Field(None, description="environment variable with the state store's password")
    state_sync_interval_s: float = Field(
        0.5, gt=0, le=60, description="how often shared state is pushed to and read back from the state store"
    )

    @field_validator("state_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://")):
            raise ValueError(f"must start with redis:// or rediss://, not {url.split(':', 1)[0]!r}://")
        return url


class Settings(_Strict):
    """The whole tierwise configuration."""

    tiers: list[TierConfig] = Field(min_length=1)
    gateway: GatewayConfig = GatewayConfig()
    router: RouterSettings = RouterSettings()
    policies: PolicySettings = PolicySettings()

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        names = [t.name for t in self.tiers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tier names must be unique; repeated: {', '.join(dupes)}")
        return self

    def tier(self, name: str) -> TierConfig:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)


def _format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def settings_from_dict(data: object, *, source: str = "config", base_dir: Path | None = None) -> Settings:
    """Validate a parsed config; relative model paths are resolved against `base_dir`."""
    try:
        settings = Settings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"invalid {source}:\n{_format_validation_error(err)}") from None
    if base_dir is not None:
        settings = _resolve_paths(settings, base_dir)
    return settings


def _resolve_paths(settings: Settings, base_dir: Path) -> Settings:
    tiers = [
        t.model_copy(update={"model_path": (base_dir / t.model_path)})
        if isinstance(t, LlamaCppTierConfig | LlamaCppServerTierConfig) and not t.model_path.is_absolute()
        else t
        for t in settings.tiers
    ]
    router = settings.router
    if router.model is not None and not router.model.is_absolute():
        router = router.model_copy(update={"model": base_dir / router.model})
    return settings.model_copy(update={"tiers": tiers, "router": router})


def load_settings(path: str | Path) -> Settings:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    return settings_from_dict(data, source=str(path), base_dir=path.parent)

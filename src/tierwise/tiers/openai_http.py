"""A tier served by any OpenAI-compatible HTTP server (llama.cpp server, vLLM, SGLang, a provider API).

Chat (`/chat/completions`), legacy text completions (`/completions`) and embeddings (`/embeddings`, with
`embedding_model` set) share one POST path (`_stream`): retries before the first byte, the answer's bounds, and
the mapping of statuses to tierwise's errors (tiers/http_answer.py reads the answers)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tierwise.costs import estimated_tokens
from tierwise.errors import (
    TierRejected,
    TierRequestFailed,
    TierStreamBroken,
    TierUnavailable,
    UpstreamConnectFailed,
    UpstreamTimedOut,
    UpstreamTransportError,
)
from tierwise.request_context import current_request_id
from tierwise.tiers.base import Chunk, Tier, TierHealth
from tierwise.tiers.capabilities import Capabilities
from tierwise.tiers.http_answer import (
    AnswerBounds,
    TierBadResponse,
    WholeAnswer,
    clean_upstream_message,
    completion_to_chunk,
    embeddings_from,
    raise_for_status,
    read_chunks,
    text_completion_as_chunk,
    upstream_message,
)
from tierwise.tiers.translate import Dialect, dialect_named, http_payload, text_payload
from tierwise.tiers.upstream import UpstreamClient, UpstreamResponse
from tierwise.tiers.usage import PromptOverhead

if TYPE_CHECKING:
    from tierwise.config import OpenAITierConfig
    from tierwise.protocol import ChatCompletionRequest, TextCompletionRequest

__all__ = ["OpenAIHTTPTier", "TierBadResponse", "clean_upstream_message"]

log = logging.getLogger("tierwise.tiers")

class OpenAIHTTPTier(Tier):
    """Streams from `{base_url}/chat/completions` (and `/completions`), passing unknown fields through unchanged."""

    config: OpenAITierConfig

    def __init__(self, config: OpenAITierConfig) -> None:
        super().__init__(config)
        self._client: UpstreamClient | None = None
        self.dialect: Dialect = dialect_named(config.dialect)
        self.prompt_overhead = PromptOverhead()  # for streams whose server reports no usage

    @property
    def model_name(self) -> str:
        return self.config.model

    def default_capabilities(self) -> Capabilities:
        # A server in the llama.cpp dialect parses no tool calls (tools would be dropped, not refused) and answers
        # one choice whatever `n` says; whether the model reasons is the config's to say.
        full = self.dialect.name != "llama_cpp"
        return Capabilities(tools=full, images=full, text_completion=True, choices=full)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    async def start(self) -> None:
        cfg = self.config
        headers = {"Accept": "text/event-stream, application/json"}
        api_key = cfg.api_key()
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # one connection per request in flight, and room for the health probe
        self._client = UpstreamClient(self.base_url, headers=headers, connect_timeout_s=cfg.connect_timeout_s,
                                      read_timeout_s=cfg.read_timeout_s, max_connections=cfg.max_concurrent + 2)
        await self._client.start()

    @property
    def client(self) -> UpstreamClient:
        if self._client is None:
            raise RuntimeError(f"tier {self.name!r} used before start()")
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def health(self) -> TierHealth:
        started = time.perf_counter()
        try:
            status = await self.client.get("models", timeout_s=min(2.0, self.config.read_timeout_s))
        except UpstreamTransportError as err:
            return TierHealth(False, str(err))
        latency_ms = (time.perf_counter() - started) * 1000
        if status != 200:
            return TierHealth(False, f"GET /models answered {status}", latency_ms)
        return TierHealth(True, "ok", latency_ms)

    async def generate(self, request: ChatCompletionRequest) -> AsyncIterator[Chunk]:
        content = _encode(self.name, http_payload(request, self.dialect, model=self.config.model))
        content_chunks, usage_seen = 0, False
        async for chunk in self._stream("chat/completions", content, whole=completion_to_chunk):
            if chunk.get("usage"):
                usage_seen = True
                self._learn_overhead(request, chunk["usage"])
            content_chunks += any((c.get("delta") or {}).get("content") for c in chunk["choices"])
            yield chunk
        if not usage_seen:  # e.g. llama.cpp's Python server ignores stream_options
            yield self.prompt_overhead.usage_chunk(request, completion_tokens=content_chunks)

    async def complete_text(self, request: TextCompletionRequest) -> AsyncIterator[Chunk]:
        """`POST {base_url}/completions`, with the same retries, bounds and error mapping as chat."""
        content = _encode(self.name, text_payload(request, self.dialect, model=self.config.model))
        text_chunks, usage_seen = 0, False
        async for chunk in self._stream("completions", content, whole=text_completion_as_chunk):
            usage_seen = usage_seen or bool(chunk.get("usage"))
            text_chunks += any(c.get("text") for c in chunk["choices"])
            yield chunk
        if not usage_seen:  # no template around a raw prompt: the text estimate is the whole estimate
            prompt_tokens = round(estimated_tokens(request.text))
            yield {"object": "text_completion", "choices": [], "usage": {
                "prompt_tokens": prompt_tokens, "completion_tokens": text_chunks,
                "total_tokens": prompt_tokens + text_chunks, "estimated": True}}

    @property
    def embedding_model(self) -> str | None:
        return self.config.embedding_model

    async def embed(self, texts: list[str], *, dimensions: int | None = None) -> tuple[list[list[float]], int]:
        """`POST {base_url}/embeddings` with the configured `embedding_model`, floats asked for whatever the client
        wants (the gateway encodes them), within `max_answer_bytes`/`max_answer_s`."""
        payload: dict[str, Any] = {"model": self.config.embedding_model, "input": texts, "encoding_format": "float"}
        if dimensions is not None:
            payload["dimensions"] = dimensions
        content = _encode(self.name, payload)
        answers = [chunk async for chunk in self._stream("embeddings", content, whole=lambda _, body: body)]
        vectors, tokens = embeddings_from(self.name, answers[0] if answers else {}, count=len(texts))
        return vectors, tokens or round(sum(estimated_tokens(t) for t in texts))  # estimated when unreported

    async def _stream(self, path: str, content: bytes, *, whole: WholeAnswer) -> AsyncIterator[Chunk]:
        """POST `content` to `path` and yield the answer's chunks: retries (connect errors, 5xx) only before the
        first byte, `TierUnavailable` before anything was yielded, `TierStreamBroken` after."""
        cfg = self.config
        headers = {"Content-Type": "application/json"}
        request_id = current_request_id()
        if request_id is not None and (not self.dialect.request_id_uuid_only or _is_uuid(request_id)):
            headers["x-request-id"] = request_id  # one id from the client through the backend's logs
        for attempt in range(cfg.retries + 1):
            yielded = False
            try:
                async with self.client.stream("POST", path, content=content, headers=headers) as response:
                    if response.status_code >= 500 and attempt < cfg.retries:
                        await asyncio.sleep(cfg.retry_backoff_s * 2**attempt)
                        continue
                    if response.status_code >= 500:
                        await self._raise_for_server_error(response)
                    await raise_for_status(self.name, response)
                    bounds = AnswerBounds(self.name, max_bytes=cfg.max_answer_bytes, max_seconds=cfg.max_answer_s)
                    async for chunk in read_chunks(self.name, response, bounds, whole=whole):
                        yielded = True
                        yield chunk
                return
            except UpstreamConnectFailed as err:  # nothing came back: worth another attempt
                if yielded:
                    raise TierStreamBroken(f"tier {self.name!r}: connection lost mid-answer ({err})") from err
                if attempt >= cfg.retries:
                    raise TierUnavailable(f"tier {self.name!r} unreachable: {err}") from err
                await asyncio.sleep(cfg.retry_backoff_s * 2**attempt)
            except UpstreamTimedOut as err:
                if yielded:
                    raise TierStreamBroken(
                        f"tier {self.name!r} stalled mid-answer (no data for {cfg.read_timeout_s:g} s)"
                    ) from err
                raise TierUnavailable(f"tier {self.name!r} timed out before answering: {err}") from err
            except UpstreamTransportError as err:
                if yielded:
                    raise TierStreamBroken(f"tier {self.name!r}: {err}") from err
                raise TierUnavailable(f"tier {self.name!r}: {err}") from err

    def _learn_overhead(self, request: ChatCompletionRequest, usage: dict[str, Any]) -> None:
        prompt_tokens = usage.get("prompt_tokens")
        if isinstance(prompt_tokens, int) and not usage.get("estimated"):
            self.prompt_overhead.observe(request, prompt_tokens)

    async def _raise_for_server_error(self, response: UpstreamResponse) -> None:
        """A 5xx after every retry. If the server still answers its health probe, the request itself broke it
        (llama.cpp's server answers 500 to requests it cannot handle): that does not count against the tier. If
        the probe fails too, the tier is in trouble. Either way another tier may serve."""
        message = await upstream_message(response)
        probe = await self.health()
        if probe.healthy:
            log.warning("tier %s answered %d to a request while healthy: %s", self.name, response.status_code, message)
            raise TierRequestFailed(
                f"tier {self.name!r} could not process this request (it answered {response.status_code} while "
                f"healthy): {message}"
            )
        raise TierUnavailable(f"tier {self.name!r} answered {response.status_code}: {message}")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _encode(tier: str, payload: dict[str, Any]) -> bytes:
    """The request body; what cannot be encoded (JSON nested deeper than the encoder allows, NaN, a lone
    surrogate) is the request's fault, so it is rejected as such instead of counting as this tier's failure."""
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeEncodeError) as err:
        reason = "it is nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise TierRejected(f"the request cannot be sent to tier {tier!r} as JSON: {reason}", status=400) from None

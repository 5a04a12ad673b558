"""A tier served by any OpenAI-compatible HTTP server (llama.cpp server, vLLM, SGLang, a provider API)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tierwise.errors import (
    TierBadResponse,
    TierRateLimited,
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
from tierwise.tiers.translate import Dialect, dialect_named, http_payload
from tierwise.tiers.upstream import UpstreamClient, UpstreamResponse
from tierwise.tiers.usage import PromptOverhead

if TYPE_CHECKING:
    from tierwise.config import OpenAITierConfig
    from tierwise.protocol import ChatCompletionRequest

log = logging.getLogger("tierwise.tiers")

class OpenAIHTTPTier(Tier):
    """Streams from `{base_url}/chat/completions`, passing unknown fields through unchanged."""

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
        # A server in the llama.cpp dialect parses no tool calls: tools would be dropped, not refused.
        return Capabilities(tools=self.dialect.name != "llama_cpp", images=self.dialect.name != "llama_cpp")

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
        cfg = self.config
        headers = {"Content-Type": "application/json"}
        request_id = current_request_id()
        if request_id is not None and (not self.dialect.request_id_uuid_only or _is_uuid(request_id)):
            headers["x-request-id"] = request_id  # one id from the client through the backend's logs
        for attempt in range(cfg.retries + 1):
            yielded = False
            try:
                async with self.client.stream("POST", "chat/completions", content=content, headers=headers) as response:
                    if response.status_code >= 500 and attempt < cfg.retries:
                        await asyncio.sleep(cfg.retry_backoff_s * 2**attempt)
                        continue
                    if response.status_code >= 500:
                        await self._raise_for_server_error(response)
                    await _raise_for_status(self.name, response)
                    content_chunks, usage_seen = 0, False
                    bounds = _AnswerBounds(self.name, max_bytes=cfg.max_answer_bytes, max_seconds=cfg.max_answer_s)
                    async for chunk in _read_chunks(self.name, response, bounds):
                        yielded = True
                        if chunk.get("usage"):
                            usage_seen = True
                            self._learn_overhead(request, chunk["usage"])
                        content_chunks += any((c.get("delta") or {}).get("content") for c in chunk["choices"])
                        yield chunk
                if not usage_seen:  # e.g. llama.cpp's Python server ignores stream_options
                    yield self.prompt_overhead.usage_chunk(request, completion_tokens=content_chunks)
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
        message = await _upstream_message(response)
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


# Upstream error texts may carry a traceback: file paths and code lines say nothing to a client and leak the
# server's layout. What is kept is the text before the traceback, with any remaining file path elided.
_TRACEBACK_START = re.compile(r'^\s*(Traceback \(most recent call last\)|File ")', re.MULTILINE)
_FILE_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.\-]+){2,}")
_MAX_UPSTREAM_MESSAGE = 300


async def _upstream_message(response: UpstreamResponse) -> str:
    body = (await response.aread(limit=20_000)).decode("utf-8", "replace")
    try:
        message = str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = body or response.reason_phrase
    return clean_upstream_message(message)


def clean_upstream_message(message: str) -> str:
    """An upstream error message without its traceback or file paths, on one line, at most 300 characters."""
    match = _TRACEBACK_START.search(message)
    text = message[: match.start()] if match else message
    text = " ".join(_FILE_PATH.sub("…", text).split()) or "no detail given"
    return text if len(text) <= _MAX_UPSTREAM_MESSAGE else text[: _MAX_UPSTREAM_MESSAGE - 1] + "…"


def _retry_after(response: UpstreamResponse) -> float | None:
    """Retry-After in seconds (only the delta-seconds form; an HTTP date is rare from API servers)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


async def _raise_for_status(tier: str, response: UpstreamResponse) -> None:
    if response.status_code == 200:
        return
    message = await _upstream_message(response)
    detail = f"tier {tier!r} answered {response.status_code}: {message}"
    # 429 and 5xx are the tier's trouble (another tier may serve); other 4xx are the request's.
    if response.status_code == 429:
        raise TierRateLimited(detail, retry_after_s=_retry_after(response))
    if response.status_code >= 500:
        raise TierUnavailable(detail)
    raise TierRejected(detail, status=response.status_code)


class _AnswerBounds:
    """How much of one answer may still be read: bytes and wall time. A backend that never ends its body, or
    trickles bytes forever (so that `read_timeout_s` never fires), is cut off here instead of growing the gateway."""

    def __init__(self, tier: str, *, max_bytes: int, max_seconds: float) -> None:
        self.tier = tier
        self.bytes_left = max_bytes
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.deadline = time.monotonic() + max_seconds

    def take(self, data: bytes) -> None:
        self.bytes_left -= len(data)
        if self.bytes_left < 0:
            raise TierBadResponse(f"tier {self.tier!r} sent an answer over {self.max_bytes} bytes (max_answer_bytes)")
        if time.monotonic() > self.deadline:
            raise TierStreamBroken(f"tier {self.tier!r} took longer than {self.max_seconds:g} s (max_answer_s)")


async def _bounded_body(response: UpstreamResponse, bounds: _AnswerBounds) -> bytes:
    parts = []
    async for data in response.aiter_bytes():
        bounds.take(data)
        parts.append(data)
    return b"".join(parts)


async def _bounded_lines(response: UpstreamResponse, bounds: _AnswerBounds) -> AsyncIterator[str]:
    """The body's lines; a line is never longer than what the bounds still allow (a client library's own line
    reader buffers a line without end for ever, or fails on long ones)."""
    pending: list[bytes] = []  # the unfinished line, joined only once its end arrives
    async for data in response.aiter_bytes():
        bounds.take(data)
        pending.append(data)
        if b"\n" not in data:
            continue
        *lines, rest = b"".join(pending).split(b"\n")
        pending = [rest] if rest else []
        for line in lines:
            yield line.rstrip(b"\r").decode("utf-8", "replace")
    if pending:
        yield b"".join(pending).decode("utf-8", "replace")


async def _read_chunks(tier: str, response: UpstreamResponse, bounds: _AnswerBounds) -> AsyncIterator[Chunk]:
    """Parse server-sent events, or a plain JSON completion from a server that ignored `stream`."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        yield _completion_to_chunk(tier, _parse(tier, await _bounded_body(response, bounds)))
        return
    if not content_type.startswith("text/event-stream"):
        raise TierBadResponse(f"tier {tier!r} answered 200 with {content_type or 'no content type'}, "
                              "not JSON or an event stream")
    finished = False
    lines = _bounded_lines(response, bounds)
    async for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments (": ping"), event names
        data = line[5:].strip()
        if data == "[DONE]":
            if not finished:  # llama.cpp's server ends interrupted streams with [DONE] and no finish_reason
                raise TierStreamBroken(f"tier {tier!r} ended its stream (with [DONE]) before finishing the answer")
            await _drain(lines)
            return
        chunk = _parse(tier, data)
        if "error" in chunk:
            message = (chunk["error"] or {}).get("message", "unknown error")
            raise TierStreamBroken(f"tier {tier!r} reported an error mid-stream: {message}")
        if not isinstance(chunk.get("choices"), list):
            raise TierBadResponse(f"tier {tier!r} sent a chunk without a 'choices' list")
        finished = finished or any(c.get("finish_reason") for c in chunk["choices"])
        yield chunk
    if not finished:  # neither [DONE] nor a finish_reason: the answer was cut off
        raise TierStreamBroken(f"tier {tier!r} ended its stream before finishing the answer")


async def _drain(lines: AsyncIterator[str], *, max_lines: int = 8, timeout_s: float = 0.5) -> None:
    """Read what little follows `[DONE]` (the end of the chunked body), so that the client returns the
    connection to its pool; a response left unread is closed instead, and every request would open a new
    connection. A server that keeps the body open after `[DONE]` costs at most `timeout_s`: the answer is
    complete either way."""
    with contextlib.suppress(UpstreamTransportError, TimeoutError):
        async with asyncio.timeout(timeout_s):
            async for _ in lines:
                max_lines -= 1
                if max_lines <= 0:
                    return


def _parse(tier: str, data: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as err:
        raise TierBadResponse(f"tier {tier!r} sent invalid JSON: {str(data)[:80]!r}") from err
    if not isinstance(value, dict):
        raise TierBadResponse(f"tier {tier!r} sent JSON that is not an object")
    return value


def _completion_to_chunk(tier: str, completion: dict[str, Any]) -> Chunk:
    choices = completion.get("choices")
    if not isinstance(choices, list):
        raise TierBadResponse(f"tier {tier!r} sent a completion without a 'choices' list")
    chunk_choices = [
        {
            "index": c.get("index", 0),
            "delta": c.get("message") or {},
            "finish_reason": c.get("finish_reason"),
            **({"logprobs": c["logprobs"]} if c.get("logprobs") else {}),
        }
        for c in choices
    ]
    return {**completion, "object": "chat.completion.chunk", "choices": chunk_choices}

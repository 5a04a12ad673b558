"""Reading an OpenAI-compatible server's answer: its status as tierwise's errors, its body within bounds (bytes
and wall time), and its server-sent events (or one JSON body, from a server that ignored `stream`) as chunks.

Shared by every HTTP call a tier makes (chat, text completions, embeddings). Usage::

    await raise_for_status(tier, response)
    async for chunk in read_chunks(tier, response, AnswerBounds(tier, max_bytes=..., max_seconds=...),
                                   whole=completion_to_chunk):
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from tierwise.errors import (
    TierBadResponse,
    TierRateLimited,
    TierRejected,
    TierStreamBroken,
    TierUnavailable,
    UpstreamTransportError,
)
from tierwise.json_codec import loads
from tierwise.tiers.base import Chunk
from tierwise.tiers.upstream import UpstreamResponse

__all__ = ["TierBadResponse"]  # and the functions below


# Upstream error texts may carry a traceback: file paths and code lines say nothing to a client and leak the
# server's layout. What is kept is the text before the traceback, with any remaining file path elided.
_TRACEBACK_START = re.compile(r'^\s*(Traceback \(most recent call last\)|File ")', re.MULTILINE)
_FILE_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.\-]+){2,}")
_MAX_UPSTREAM_MESSAGE = 300


async def upstream_message(response: UpstreamResponse) -> str:
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


def retry_after(response: UpstreamResponse) -> float | None:
    """Retry-After in seconds (only the delta-seconds form; an HTTP date is rare from API servers)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


async def raise_for_status(tier: str, response: UpstreamResponse) -> None:
    if response.status_code == 200:
        return
    message = await upstream_message(response)
    detail = f"tier {tier!r} answered {response.status_code}: {message}"
    # 429 and 5xx are the tier's trouble (another tier may serve); other 4xx are the request's.
    if response.status_code == 429:
        raise TierRateLimited(detail, retry_after_s=retry_after(response))
    if response.status_code >= 500:
        raise TierUnavailable(detail)
    raise TierRejected(detail, status=response.status_code)


class AnswerBounds:
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


async def bounded_body(response: UpstreamResponse, bounds: AnswerBounds) -> bytes:
    parts = []
    async for data in response.aiter_bytes():
        bounds.take(data)
        parts.append(data)
    return b"".join(parts)


async def bounded_lines(response: UpstreamResponse, bounds: AnswerBounds) -> AsyncIterator[str]:
    """The body's lines; a line is never longer than what the bounds still allow (a client library's line reader
    buffers a line without end for ever)."""
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


WholeAnswer = Callable[[str, dict[str, Any]], Chunk]  # (tier, a whole JSON answer) → it as one chunk


async def read_chunks(
    tier: str, response: UpstreamResponse, bounds: AnswerBounds, *, whole: WholeAnswer
) -> AsyncIterator[Chunk]:
    """Parse server-sent events, or a plain JSON answer (from a request that did not stream, or a server that
    ignored `stream`) turned into one chunk by `whole`."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        yield whole(tier, parse_json(tier, await bounded_body(response, bounds)))
        return
    if not content_type.startswith("text/event-stream"):
        raise TierBadResponse(f"tier {tier!r} answered 200 with {content_type or 'no content type'}, "
                              "not JSON or an event stream")
    finished = False
    lines = bounded_lines(response, bounds)
    async for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments (": ping"), event names
        data = line[5:].strip()
        if data == "[DONE]":
            if not finished:  # llama.cpp's server ends interrupted streams with [DONE] and no finish_reason
                raise TierStreamBroken(f"tier {tier!r} ended its stream (with [DONE]) before finishing the answer")
            await drain(lines)
            return
        chunk = parse_json(tier, data)
        if "error" in chunk:
            message = (chunk["error"] or {}).get("message", "unknown error")
            raise TierStreamBroken(f"tier {tier!r} reported an error mid-stream: {message}")
        if not isinstance(chunk.get("choices"), list):
            raise TierBadResponse(f"tier {tier!r} sent a chunk without a 'choices' list")
        finished = finished or any(c.get("finish_reason") for c in chunk["choices"])
        yield chunk
    if not finished:  # neither [DONE] nor a finish_reason: the answer was cut off
        raise TierStreamBroken(f"tier {tier!r} ended its stream before finishing the answer")


async def drain(lines: AsyncIterator[str], *, max_lines: int = 8, timeout_s: float = 0.5) -> None:
    """Read what little follows `[DONE]` (the end of the chunked body), so that the client returns the connection to
    its pool; a response left unread is closed instead, and every request would open a new connection. A server
    that keeps the body open after `[DONE]` costs at most `timeout_s`: the answer is complete either way."""
    with contextlib.suppress(UpstreamTransportError, TimeoutError):
        async with asyncio.timeout(timeout_s):
            async for _ in lines:
                max_lines -= 1
                if max_lines <= 0:
                    return


def parse_json(tier: str, data: str | bytes) -> dict[str, Any]:
    try:
        value = loads(data)
    except ValueError as err:
        raise TierBadResponse(f"tier {tier!r} sent invalid JSON: {str(data)[:80]!r}") from err
    if not isinstance(value, dict):
        raise TierBadResponse(f"tier {tier!r} sent JSON that is not an object")
    return value


def completion_to_chunk(tier: str, completion: dict[str, Any]) -> Chunk:
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


def text_completion_as_chunk(tier: str, completion: dict[str, Any]) -> Chunk:
    """A whole `text_completion` already has a chunk's shape (`choices[i].text`): only its `choices` is checked."""
    if not isinstance(completion.get("choices"), list):
        raise TierBadResponse(f"tier {tier!r} sent a completion without a 'choices' list")
    return completion


def embeddings_from(tier: str, body: dict[str, Any], *, count: int) -> tuple[list[list[float]], int]:
    """The vectors of an `/embeddings` answer in input order, and its prompt tokens (0 when not reported)."""
    data = body.get("data")
    if not isinstance(data, list) or len(data) != count:
        raise TierBadResponse(f"tier {tier!r} sent {len(data) if isinstance(data, list) else 'no'} embeddings "
                              f"for {count} inputs")
    try:
        ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
        if any(isinstance(item["embedding"][0], list) for item in ordered if item["embedding"]):
            raise TierBadResponse(f"tier {tier!r} sent one vector per token, not one per input: its server pools "
                                  "nothing (llama-cpp-python's server does not; llama.cpp's llama-server needs "
                                  "--pooling mean)")
        vectors = [[float(x) for x in item["embedding"]] for item in ordered]
    except (TypeError, ValueError, KeyError, AttributeError):
        raise TierBadResponse(f"tier {tier!r} sent embeddings that are not lists of numbers") from None
    usage = body.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return vectors, tokens if isinstance(tokens, int) else 0

"""A minimal OpenAI-compatible backend that answers at once (or misbehaves on purpose), for tests and benchmarks.

It records what it receives, so a test can check what reached it (e.g. that no personal data did).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Mode = Literal["ok", "error_status", "invalid_json", "no_choices", "stall", "break", "error_event"]


@dataclass
class StubBehavior:
    """What the stub does. Mutable: tests change it between requests."""

    pieces: list[str] = field(default_factory=lambda: ["Hello", " from", " the", " stub", "."])
    token_delay_s: float = 0.0
    mode: Mode = "ok"
    fail_first: int = 0  # answer 500 to this many requests before behaving
    after_pieces: int = 2  # for "stall" / "break" / "error_event": how many pieces go out first
    extra_delta: dict[str, Any] = field(default_factory=dict)  # e.g. {"reasoning_content": "..."} on each chunk
    status: int = 500
    header_delay_s: float = 0.0  # wait this long before answering at all (a backend slow to respond)
    received: list[dict[str, Any]] = field(default_factory=list)
    peers: set[int] = field(default_factory=set)  # client ports seen: one per TCP connection the caller opened
    record: bool = True
    replies: dict[str, str] = field(default_factory=dict)  # last user message → the answer (replays recorded logs)
    models_calls: int = 0  # GET /v1/models seen (health probes)
    request_ids: list[str | None] = field(default_factory=list)  # the x-request-id of each chat request
    streaming: int = 0  # event streams being generated now (one that stops early was cancelled by its caller)
    completed: int = 0  # event streams generated to their end


def create_stub_app(behavior: StubBehavior | None = None, *, model: str = "stub-model") -> Starlette:
    behavior = behavior or StubBehavior()

    async def models(request: Request) -> Response:
        behavior.models_calls += 1
        return JSONResponse({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "stub"}]})

    async def chat(request: Request) -> Response:
        body = await request.json()
        if request.client is not None:
            behavior.peers.add(request.client.port)
        if behavior.record:
            behavior.received.append(body)
            behavior.request_ids.append(request.headers.get("x-request-id"))
        if behavior.header_delay_s:
            await asyncio.sleep(behavior.header_delay_s)
        if behavior.fail_first > 0:
            behavior.fail_first -= 1
            return JSONResponse({"error": {"message": "stub: temporary failure", "type": "server_error"}}, 500)
        if behavior.mode == "error_status":
            return JSONResponse({"error": {"message": "stub: failing on purpose", "type": "x"}}, behavior.status)
        if not body.get("stream"):
            if behavior.mode == "invalid_json":
                return Response(b"{this is not json", media_type="application/json")
            if behavior.mode == "no_choices":
                return JSONResponse({"id": "x", "object": "chat.completion", "unexpected": True})
            return JSONResponse(_completion(behavior, model, _pieces_for(behavior, body), n=int(body.get("n") or 1)))
        return StreamingResponse(_events(behavior, model, body), media_type="text/event-stream")

    async def completions(request: Request) -> Response:
        """Legacy text completions: the same pieces (and failure modes) as chat, as `text` chunks."""
        body = await request.json()
        if behavior.record:
            behavior.received.append(body)
        if behavior.fail_first > 0:
            behavior.fail_first -= 1
            return JSONResponse({"error": {"message": "stub: temporary failure", "type": "server_error"}}, 500)
        if behavior.mode == "error_status":
            return JSONResponse({"error": {"message": "stub: failing on purpose", "type": "x"}}, behavior.status)
        pieces = behavior.pieces
        if not body.get("stream"):
            return JSONResponse(_text_completion(model, pieces, n=int(body.get("n") or 1)))
        return StreamingResponse(_text_events(behavior, model, body), media_type="text/event-stream")

    async def embeddings(request: Request) -> Response:
        """Vectors of `dimensions` (default 8) numbers made from each text's hash: the same text, the same vector."""
        body = await request.json()
        if behavior.record:
            behavior.received.append(body)
        if behavior.mode == "error_status":
            return JSONResponse({"error": {"message": "stub: failing on purpose", "type": "x"}}, behavior.status)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        await asyncio.sleep(behavior.token_delay_s)  # a slow embedding model
        size = int(body.get("dimensions") or 8)
        data = [{"object": "embedding", "index": i, "embedding": stub_vector(t, size)} for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        return JSONResponse({"object": "list", "data": data, "model": body.get("model"),
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/v1/completions", completions, methods=["POST"]),
                             Route("/v1/embeddings", embeddings, methods=["POST"])])


def stub_vector(text: str, size: int) -> list[float]:
    """The stub's embedding of `text`: deterministic, so a test can check which text a vector belongs to."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % len(digest)] - 128) / 128 for i in range(size)]


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, *, index: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def _text_chunk(model: str, text: str, finish: str | None = None, *, index: int = 0) -> dict[str, Any]:
    return {"id": "cmpl-stub", "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish}]}


async def _text_events(behavior: StubBehavior, model: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
    n = int(body.get("n") or 1)
    for i, piece in enumerate(behavior.pieces):
        if behavior.mode == "break" and i == behavior.after_pieces:
            return
        for index in range(n):
            yield _sse(_text_chunk(model, piece, index=index))
    for index in range(n):
        yield _sse(_text_chunk(model, "", "stop", index=index))
    if (body.get("stream_options") or {}).get("include_usage"):
        done = n * len(behavior.pieces)
        yield _sse({**_text_chunk(model, ""), "choices": [],
                    "usage": {"prompt_tokens": 7, "completion_tokens": done, "total_tokens": 7 + done}})
    yield _sse("[DONE]")


def _text_completion(model: str, pieces: list[str], *, n: int) -> dict[str, Any]:
    choices = [{"index": i, "text": "".join(pieces), "logprobs": None, "finish_reason": "stop"} for i in range(n)]
    done = n * len(pieces)
    return {"id": "cmpl-stub", "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": {"prompt_tokens": 7, "completion_tokens": done, "total_tokens": 7 + done}}


def _sse(data: Any) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


async def _events(behavior: StubBehavior, model: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
    if behavior.mode == "invalid_json":
        yield b"data: {this is not json\n\n"
        return
    if behavior.mode == "no_choices":
        yield _sse({"id": "x", "object": "chat.completion.chunk", "unexpected": True})
        return
    behavior.streaming += 1
    try:
        async for event in _answer_events(behavior, model, body):
            yield event
        behavior.completed += 1
    finally:
        behavior.streaming -= 1


async def _answer_events(behavior: StubBehavior, model: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
    choices = range(int(body.get("n") or 1))  # `n` choices, interleaved piece by piece as vLLM sends them
    for index in choices:
        yield _sse(_chunk(model, {"role": "assistant", "content": ""}, index=index))
    pieces = _pieces_for(behavior, body)
    for i, piece in enumerate(pieces):
        if behavior.mode in {"stall", "break", "error_event"} and i == behavior.after_pieces:
            if behavior.mode == "stall":
                await asyncio.sleep(3600)
            if behavior.mode == "error_event":
                yield _sse({"error": {"message": "stub: backend failed mid-stream", "type": "server_error"}})
            return  # "break": the connection ends without [DONE]
        if behavior.token_delay_s:
            await asyncio.sleep(behavior.token_delay_s)
        for index in choices:
            yield _sse(_chunk(model, {"content": piece, **behavior.extra_delta}, index=index))
    for index in choices:
        yield _sse(_chunk(model, {}, "stop", index=index))
    if (body.get("stream_options") or {}).get("include_usage"):
        n = len(pieces) * len(choices)
        usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
        yield _sse({**_chunk(model, {}), "choices": [], "usage": usage})
    yield _sse("[DONE]")


def _pieces_for(behavior: StubBehavior, body: dict[str, Any]) -> list[str]:
    """The recorded reply to the last user message when there is one, else the fixed pieces."""
    users = [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    last = users[-1] if users and isinstance(users[-1], str) else None
    return [behavior.replies[last]] if last is not None and last in behavior.replies else behavior.pieces


def _completion(behavior: StubBehavior, model: str, pieces: list[str], *, n: int = 1) -> dict[str, Any]:
    message = {"role": "assistant", "content": "".join(pieces),
               **{key: value * len(pieces) for key, value in behavior.extra_delta.items()}}
    done = len(pieces) * n
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": index, "message": message, "finish_reason": "stop"} for index in range(n)],
        "usage": {"prompt_tokens": 7, "completion_tokens": done, "total_tokens": 7 + done},
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m tierwise.testing.stub_backend --port P [--token-delay-ms D]`: serve the stub on 127.0.0.1."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    parser.add_argument("--pieces", type=int, default=5, help="content chunks per answer")
    args = parser.parse_args(argv)
    behavior = StubBehavior(
        pieces=[f" tok{i}" for i in range(args.pieces)], token_delay_s=args.token_delay_ms / 1000, record=False
    )
    uvicorn.run(create_stub_app(behavior), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False, timeout_keep_alive=60)


if __name__ == "__main__":
    main()

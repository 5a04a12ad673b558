"""Concurrent clients for the reliability tests: every request is classified, and every one is bounded in time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Result:
    """What one client saw."""

    status: int | None = None
    data: list[str] = field(default_factory=list)  # the `data:` payloads of a stream, in order
    body: dict[str, Any] | None = None  # a JSON (non-streaming or error) answer
    tier: str | None = None
    hung: bool = False  # not finished within its bound
    exception: str | None = None

    @property
    def done(self) -> bool:
        return bool(self.data) and self.data[-1] == "[DONE]"

    @property
    def error_event(self) -> dict[str, Any] | None:
        """The error event that ends a broken stream (just before [DONE])."""
        if len(self.data) >= 2 and self.data[-2].startswith('{"error"'):
            return json.loads(self.data[-2])["error"]
        return None

    @property
    def text(self) -> str:
        if self.body is not None and "choices" in self.body:
            return self.body["choices"][0]["message"].get("content") or ""
        chunks = [json.loads(d) for d in self.data if d.startswith('{"') and not d.startswith('{"error"')]
        return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))

    @property
    def report(self) -> dict[str, Any]:
        """The `tierwise` routing report (the body's, or the first chunk's)."""
        if self.body is not None:
            return self.body.get("tierwise") or {}
        return json.loads(self.data[0]).get("tierwise") or {} if self.data else {}

    @property
    def clean(self) -> bool:
        """A complete answer: 200, no error event, and (streaming) [DONE] at the end."""
        if self.status != 200 or self.hung or self.exception:
            return False
        return self.body is not None or (self.done and self.error_event is None)


async def send(client: httpx.AsyncClient, url: str, body: dict[str, Any], *, bound_s: float,
               headers: dict[str, str] | None = None) -> Result:
    result = Result()
    try:
        async with asyncio.timeout(bound_s):
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as response:
                result.status = response.status_code
                result.tier = response.headers.get("x-tierwise-tier")
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    result.data = [line[5:].strip() async for line in response.aiter_lines()
                                   if line.startswith("data:")]
                else:
                    result.body = json.loads(await response.aread())
    except TimeoutError:
        result.hung = True
    except httpx.HTTPError as err:
        result.exception = f"{type(err).__name__}: {err}"
    return result


async def _send_all(url: str, bodies: Sequence[dict[str, Any]], *, concurrency: int, bound_s: float,
                    headers: dict[str, str] | None) -> list[Result]:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=bound_s) as client:

        async def one(body: dict[str, Any]) -> Result:
            async with gate:
                return await send(client, url, body, bound_s=bound_s, headers=headers)

        return await asyncio.gather(*(one(b) for b in bodies))


def send_all(url: str, bodies: Sequence[dict[str, Any]], *, concurrency: int = 16, bound_s: float = 20.0,
             headers: dict[str, str] | None = None) -> list[Result]:
    """Send `bodies` with `concurrency` clients at once; each request is cut off (`hung`) after `bound_s`."""
    return asyncio.run(_send_all(url, bodies, concurrency=concurrency, bound_s=bound_s, headers=headers))


def chat(model: str, content: str = "Say hello", *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream, **extra}

"""Clients that give up, and more clients than a slow backend can take: what reaches the backend, what is refused.

    python bench/abandon_overload.py [--abandoning 48] [--give-up-s 1] [--overload 300]

A stub backend (in this process) streams 50 tokens at 50 ms each (2.5 s an answer); the gateway (`tierwise serve`,
its own process) has one tier on it with `max_concurrent` 8 and `max_queue` 32.
1. Abandoned: N clients send streaming requests and give up after `--give-up-s`. Printed: how many reached the
   backend, how many of those the backend generated to the end, and how long it kept streaming after they left.
2. Overload: M clients at once, each waiting up to 60 s. Printed: answers, refusals (status, Retry-After), hangs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import yaml

from tierwise.testing.servers import free_port, serve_in_thread, start_process, stop_process
from tierwise.testing.stub_backend import StubBehavior, create_stub_app

BODY = {"model": "edge", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def _stream(client: httpx.AsyncClient, url: str, timeout_s: float) -> tuple[int | str, str | None]:
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", f"{url}/v1/chat/completions", json=BODY) as response:
                async for _ in response.aiter_bytes():
                    pass
                return response.status_code, response.headers.get("retry-after")
    except TimeoutError:
        return "gave up", None
    except httpx.HTTPError as err:
        return type(err).__name__, None


async def _clients(url: str, n: int, timeout_s: float) -> list[tuple[int | str, str | None]]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=None, limits=limits) as client:
        return await asyncio.gather(*(_stream(client, url, timeout_s) for _ in range(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--abandoning", type=int, default=48)
    parser.add_argument("--give-up-s", type=float, default=1.0)
    parser.add_argument("--overload", type=int, default=300)
    args = parser.parse_args()
    behavior = StubBehavior(pieces=[f" t{i}" for i in range(50)], token_delay_s=0.05, record=False)
    with serve_in_thread(create_stub_app(behavior)) as backend, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "edge.yaml"
        config.write_text(yaml.safe_dump({"tiers": [{
            "name": "edge", "location": "edge", "backend": "openai", "base_url": f"{backend}/v1", "model": "m",
            "max_concurrent": 8, "max_queue": 32}],
            # every bench client comes from 127.0.0.1: measure the tier's queue, not the per-client connection cap
            "gateway": {"connections": {"max_connections_per_client": None}}}))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        gateway = start_process([sys.executable, "-m", "tierwise", "serve", "-c", str(config), "--port", str(port),
                                 "--log-level", "warning", "--no-access-log"], f"{url}/healthz", timeout_s=60)
        try:
            results = asyncio.run(_clients(url, args.abandoning, args.give_up_s))
            left_at = time.monotonic()
            while behavior.streaming and time.monotonic() - left_at < 60:
                time.sleep(0.01)
            busy_after = time.monotonic() - left_at
            completed = behavior.completed
            print(f"abandoned: {args.abandoning} clients gave up after {args.give_up_s:g} s "
                  f"({Counter(str(r[0]) for r in results)}); backend generated {completed} of them to the end; "
                  f"it streamed for {busy_after:.2f} s after the clients left")
            done_before = behavior.completed
            started = time.monotonic()
            results = asyncio.run(_clients(url, args.overload, 60.0))
            took = time.monotonic() - started
            statuses = Counter(str(r[0]) for r in results)
            retry_after = Counter(r[1] for r in results if r[0] == 503)
            print(f"overload: {args.overload} clients in {took:.1f} s: {dict(statuses)}; Retry-After on 503s: "
                  f"{dict(retry_after)}; backend answers {behavior.completed - done_before}")
        finally:
            stop_process(gateway)


if __name__ == "__main__":
    main()

"""The gateway's memory and CPU while a backend sends a non-streaming answer that never ends.

    python bench/unbounded_upstream.py [--clients 4] [--max-answer-mb 16] [--seconds 10]

The backend (in this process) answers every chat request with a JSON body that grows without end; the gateway
(`tierwise serve`, its own process) reads at most `max_answer_bytes` of it. Printed: the gateway's peak RSS
(VmHWM) before and after, its CPU seconds, and what the clients got.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tierwise.testing.servers import cpu_seconds, free_port, serve_in_thread, start_process, stop_process


def endless_json_app(seconds: float) -> Starlette:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"choices": [{"index": 0, "message": {"content": "'
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            yield b"a" * 65536
            await asyncio.sleep(0)

    async def chat(request: Request) -> Response:
        return StreamingResponse(body(), media_type="application/json")

    async def models(request: Request) -> Response:
        return Response('{"data": []}', media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])


def proc_status(pid: int) -> dict[str, str]:
    return dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-answer-mb", type=float, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with serve_in_thread(endless_json_app(args.seconds)) as backend, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "edge.yaml"
        config.write_text(yaml.safe_dump({"tiers": [{
            "name": "edge", "location": "edge", "backend": "openai", "base_url": f"{backend}/v1", "model": "m",
            "retries": 0, "max_answer_bytes": int(args.max_answer_mb * 2**20), "max_concurrent": args.clients}]}))
        port = free_port()
        gateway = start_process([sys.executable, "-m", "tierwise", "serve", "-c", str(config), "--port", str(port),
                                 "--log-level", "warning"], f"http://127.0.0.1:{port}/healthz", timeout_s=60)
        try:
            before, cpu_before = proc_status(gateway.pid)["VmHWM"].strip(), cpu_seconds(gateway.pid)
            body = {"model": "edge", "messages": [{"role": "user", "content": "hi"}]}

            async def one(client: httpx.AsyncClient) -> int:
                response = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
                return response.status_code

            async def clients() -> list[int]:
                async with httpx.AsyncClient(timeout=args.seconds + 30) as client:
                    return await asyncio.gather(*(one(client) for _ in range(args.clients)))

            started = time.monotonic()
            statuses = asyncio.run(clients())
            took = time.monotonic() - started
            after, cpu_after = proc_status(gateway.pid)["VmHWM"].strip(), cpu_seconds(gateway.pid)
        finally:
            stop_process(gateway)
    print(f"{args.clients} clients, endless JSON answers, max_answer_bytes {args.max_answer_mb:g} MiB")
    print(f"statuses {sorted(statuses)} in {took:.2f} s; gateway peak RSS {before} -> {after}; "
          f"gateway CPU {cpu_after - cpu_before:.2f} s")


if __name__ == "__main__":
    main()

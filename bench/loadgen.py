"""Shared parts of the reliability benchmarks (bench/load.py, bench/soak.py): processes on 127.0.0.1, a streaming
load generator that classifies every request, percentiles, and the resident memory of a process.

Every server is its own process (stub backends, the gateway); the clients run in the calling process
(asyncio + httpx), each sending its next streaming request as soon as the last one has ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from tierwise.testing.servers import free_port, start_process

PROMPT = [{"role": "user", "content": "Tell me a short story about a lighthouse."}]


@dataclass
class Outcome:
    """One request as the client saw it."""

    started: float  # seconds since the load began
    kind: str  # ok | error_event (a clear error after tokens) | http_<status> | hung | broken | <exception name>
    ttft_ms: float | None = None
    total_ms: float | None = None
    tier: str | None = None
    failover: bool = False
    excluded: list[str] = field(default_factory=list)  # tiers the router skipped (e.g. marked down)


def start_stub(port: int, *, token_delay_ms: float, pieces: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tierwise.testing.stub_backend", "--port", str(port),
               "--token-delay-ms", str(token_delay_ms), "--pieces", str(pieces)]
    return start_process(command, f"http://127.0.0.1:{port}/v1/models")


def start_gateway(tmp: Path, tiers: list[dict[str, Any]], **gateway: Any) -> tuple[subprocess.Popen[bytes], str]:
    """`tierwise serve` as its own process; returns it and its base URL."""
    port = free_port()
    config = {"tiers": tiers, "gateway": {"port": port, **gateway}}
    path = tmp / "tiers.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "tierwise", "serve", "-c", str(path), "--no-access-log",
               "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    return start_process(command, f"{url}/healthz"), url


def stub_tier(name: str, port: int, *, location: str, price: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "location": location, "backend": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
            "model": "stub", "cost": {"input_per_mtok": price, "output_per_mtok": price}, "max_concurrent": 1024,
            "connect_timeout_s": 1.0, "read_timeout_s": 10.0, "retries": 1, "retry_backoff_s": 0.05, **extra}


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _first_chunk_info(line: str, outcome: Outcome) -> None:
    report = json.loads(line[5:]).get("tierwise") or {}
    outcome.excluded = sorted(report.get("excluded") or {})


async def stream_once(client: httpx.AsyncClient, url: str, body: dict[str, Any], *, t0: float,
                      timeout_s: float) -> Outcome:
    """One streaming request, classified; `timeout_s` bounds the whole request (beyond it: `hung`)."""
    started = time.perf_counter()
    outcome = Outcome(started=started - t0, kind="broken")
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    outcome.kind = f"http_{response.status_code}"
                    return outcome
                outcome.tier = response.headers.get("x-tierwise-tier")
                outcome.failover = "x-tierwise-failover" in response.headers
                error_seen = False
                async for line in response.aiter_lines():  # read to the end: the connection goes back to the pool
                    if not line.startswith("data:") or outcome.kind != "broken":
                        continue
                    if outcome.ttft_ms is None:
                        outcome.ttft_ms = (time.perf_counter() - started) * 1000
                        if outcome.tier is not None and '"tierwise"' in line:
                            _first_chunk_info(line, outcome)
                    if line == "data: [DONE]":
                        outcome.kind = "error_event" if error_seen else "ok"
                        continue
                    error_seen = error_seen or line.startswith('data: {"error"')
    except TimeoutError:
        outcome.kind = "hung"
    except httpx.HTTPError as err:
        outcome.kind = type(err).__name__
    outcome.total_ms = (time.perf_counter() - started) * 1000
    return outcome


async def run_load(url: str, *, concurrency: int, duration_s: float, body: dict[str, Any],
                   timeout_s: float = 30.0, on_tick: Callable[[float], None] | None = None) -> list[Outcome]:
    """`concurrency` clients streaming back to back for `duration_s`; every request started is awaited."""
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    outcomes: list[Outcome] = []
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s)) as client:
        t0 = time.perf_counter()
        deadline = t0 + duration_s

        async def worker() -> None:
            while time.perf_counter() < deadline:
                outcomes.append(await stream_once(client, url, body, t0=t0, timeout_s=timeout_s))

        async def ticker() -> None:
            while time.perf_counter() < deadline:
                if on_tick is not None:
                    on_tick(time.perf_counter() - t0)
                await asyncio.sleep(0.1)

        await asyncio.gather(ticker(), *(worker() for _ in range(concurrency)))
    return outcomes


def summarize(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    ok = [o for o in outcomes if o.kind == "ok"]
    kinds: dict[str, int] = {}
    for o in outcomes:
        kinds[o.kind] = kinds.get(o.kind, 0) + 1
    ttft = [o.ttft_ms for o in ok if o.ttft_ms is not None]
    total = [o.total_ms for o in ok if o.total_ms is not None]
    return {
        "requests": len(outcomes), "ok": len(ok), "rps": len(ok) / seconds, "kinds": kinds,
        "ttft_p50": percentile(ttft, 50), "ttft_p99": percentile(ttft, 99),
        "total_p50": percentile(total, 50), "total_p99": percentile(total, 99),
        "errors": len(outcomes) - len(ok),
    }

"""How much latency does the gateway add, and how many requests/s does it carry, next to calling the backend
directly and next to the LiteLLM proxy in front of the same backend — in one run, on this machine.

    python bench/gateway_overhead.py [--duration 10] [--concurrency 1 16 64] [--litellm /path/to/venv/bin/litellm]

Everything runs on 127.0.0.1: a stub OpenAI-compatible backend that answers at once (its own process), the
tierwise gateway (`tierwise serve`, its own process), optionally LiteLLM's proxy (its own process), and the load
generator (this process: asyncio + httpx, N concurrent clients, non-streaming requests, each client sending its
next request as soon as the last one is answered). Added latency = p50/p99 through a proxy minus direct.

LiteLLM must live in its own virtualenv (its pins clash with ours):
    python3 -m venv /tmp/litellm-venv
    /tmp/litellm-venv/bin/pip install 'litellm[proxy]==1.106.2' 'certifi<=2026.10.18'
    (never 1.107.x: a compromised release was published under that number)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import yaml

from tierwise.testing.servers import free_port, start_process, stop_process

BODY = {"model": "tiny", "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 8}


@dataclass
class Run:
    target: str
    concurrency: int
    latencies_ms: np.ndarray
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


async def load(url: str, *, concurrency: int, duration_s: float, model: str, headers: dict[str, str]) -> Run:
    latencies: list[float] = []
    errors = 0
    body = {**BODY, "model": model}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
        for _ in range(min(concurrency, 8)):  # warm the connection pool and the servers
            await client.post(url, json=body)
        deadline = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Run(url, concurrency, np.array(latencies), errors, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--litellm", default=shutil.which("litellm") or "", help="path to the litellm executable")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tierwise-bench-"))
    stub_port, gw_port, ll_port = free_port(), free_port(), free_port()
    stub = f"http://127.0.0.1:{stub_port}/v1"
    targets: dict[str, tuple[str, str, dict[str, str]]] = {"direct": (f"{stub}/chat/completions", "tiny", {})}
    with ExitStack() as stack:
        def owned(process: subprocess.Popen[bytes]) -> None:
            stack.callback(stop_process, process)

        owned(start_process([sys.executable, "-m", "tierwise.testing.stub_backend", "--port", str(stub_port)],
                    f"{stub}/models"))
        config = {"tiers": [{"name": "tiny", "location": "edge", "backend": "openai", "base_url": stub,
                             "model": "stub", "max_concurrent": 256}],
                  "gateway": {"port": gw_port}}
        (tmp / "tiers.yaml").write_text(yaml.safe_dump(config))
        tierwise = [sys.executable, "-m", "tierwise", "serve", "-c", str(tmp / "tiers.yaml"),
                    "--log-level", "warning", "--no-access-log"]
        owned(start_process(tierwise, f"http://127.0.0.1:{gw_port}/healthz"))
        targets["tierwise"] = (f"http://127.0.0.1:{gw_port}/v1/chat/completions", "tiny", {})
        if args.litellm:
            ll_config = {"model_list": [{"model_name": "tiny", "litellm_params": {
                "model": "openai/stub", "api_base": stub, "api_key": "sk-none"}}]}
            (tmp / "litellm.yaml").write_text(yaml.safe_dump(ll_config))
            env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": "sk-bench",
                   "LITELLM_LOG": "ERROR"}
            owned(start_process([args.litellm, "--config", str(tmp / "litellm.yaml"), "--host", "127.0.0.1",
                         "--port", str(ll_port)], f"http://127.0.0.1:{ll_port}/health/liveliness",
                        timeout_s=180, env=env))
            targets["litellm"] = (f"http://127.0.0.1:{ll_port}/v1/chat/completions", "tiny",
                                  {"Authorization": "Bearer sk-bench"})
        else:
            print("LiteLLM not found (--litellm PATH): comparing with direct calls only")
        report(asyncio.run(measure_all(targets, args.concurrency, args.duration)))


async def measure_all(targets, concurrencies, duration):
    runs: dict[tuple[str, int], Run] = {}
    for concurrency in concurrencies:
        for name, (url, model, headers) in targets.items():
            runs[(name, concurrency)] = await load(
                url, concurrency=concurrency, duration_s=duration, model=model, headers=headers)
    return runs


def report(runs: dict[tuple[str, int], Run]) -> None:
    print(f"{'target':10} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} "
          f"{'errors':>6}")
    for (name, concurrency), run in runs.items():
        direct = runs[("direct", concurrency)]
        added50 = run.p(50) - direct.p(50)
        added99 = run.p(99) - direct.p(99)
        print(f"{name:10} {concurrency:>5} {run.rps:>9.0f} {run.p(50):>8.2f} {run.p(99):>8.2f} "
              f"{added50:>8.2f} {added99:>8.2f} {run.errors:>6}")
    for concurrency in sorted({c for _, c in runs}):
        if ("litellm", concurrency) in runs:
            ratio = runs[("tierwise", concurrency)].rps / runs[("litellm", concurrency)].rps
            print(f"tierwise / litellm requests/s at {concurrency} clients: {ratio:.1f}x")


if __name__ == "__main__":
    main()

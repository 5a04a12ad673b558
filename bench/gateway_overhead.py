"""What the gateway costs, next to calling the backend directly, nginx as a plain reverse proxy (the floor) and
the LiteLLM proxy — in one run, on this machine, for non-streaming requests and for 32-chunk streams.

    python bench/gateway_overhead.py [--duration 10] [--concurrency 1 16 64] [--mode json stream]
                                     [--litellm /path/to/venv/bin/litellm] [--nginx /usr/sbin/nginx]
                                     [--with-log] [--rounds 1]

Everything runs on 127.0.0.1, each in its own process: a stub OpenAI-compatible backend that answers at once
(`--pieces` content chunks per streamed answer), nginx (`proxy_pass`, upstream keepalive, no buffering),
`tierwise serve` (uvicorn + uvloop + httptools, access log off), LiteLLM's proxy, and the load generator (this
process: asyncio + aiohttp — the cheapest client here, so it takes as little CPU from the others as it can —
N concurrent clients, each sending its next request as soon as the last one is answered, streams read to the
end). Per target: requests/s, latency p50/p99, what the proxy adds to direct p50/p99, and the proxy's own CPU
per request (utime + stime of its processes from /proc over the run): on two cores shared by all of them,
requests/s at 16 and 64 clients is bounded by the load generator and the stub, so CPU per request is the figure
that shows a proxy's cost.

LiteLLM must live in its own virtualenv (its pins clash with ours):
    python3 -m venv /tmp/litellm-venv
    /tmp/litellm-venv/bin/pip install 'litellm[proxy]==1.106.2' 'certifi<=2026.10.18'
    (never 1.107.x: a compromised release was published under that number)
nginx: `apt-get install nginx-light` (any nginx ≥ 1.18).
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

import aiohttp
import numpy as np
import yaml

from tierwise.testing.servers import child_pids, cpu_seconds, free_port, start_process, stop_process

PROMPT = [{"role": "user", "content": "Say hello in five words."}]
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    upstream stub {{ server 127.0.0.1:{stub_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://stub;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


@dataclass
class Target:
    name: str
    url: str
    model: str
    headers: dict[str, str]
    process: subprocess.Popen[bytes] | None  # whose CPU is counted (with its children); None for direct


@dataclass
class Run:
    target: str
    mode: str
    concurrency: int
    latencies_ms: np.ndarray
    errors: int
    seconds: float
    cpu_ms_per_request: float | None

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its direct children (nginx's worker, uvicorn's workers)."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in child_pids(pid))


async def load(target: Target, *, mode: str, concurrency: int, duration_s: float, max_tokens: int) -> Run:
    latencies: list[float] = []
    errors = 0
    body = {"model": target.model, "messages": PROMPT, "max_tokens": max_tokens, "stream": mode == "stream"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=target.headers,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def once() -> bool:
            async with session.post(target.url, json=body) as response:
                await response.read()  # a stream is read to its end
                return response.status == 200

        for _ in range(min(concurrency, 8)):  # warm the connection pools and the servers
            await once()
        deadline = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    ok = await once()
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

        cpu_before = tree_cpu_s(target.process.pid) if target.process else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu_used = tree_cpu_s(target.process.pid) - cpu_before if target.process else 0.0
    served = len(latencies) + errors
    cpu_per_request = 1000 * cpu_used / served if target.process and served else None
    return Run(target.name, mode, concurrency, np.array(latencies), errors, elapsed, cpu_per_request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target, mode and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--mode", nargs="+", choices=["json", "stream"], default=["json", "stream"])
    parser.add_argument("--pieces", type=int, default=32, help="content chunks per streamed answer")
    parser.add_argument("--litellm", default=shutil.which("litellm") or "", help="path to the litellm executable")
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx", help="path to nginx")
    parser.add_argument("--rounds", type=int, default=1, help="measure every target this many times, in turn")
    parser.add_argument("--with-log", action="store_true",
                        help="also a second tierwise with the decision log on (router.log): what the log adds")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tierwise-bench-"))
    stub_port = free_port()
    stub = f"http://127.0.0.1:{stub_port}/v1"
    with ExitStack() as stack:
        def started(command: list[str], ready: str, **kwargs: object) -> subprocess.Popen[bytes]:
            process = start_process(command, ready, **kwargs)  # type: ignore[arg-type]
            stack.callback(stop_process, process)
            return process

        started([sys.executable, "-m", "tierwise.testing.stub_backend", "--port", str(stub_port),
                 "--pieces", str(args.pieces)], f"{stub}/models")
        targets = [Target("direct", f"{stub}/chat/completions", "tiny", {}, None)]
        if Path(args.nginx).exists():
            port = free_port()
            (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, stub_port=stub_port, port=port))
            nginx = started([args.nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", "stderr"],
                            f"http://127.0.0.1:{port}/v1/models")
            targets.append(Target("nginx", f"http://127.0.0.1:{port}/v1/chat/completions", "tiny", {}, nginx))
        else:
            print(f"nginx not found at {args.nginx}: no floor to compare with")
        variants: dict[str, dict[str, object]] = {"tierwise": {}}
        if args.with_log:  # and a second gateway without it: how far two identical processes differ
            variants["tw+log"] = {"router": {"log": {"path": str(tmp / "decisions.sqlite"), "keep_text": True}}}
            variants["tierwise-b"] = {}
        for name, extra in variants.items():
            gw_port = free_port()
            config = {"tiers": [{"name": "tiny", "location": "edge", "backend": "openai", "base_url": stub,
                                 "model": "stub", "max_concurrent": 256}], "gateway": {"port": gw_port}, **extra}
            (tmp / f"{name}.yaml").write_text(yaml.safe_dump(config))
            gateway = started([sys.executable, "-m", "tierwise", "serve", "-c", str(tmp / f"{name}.yaml"),
                               "--log-level", "warning", "--no-access-log"], f"http://127.0.0.1:{gw_port}/healthz")
            targets.append(Target(name, f"http://127.0.0.1:{gw_port}/v1/chat/completions", "tiny", {}, gateway))
        if args.litellm:
            ll_port = free_port()
            ll_config = {"model_list": [{"model_name": "tiny", "litellm_params": {
                "model": "openai/stub", "api_base": stub, "api_key": "sk-none"}}]}
            (tmp / "litellm.yaml").write_text(yaml.safe_dump(ll_config))
            env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": "sk-bench",
                   "LITELLM_LOG": "ERROR"}
            litellm = started([args.litellm, "--config", str(tmp / "litellm.yaml"), "--host", "127.0.0.1",
                               "--port", str(ll_port)], f"http://127.0.0.1:{ll_port}/health/liveliness",
                              timeout_s=180, env=env)
            targets.append(Target("litellm", f"http://127.0.0.1:{ll_port}/v1/chat/completions", "tiny",
                                  {"Authorization": "Bearer sk-bench"}, litellm))
        else:
            print("LiteLLM not found (--litellm PATH): not compared")
        print(f"load average before the run: {os.getloadavg()[0]:.2f}")
        runs = asyncio.run(measure_all(targets, args))
    report(runs)


async def measure_all(targets: list[Target], args: argparse.Namespace) -> list[Run]:
    """Every target in turn, `--rounds` times (every other round in reverse order, so that drift in the machine's
    load falls on all of them alike); one merged Run per target, mode and concurrency."""
    runs = []
    for mode in args.mode:
        max_tokens = 2 * args.pieces if mode == "stream" else 8
        for concurrency in args.concurrency:
            rounds: dict[str, list[Run]] = {t.name: [] for t in targets}
            for r in range(args.rounds):
                for target in targets if r % 2 == 0 else targets[::-1]:
                    rounds[target.name].append(await load(target, mode=mode, concurrency=concurrency,
                                                          duration_s=args.duration, max_tokens=max_tokens))
            runs += [merged(each) for each in rounds.values()]
            if args.rounds > 1 and {"tierwise", "tw+log"} <= set(rounds):
                for other in ("tw+log", "tierwise-b"):
                    diffs = [b.p(50) - a.p(50) for a, b in zip(rounds["tierwise"], rounds[other], strict=True)]
                    print(f"{mode} at {concurrency}: {other} − tierwise p50 per round (ms): "
                          f"{', '.join(f'{d:+.3f}' for d in diffs)}; median {np.median(diffs):+.3f}")
    return runs


def merged(rounds: list[Run]) -> Run:
    """One Run from the rounds of one target: latencies pooled, CPU per request over all of them."""
    first = rounds[0]
    served = [len(r.latencies_ms) + r.errors for r in rounds]
    cpu = None if first.cpu_ms_per_request is None else (
        sum((r.cpu_ms_per_request or 0.0) * n for r, n in zip(rounds, served, strict=True)) / max(1, sum(served)))
    return Run(first.target, first.mode, first.concurrency, np.concatenate([r.latencies_ms for r in rounds]),
               sum(r.errors for r in rounds), sum(r.seconds for r in rounds), cpu)


def report(runs: list[Run]) -> None:
    direct = {(r.mode, r.concurrency): r for r in runs if r.target == "direct"}
    print(f"{'mode':6} {'target':9} {'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} "
          f"{'+p99 ms':>8} {'cpu ms/req':>10} {'errors':>6}")
    for run in runs:
        base = direct[(run.mode, run.concurrency)]
        cpu = f"{run.cpu_ms_per_request:.3f}" if run.cpu_ms_per_request is not None else "-"
        print(f"{run.mode:6} {run.target:9} {run.concurrency:>5} {run.rps:>8.0f} {run.p(50):>8.2f} {run.p(99):>8.2f} "
              f"{run.p(50) - base.p(50):>8.2f} {run.p(99) - base.p(99):>8.2f} {cpu:>10} {run.errors:>6}")
    by_key = {(r.target, r.mode, r.concurrency): r for r in runs}
    for (target, mode, concurrency), run in by_key.items():
        for peer in ("nginx", "litellm"):
            other = by_key.get((peer, mode, concurrency))
            if target == "tierwise" and other is not None and other.rps:
                print(f"{mode}: tierwise / {peer} requests/s at {concurrency} clients: {run.rps / other.rps:.2f}x")


if __name__ == "__main__":
    main()

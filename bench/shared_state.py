"""Gateway replicas sharing state through Redis: throughput with workers, budget overspend, a Redis outage.

    python bench/shared_state.py workers [--duration 10] [--concurrency 64] [--rounds 3] [--free]
    python bench/shared_state.py budget  [--concurrency 64] [--requests-in-budget 100]
    python bench/shared_state.py outage  [--duration 20] [--outage 10] [--concurrency 64]

Every process runs on 127.0.0.1: the stub backend (answers at once; its own process), redis-server (its own, no
persistence unless said), `tierwise serve --workers N` (one port, N uvicorn workers sharing state through Redis),
and the load generator (this process: asyncio + httpx, N clients each sending its next non-streaming request as
soon as the last is answered).

- workers: requests/s at `--concurrency` clients with `--workers 1` and `--workers 2` (both with state_url), and
  their ratio.
- budget: 2 workers, a daily budget worth `--requests-in-budget` answers, clients sending until every request is
  refused; overspend = what Redis holds at the end minus the budget, in answers' costs.
- outage: 2 workers with rate limits and a budget; redis-server is killed `--outage` seconds in the middle of the
  load and started again (with its append-only file); failed requests and spending lost are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from tierwise.testing.servers import free_port, start_process, stop_process

PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}  # the stub's 7 + 5 tokens: 0.012 USD an answer
ANSWER_USD = 0.012
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


class RedisProcess:
    def __init__(self, port: int, aof_dir: Path | None = None) -> None:
        self.port, self.aof_dir = port, aof_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(port=port, decode_responses=True, socket_timeout=2)

    def start(self) -> None:
        aof = (["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.aof_dir)] if self.aof_dir
               else ["--appendonly", "no"])
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", *aof], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.client.ping():
                    return
            time.sleep(0.05)
        raise TimeoutError("redis-server did not answer")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def spent(self) -> float:
        day = datetime.now(UTC).date().isoformat()
        return sum(float(v) for v in self.client.hgetall(f"tierwise:spend:{day}").values())  # type: ignore[union-attr]


@contextlib.contextmanager
def stack_of_servers(tmp: Path, *, workers: int, policies: dict[str, Any], aof: bool = False, paid: bool = True
                     ) -> Iterator[tuple[str, RedisProcess]]:
    """The stub, redis-server and `tierwise serve --workers N`; yields the gateway's URL and Redis."""
    with contextlib.ExitStack() as stack:
        stub_port, gw_port = free_port(), free_port()
        stub = start_process([sys.executable, "-m", "tierwise.testing.stub_backend", "--port", str(stub_port)],
                             f"http://127.0.0.1:{stub_port}/v1/models")
        stack.callback(stop_process, stub)
        store = RedisProcess(free_port(), aof_dir=tmp if aof else None)
        store.start()
        stack.callback(store.kill)
        config = {
            "tiers": [{"name": "cloud", "location": "cloud", "backend": "openai", "model": "stub",
                       "base_url": f"http://127.0.0.1:{stub_port}/v1", "cost": PRICE if paid else {},
                       "max_concurrent": 256, "max_queue": 1024}],
            "gateway": {"port": gw_port, "state_url": f"redis://127.0.0.1:{store.port}/0"},
            "policies": policies,
        }
        (tmp / "tiers.yaml").write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "tierwise", "serve", "-c", str(tmp / "tiers.yaml"), "--workers",
                   str(workers), "--log-level", "warning", "--no-access-log"]
        gateway = start_process(command, f"http://127.0.0.1:{gw_port}/healthz", timeout_s=120)
        stack.callback(stop_process, gateway)
        time.sleep(1.0)  # every worker up (the first answering /healthz is not all of them)
        yield f"http://127.0.0.1:{gw_port}", store


async def load(url: str, *, concurrency: int, duration_s: float, stop_after_refusals_s: float | None = None
               ) -> dict[str, int]:
    """Clients back to back for `duration_s`; counts answers by status (and 'error' for a failed connection).
    `stop_after_refusals_s`: stop that long after the first 429 instead."""
    counts: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    deadline = time.perf_counter() + duration_s
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal deadline
            while time.perf_counter() < deadline:
                try:
                    status = str((await client.post(f"{url}/v1/chat/completions", json=BODY)).status_code)
                except httpx.HTTPError as err:
                    status = f"error:{type(err).__name__}"
                counts[status] = counts.get(status, 0) + 1
                if status == "429" and stop_after_refusals_s is not None and counts[status] == 1:
                    deadline = min(deadline, time.perf_counter() + stop_after_refusals_s)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def load_line() -> str:
    return f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"


def bench_workers(args: argparse.Namespace, tmp: Path) -> None:
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):  # alternated: the machine's other load drifts between runs
        for workers in (1, 2):
            with stack_of_servers(tmp, workers=workers, policies={}, paid=not args.free) as (url, _):
                asyncio.run(load(url, concurrency=8, duration_s=1.0))  # warm up
                before = load_line()
                started, cpu = time.perf_counter(), time.process_time()
                counts = asyncio.run(load(url, concurrency=args.concurrency, duration_s=args.duration))
                elapsed = time.perf_counter() - started
                rate = counts.get("200", 0) / elapsed
                rates[workers].append(rate)
                # the load generator is one Python process: near 100 % of a core it is the bottleneck
                busy = (time.process_time() - cpu) / elapsed
                print(f"workers={workers}: {rate:.0f} requests/s at {args.concurrency} clients, {counts}, "
                      f"load generator {busy:.0%} of a core ({before} before)")
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"median requests/s: workers=1 {one:.0f}, workers=2 {two:.0f}; ratio 2 / 1: {two / one:.2f}")


def bench_budget(args: argparse.Namespace, tmp: Path) -> None:
    budget = args.requests_in_budget * ANSWER_USD
    with stack_of_servers(tmp, workers=2, policies={"daily_budget_usd": budget}) as (url, store):
        print(f"before: {load_line()}")
        counts = asyncio.run(load(url, concurrency=args.concurrency, duration_s=60, stop_after_refusals_s=2.0))
        time.sleep(1.0)  # the last charges reach Redis
        spent = store.spent()
    overspend = spent - budget
    print(f"budget {budget:.4f} USD ({args.requests_in_budget} answers), {args.concurrency} clients, 2 workers: "
          f"{counts}")
    print(f"spent {spent:.4f} USD in Redis = {counts.get('200', 0)} answers x {ANSWER_USD}; overspend "
          f"{overspend:.4f} USD = {overspend / ANSWER_USD:.2f} x one request's cost")


def bench_outage(args: argparse.Namespace, tmp: Path) -> None:
    policies = {"daily_budget_usd": 1e6, "rate_limits": {"requests_per_minute": 10_000_000}}
    with stack_of_servers(tmp, workers=2, policies=policies, aof=True) as (url, store):
        print(f"before: {load_line()}")

        async def with_outage() -> dict[str, int]:
            loaded = asyncio.create_task(load(url, concurrency=args.concurrency, duration_s=args.duration))
            await asyncio.sleep((args.duration - args.outage) / 2)
            store.kill()
            print(f"redis-server killed at {(args.duration - args.outage) / 2:.1f} s")
            await asyncio.sleep(args.outage)
            await asyncio.to_thread(store.start)
            print("redis-server started again (append-only file)")
            return await loaded

        counts = asyncio.run(with_outage())
        time.sleep(2.0)  # queued charges reach Redis
        spent = store.spent()
    answered = counts.get("200", 0)
    failed = sum(n for status, n in counts.items() if status != "200")
    print(f"{args.concurrency} clients for {args.duration:g} s, Redis down {args.outage:g} s: {counts}")
    print(f"failed requests: {failed}; spending in Redis {spent:.4f} USD for {answered} answers "
          f"({answered * ANSWER_USD:.4f} USD charged): difference {spent - answered * ANSWER_USD:+.4f} USD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["workers", "budget", "outage"])
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests-in-budget", type=int, default=100)
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1, help="workers: alternate 1 and 2 workers this many times")
    parser.add_argument("--free", action="store_true", help="workers: a free tier (no charge, so no sync per answer)")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
    args.duration = args.duration or (20.0 if args.scenario == "outage" else 10.0)
    tmp = Path(tempfile.mkdtemp(prefix="tierwise-bench-"))
    {"workers": bench_workers, "budget": bench_budget, "outage": bench_outage}[args.scenario](args, tmp)


if __name__ == "__main__":
    main()

"""Streaming load through the gateway, and a backend killed (kill -9) and restarted in the middle of it.

    python bench/load.py [--concurrency 50 200] [--duration 30] [--token-delay-ms 20] [--pieces 16]
    python bench/load.py --fault [--concurrency 200] [--duration 30]
    python bench/load.py --big-body-kb 4000 [--concurrency 20] [--duration 20]

Stub OpenAI backends pace their tokens (`--token-delay-ms` per token), each its own process; the gateway is its
own process (`tierwise serve`); N concurrent streaming clients run here. Plain mode measures each concurrency
directly against the stub and then through the gateway: requests/s, TTFT p50/p99, the gateway's added TTFT and
total latency, errors. `--fault` runs the load against two tiers (edge, cheaper; cloud, the fallback), kills the
edge stub with SIGKILL at 1/3 of the run and starts it again at 2/3, and reports every request's fate, when the
gateway stopped sending to edge (detection) and when edge served again (recovery). `--big-body-kb K` measures
the streams' latency through the gateway without, then with, one more client sending K-KiB prompts back to back
(the personal-data scan of a big prompt runs on the gateway's event loop, and every stream waits for it).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from loadgen import PROMPT, Outcome, cpu_s, rss_mb, run_load, start_gateway, start_stub, stub_tier, summarize

from tierwise.testing.servers import free_port, stop_process

# Every client of this bench connects from 127.0.0.1: the per-client connection cap (64, against one client
# hogging the gateway) would refuse most of 200 clients, as it would behind a proxy, where it is switched off too.
GATEWAY = {"failure_threshold": 3, "cooldown_s": 2.0, "probe_interval_s": 1.0,
           "connections": {"max_connections_per_client": None}}


def _body(model: str) -> dict[str, Any]:
    return {"model": model, "messages": PROMPT, "stream": True, "max_tokens": 64}


def plain(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
    port = free_port()
    stack.callback(stop_process, start_stub(port, token_delay_ms=args.token_delay_ms, pieces=args.pieces))
    gateway, url = start_gateway(tmp, [stub_tier("edge", port, location="edge", price=0.02)], **GATEWAY)
    stack.callback(stop_process, gateway)
    direct_url = f"http://127.0.0.1:{port}/v1/chat/completions"
    print(f"{'target':9} {'conc':>5} {'req/s':>7} {'ttft p50':>9} {'ttft p99':>9} {'total p50':>10} "
          f"{'total p99':>10} {'errors':>6}  kinds")
    for concurrency in args.concurrency:
        rows = {}
        for name, target, model in (("direct", direct_url, "stub"), ("tierwise", f"{url}/v1/chat/completions",
                                                                        "edge")):
            started, cpu = time.perf_counter(), cpu_s(gateway.pid)
            outcomes = asyncio.run(run_load(target, concurrency=concurrency, duration_s=args.duration,
                                            body=_body(model)))
            rows[name] = s = summarize(outcomes, time.perf_counter() - started)
            gateway_cpu = (cpu_s(gateway.pid) - cpu) / (time.perf_counter() - started)
            print(f"{name:9} {concurrency:>5} {s['rps']:>7.1f} {s['ttft_p50']:>9.1f} {s['ttft_p99']:>9.1f} "
                  f"{s['total_p50']:>10.1f} {s['total_p99']:>10.1f} {s['errors']:>6}  {s['kinds']}"
                  + (f"  gateway CPU {gateway_cpu:.2f} cores, {gateway_cpu / s['rps'] * 1000:.1f} ms/request"
                     if name == "tierwise" and s["rps"] else ""), flush=True)
        d, g = rows["direct"], rows["tierwise"]
        print(f"  added by the gateway at {concurrency}: TTFT p50 {g['ttft_p50'] - d['ttft_p50']:+.1f} ms, "
              f"p99 {g['ttft_p99'] - d['ttft_p99']:+.1f} ms; total p50 {g['total_p50'] - d['total_p50']:+.1f} ms, "
              f"p99 {g['total_p99'] - d['total_p99']:+.1f} ms; gateway RSS {rss_mb(gateway.pid):.0f} MiB",
              flush=True)


async def _big_sender(url: str, kb: int, duration: float) -> list[int]:
    body = {"model": "edge", "max_tokens": 8, "messages": [{"role": "user", "content": "lorem ipsum " * (kb * 85)}]}
    statuses: list[int] = []
    deadline = time.perf_counter() + duration
    async with httpx.AsyncClient(timeout=120) as client:
        while time.perf_counter() < deadline:
            statuses.append((await client.post(f"{url}/v1/chat/completions", json=body)).status_code)
    return statuses


async def _load_with_big(url: str, args: argparse.Namespace, concurrency: int) -> tuple[list[Outcome], list[int]]:
    big = asyncio.create_task(_big_sender(url, args.big_body_kb, args.duration))
    outcomes = await run_load(f"{url}/v1/chat/completions", concurrency=concurrency, duration_s=args.duration,
                              body=_body("edge"))
    return outcomes, await big


def big_bodies(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
    port = free_port()
    stack.callback(stop_process, start_stub(port, token_delay_ms=args.token_delay_ms, pieces=args.pieces))
    gateway, url = start_gateway(tmp, [stub_tier("edge", port, location="edge", price=0.02)],
                                 max_body_bytes=(args.big_body_kb + 64) * 1024, **GATEWAY)
    stack.callback(stop_process, gateway)
    concurrency = args.concurrency[0]
    for label in ("streams alone", f"+ {args.big_body_kb} KiB prompts"):
        started = time.perf_counter()
        if label == "streams alone":
            outcomes, statuses = asyncio.run(run_load(f"{url}/v1/chat/completions", concurrency=concurrency,
                                                      duration_s=args.duration, body=_body("edge"))), []
        else:
            outcomes, statuses = asyncio.run(_load_with_big(url, args, concurrency))
        s = summarize(outcomes, time.perf_counter() - started)
        worst = max((o.total_ms or 0) for o in outcomes)
        print(f"{concurrency} streams, {label}: {s['rps']:.1f} req/s, TTFT p50/p99 {s['ttft_p50']:.0f} / "
              f"{s['ttft_p99']:.0f} ms, total p99 {s['total_p99']:.0f} ms, slowest {worst:.0f} ms, errors "
              f"{s['errors']}; big prompts sent {len(statuses)} (statuses {sorted(set(statuses))})", flush=True)


class FaultWatcher:
    """Polls the gateway's /metrics (tier_up, set by its 1 s background probe) and kills/restarts the edge stub."""

    def __init__(self, url: str, edge_port: int, edge: Any, args: argparse.Namespace) -> None:
        self.url, self.port, self.edge, self.args = url, edge_port, edge, args
        self.kill_at, self.restart_at = args.duration / 3, 2 * args.duration / 3
        self.events: dict[str, float] = {}
        self.restarting = False

    def tier_up(self) -> int | None:
        try:
            text = httpx.get(f"{self.url}/metrics", timeout=5).text
        except httpx.HTTPError:
            return None
        found = re.search(r'tierwise_tier_up\{tier="edge"\} ([0-9.]+)', text)
        return None if found is None else int(float(found.group(1)))

    async def run(self, t0: float) -> None:
        while (now := time.perf_counter() - t0) < self.args.duration + 5:
            if "kill" not in self.events and now >= self.kill_at:
                self.edge.send_signal(signal.SIGKILL)
                self.edge.wait()
                self.events["kill"] = time.perf_counter() - t0
            if "kill" in self.events and "restart" not in self.events and now >= self.restart_at:
                self.events["restart"] = time.perf_counter() - t0
                self.edge = await asyncio.to_thread(
                    start_stub, self.port, token_delay_ms=self.args.token_delay_ms, pieces=self.args.pieces)
                self.events["edge ready"] = time.perf_counter() - t0
            up = await asyncio.to_thread(self.tier_up)
            if "kill" in self.events and up == 0 and "metrics down" not in self.events:
                self.events["metrics down"] = time.perf_counter() - t0
            if "edge ready" in self.events and up == 1 and "metrics up" not in self.events:
                self.events["metrics up"] = time.perf_counter() - t0
            await asyncio.sleep(0.05)


async def _fault_load(url: str, watcher: FaultWatcher, concurrency: int, duration: float) -> list[Outcome]:
    t0 = time.perf_counter()
    watch = asyncio.create_task(watcher.run(t0))
    outcomes = await run_load(f"{url}/v1/chat/completions", concurrency=concurrency, duration_s=duration,
                              body=_body("auto"))
    await watch
    return outcomes


def fault(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
    edge_port, cloud_port = free_port(), free_port()
    watcher_edge = start_stub(edge_port, token_delay_ms=args.token_delay_ms, pieces=args.pieces)
    cloud = start_stub(cloud_port, token_delay_ms=args.token_delay_ms, pieces=args.pieces)
    stack.callback(stop_process, cloud)
    tiers = [stub_tier("edge", edge_port, location="edge", price=0.02),
             stub_tier("cloud", cloud_port, location="cloud", price=1.0)]
    gateway, url = start_gateway(tmp, tiers, **GATEWAY)
    stack.callback(stop_process, gateway)
    watcher = FaultWatcher(url, edge_port, watcher_edge, args)
    stack.callback(lambda: stop_process(watcher.edge))
    concurrency = args.concurrency[-1]
    started = time.perf_counter()
    outcomes = asyncio.run(_fault_load(url, watcher, concurrency, args.duration))
    report_fault(outcomes, watcher.events, summarize(outcomes, time.perf_counter() - started), concurrency)


def report_fault(outcomes: list[Outcome], events: dict[str, float], s: dict[str, Any], concurrency: int) -> None:
    kill, ready = events.get("kill", float("nan")), events.get("edge ready", float("nan"))
    after_kill = [o for o in outcomes if o.started >= kill]
    skipped = next((o.started for o in after_kill if "edge" in o.excluded), float("nan"))
    served_again = next((o.started for o in outcomes if o.started >= ready and o.tier == "edge"), float("nan"))
    in_window = [o for o in outcomes if kill <= o.started < ready]
    lost = [o for o in outcomes if o.kind not in ("ok", "error_event")]
    print(f"fault run: {concurrency} streams, {s['requests']} requests, {s['rps']:.1f} req/s; kinds {s['kinds']}")
    print(f"  ok {s['ok']}, clear error event after tokens {s['kinds'].get('error_event', 0)}, "
          f"lost (HTTP error / cut off / exception) {len(lost)}, hung {s['kinds'].get('hung', 0)}")
    print(f"  between kill and restart: {len(in_window)} requests, "
          f"{sum(o.failover for o in in_window)} failed over, {sum(o.tier == 'cloud' for o in in_window)} on cloud")
    print("  events (s from start): " + ", ".join(f"{k} {v:.2f}" for k, v in events.items()))
    print(f"  detection: kill -> requests skip edge (circuit open) {skipped - kill:.2f} s; "
          f"kill -> /metrics tier_up=0 {events.get('metrics down', float('nan')) - kill:.2f} s")
    print(f"  recovery: edge process ready {ready - events.get('restart', float('nan')):.2f} s after restart; "
          f"ready -> first request served by edge {served_again - ready:.2f} s; "
          f"ready -> /metrics tier_up=1 {events.get('metrics up', float('nan')) - ready:.2f} s")
    print(f"  TTFT p50/p99 of successful requests {s['ttft_p50']:.1f} / {s['ttft_p99']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--token-delay-ms", type=float, default=20.0)
    parser.add_argument("--pieces", type=int, default=16, help="content tokens per answer")
    parser.add_argument("--fault", action="store_true", help="kill -9 and restart a backend mid-load")
    parser.add_argument("--big-body-kb", type=int, default=0, help="add a client sending prompts this big")
    args = parser.parse_args()
    mode = fault if args.fault else big_bodies if args.big_body_kb else plain
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tierwise-load-") as tmp:
        mode(args, Path(tmp), stack)


if __name__ == "__main__":
    main()

"""Steady streaming load for a long time; does the gateway's resident memory stay flat?

    python bench/soak.py [--minutes 30] [--concurrency 50] [--token-delay-ms 20] [--pieces 16] > soak.log

One stub backend and the gateway (`tierwise serve`), each its own process; N streaming clients here, in slices
of `--sample-s` seconds. After each slice it prints the gateway's VmRSS (from /proc) and the slice's requests and
errors. The baseline is the RSS after the first `--warmup-min` minutes (pools, caches and allocator arenas fill up
first); the verdict compares the last and the highest sample with it (target: within 10 %). Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from loadgen import PROMPT, rss_mb, run_load, start_gateway, start_stub, stub_tier, summarize

from tierwise.testing.servers import free_port, stop_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--token-delay-ms", type=float, default=20.0)
    parser.add_argument("--pieces", type=int, default=16)
    parser.add_argument("--sample-s", type=float, default=30.0, help="seconds per slice (one RSS sample each)")
    parser.add_argument("--warmup-min", type=float, default=2.0, help="minutes before the RSS baseline")
    args = parser.parse_args()
    body = {"model": "edge", "messages": PROMPT, "stream": True, "max_tokens": 64}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tierwise-soak-") as tmp:
        port = free_port()
        stack.callback(stop_process, start_stub(port, token_delay_ms=args.token_delay_ms, pieces=args.pieces))
        gateway, url = start_gateway(Path(tmp), [stub_tier("edge", port, location="edge", price=0.02)])
        stack.callback(stop_process, gateway)
        print(f"soak: {args.minutes:g} min, {args.concurrency} streams, {args.token_delay_ms:g} ms/token, "
              f"{args.pieces} tokens/answer; gateway pid {gateway.pid}, RSS at start {rss_mb(gateway.pid):.1f} MiB",
              flush=True)
        t0 = time.perf_counter()
        samples: list[tuple[float, float]] = []
        totals = {"requests": 0, "ok": 0}
        kinds: dict[str, int] = {}
        while (elapsed := time.perf_counter() - t0) < args.minutes * 60:
            slice_s = min(args.sample_s, args.minutes * 60 - elapsed)
            started = time.perf_counter()
            outcomes = asyncio.run(run_load(f"{url}/v1/chat/completions", concurrency=args.concurrency,
                                            duration_s=slice_s, body=body))
            s = summarize(outcomes, time.perf_counter() - started)
            totals["requests"] += s["requests"]
            totals["ok"] += s["ok"]
            for kind, n in s["kinds"].items():
                kinds[kind] = kinds.get(kind, 0) + n
            minute = (time.perf_counter() - t0) / 60
            samples.append((minute, rss_mb(gateway.pid)))
            print(f"{minute:6.1f} min  RSS {samples[-1][1]:7.1f} MiB  {s['rps']:6.1f} req/s  "
                  f"TTFT p50 {s['ttft_p50']:6.1f} ms  errors {s['errors']}", flush=True)
        verdict(samples, args.warmup_min, totals, kinds)


def verdict(samples: list[tuple[float, float]], warmup_min: float, totals: dict[str, int],
            kinds: dict[str, int]) -> None:
    after = [rss for minute, rss in samples if minute >= warmup_min] or [samples[-1][1]]
    base, last, peak = after[0], after[-1], max(after)
    print(f"requests {totals['requests']}, ok {totals['ok']}, kinds {kinds}")
    print(f"RSS baseline (after {warmup_min:g} min) {base:.1f} MiB, last {last:.1f} MiB ({(last / base - 1):+.1%}), "
          f"peak {peak:.1f} MiB ({(peak / base - 1):+.1%}); flat within 10 %: {peak <= base * 1.10}", flush=True)


if __name__ == "__main__":
    main()

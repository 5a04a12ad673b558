"""What the decision log costs, alone: `DecisionLog.append`, the writer thread's rate, and what the log adds to a
simulated request on one event loop (a record built and appended per request while the writer runs).

    python bench/decision_log_cost.py [--records 20000]

Through the real gateway the log's cost is measured by `python bench/gateway_overhead.py --with-log --rounds 4`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tierwise.traffic.log import DecisionLog
from tierwise.traffic.record import DecisionRecord
from tierwise.traffic.settings import DecisionLogSettings


def append_cost(work: Path, n: int = 20_000) -> tuple[float, float, float]:
    """(p50 µs, p99 µs of append, records written per second by the writer) for `n` records with text."""
    log = DecisionLog(DecisionLogSettings(path=work / "append.sqlite", keep_text=True, queue_size=n + 1))
    log.start()
    rec = DecisionRecord(request_id="r", time=time.time(), tier="device", model="m", router="learned",
                         reasons=["a reason of some length"] * 3, allowed=["device", "edge", "cloud"],
                         predicted_quality={"device": 0.5, "edge": 0.6, "cloud": 0.8}, prompt="q" * 400,
                         answer="a" * 1200)
    times = []
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter_ns()
        log.append(rec)
        times.append((time.perf_counter_ns() - t0) / 1000)
    log.close()
    elapsed = time.perf_counter() - started
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), log.written / elapsed


def loop_overhead(work: Path, n: int = 20_000) -> tuple[float, float, float, float]:
    """(p50, p99 µs per simulated request without the log; p50, p99 with it) on one event loop.

    A "request" is a stand-in for the gateway's own work (JSON-encode and decode a 2 KB chat body, then yield to
    the loop); with the log each also builds a DecisionRecord and appends it while the writer thread runs, so
    what the writer takes from the event loop (the GIL while it builds rows) is counted too."""
    payload = {"model": "auto", "messages": [{"role": "user", "content": "x" * 2000}], "max_tokens": 64}

    async def serve(log: DecisionLog | None) -> list[float]:
        times = []
        for i in range(n):
            t0 = time.perf_counter_ns()
            body = json.loads(json.dumps(payload))
            if log is not None:
                log.append(DecisionRecord(request_id=f"r{i}", time=time.time(), tier="device", model="m",
                                          router="learned", router_version="v", reasons=["r"] * 3,
                                          allowed=["device", "edge", "cloud"],
                                          predicted_quality={"device": 0.5, "edge": 0.6, "cloud": 0.8},
                                          latency_ms=1.0, prompt=body["messages"][0]["content"], answer="a" * 800))
            await asyncio.sleep(0)
            times.append((time.perf_counter_ns() - t0) / 1000)
        return times

    without = asyncio.run(serve(None))
    log = DecisionLog(DecisionLogSettings(path=work / "overhead.sqlite", keep_text=True, queue_size=n + 1))
    log.start()
    with_log = asyncio.run(serve(log))
    log.close()
    return (float(np.percentile(without, 50)), float(np.percentile(without, 99)),
            float(np.percentile(with_log, 50)), float(np.percentile(with_log, 99)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        p50, p99, rate = append_cost(Path(tmp), args.records)
        o = loop_overhead(Path(tmp), args.records)
    print(f"append p50 {p50:.1f} µs, p99 {p99:.1f} µs; writer {rate:,.0f} records/s")
    print(f"simulated request: p50 {o[0]:.1f} / p99 {o[1]:.1f} µs without the log, p50 {o[2]:.1f} / p99 "
          f"{o[3]:.1f} µs with it: +{o[2] - o[0]:.1f} µs p50")


if __name__ == "__main__":
    main()

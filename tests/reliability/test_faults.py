"""A backend killed with SIGKILL in the middle of concurrent streaming load, then started again.

Every request either succeeds (failover before its first token) or ends with a clear error event (its tier died
after tokens were sent); none hangs past its bound; the dead tier is skipped, and serves again once it is back.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import openai_tier
from tests.reliability.streams import Result, chat, send, send_all
from tierwise.testing.servers import free_port, serve_in_thread, stop_process, wait_until_ready
from tierwise.testing.stub_backend import StubBehavior, create_stub_app

pytestmark = pytest.mark.slow  # starts a backend process twice (a few seconds on a busy machine)
BOUND_S = 20.0  # per request: far beyond any answer here; reaching it counts as a hang


def start_stub_process(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tierwise.testing.stub_backend", "--port", str(port), "--token-delay-ms", "20",
         "--pieces", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_ready(f"http://127.0.0.1:{port}/v1/models", timeout_s=60, process=process)
    return process


async def _load(url: str, edge: subprocess.Popen[bytes], *, clients: int, seconds: float,
                kill_at: float) -> tuple[list[tuple[float, Result]], float]:
    """`clients` streaming back to back for `seconds`; the edge process is killed at `kill_at`."""
    started = time.monotonic()
    outcomes: list[tuple[float, Result]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=BOUND_S) as client:

        async def worker() -> None:
            while (t := time.monotonic() - started) < seconds:
                outcomes.append((t, await send(client, url, chat("auto"), bound_s=BOUND_S)))

        async def killer() -> float:
            await asyncio.sleep(kill_at)
            edge.send_signal(signal.SIGKILL)
            await asyncio.to_thread(edge.wait)
            return time.monotonic() - started

        *_, killed_at = await asyncio.gather(*(worker() for _ in range(clients)), killer())
    return outcomes, killed_at


def test_kill_9_under_load_loses_nothing_and_the_tier_comes_back(run_gateway):
    port = free_port()
    edge = start_stub_process(port)
    cloud = StubBehavior(pieces=[f" c{i}" for i in range(10)], token_delay_s=0.02, record=False)
    try:
        with serve_in_thread(create_stub_app(cloud)) as cloud_url:
            url = run_gateway({
                "tiers": [openai_tier("edge", f"http://127.0.0.1:{port}/v1", max_concurrent=64, retries=1,
                                      retry_backoff_s=0.01, connect_timeout_s=1.0),
                          openai_tier("cloud", f"{cloud_url}/v1", location="cloud", max_concurrent=64,
                                      cost={"input_per_mtok": 1.0})],
                "gateway": {"failure_threshold": 3, "cooldown_s": 0.5, "probe_interval_s": 0.25},
            })
            outcomes, killed_at = asyncio.run(_load(url, edge, clients=24, seconds=3.0, kill_at=1.0))
            _check_outcomes(outcomes, killed_at)

            down = httpx.get(f"{url}/healthz", timeout=10).json()
            assert down["status"] == "degraded" and down["tiers"]["edge"]["available"] is False
            edge = start_stub_process(port)  # the same port, a new process
            deadline = time.monotonic() + 30
            back: list[Result] = []
            while time.monotonic() < deadline and not any(r.tier == "edge" for r in back):
                back = send_all(url, [chat("auto")] * 4, concurrency=4)
                assert all(r.clean for r in back), back
                time.sleep(0.1)
            assert any(r.tier == "edge" for r in back), "edge never served again after its restart"
            assert httpx.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
    finally:
        stop_process(edge)


def _check_outcomes(outcomes: list[tuple[float, Result]], killed_at: float) -> None:
    results = [r for _, r in outcomes]
    assert not [r for r in results if r.hung or r.exception], "hung or failed requests"
    assert all(r.status == 200 and r.done for r in results), [r for r in results if not r.done][:2]
    broken = [r for r in results if not r.clean]
    for r in broken:  # its first chunk had been sent: the error is reported in the stream, naming the dead tier
        assert r.tier == "edge" and len(r.data) >= 3 and "edge" in r.error_event["message"], r
    before = [r for t, r in outcomes if t < killed_at]
    after = [r for t, r in outcomes if t > killed_at]
    assert any(r.clean and r.tier == "edge" for r in before)  # edge served while it was alive
    assert after and all(r.clean and r.tier == "cloud" for r in after)  # then nothing was lost: cloud took over
    assert any(r.report.get("failover") for r in after) or broken  # the kill was felt, not sidestepped

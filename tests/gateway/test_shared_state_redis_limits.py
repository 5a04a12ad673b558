"""Two gateway replicas sharing rate limits and in-flight counts through a real redis-server, and load carried
through a Redis outage (skipped without redis-server)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import openai_tier
from tests.gateway.redis_replicas import PRICE, replica_apps, running_redis, wait_for
from tierwise.state import key_digest
from tierwise.state.budget_guard import reserve_prefix
from tierwise.state.in_flight import INFLIGHT_KEY
from tierwise.state.rate_limits import window_key
from tierwise.state.sliding_window import window_at

pytestmark = pytest.mark.slow


def post(url: str, *, model: str = "auto", max_tokens: int = 5, stream: bool = False) -> httpx.Response:
    body = {"model": model, "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=20)


def test_replicas_together_admit_exactly_the_request_limit_under_concurrency(redis_server, backends):
    cloud = [openai_tier("cloud", backends["cloud"][0], location="cloud")]
    with contextlib.ExitStack() as stack:
        (a, _), (b, _) = replica_apps(stack, redis_server.port, cloud,
                                      policies={"rate_limits": {"requests_per_minute": 5}})
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: post(a if i % 2 else b), range(16)))
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) == 5 and statuses.count(429) == 11, statuses  # alone, each would admit 5
    assert all(int(r.headers["retry-after"]) >= 1 for r in answers if r.status_code == 429)


def test_token_estimates_are_corrected_in_redis_with_real_usage(redis_server, backends):
    cloud = [openai_tier("cloud", backends["cloud"][0], location="cloud")]
    with contextlib.ExitStack() as stack:
        a, b = (url for url, _ in replica_apps(stack, redis_server.port, cloud,
                                               policies={"rate_limits": {"tokens_per_minute": 1000}}))
        window = window_at(time.time())[0]
        # ~302 tokens each at admission: three would fill the minute; corrected to 12 each, all of them fit
        answers = [post(url, max_tokens=300, stream=i % 3 == 0) for i, url in enumerate([a, b] * 4)]
        assert [r.status_code for r in answers] == [200] * 8
        if window_at(time.time())[0] != window:
            pytest.skip("the minute turned during the test")  # the counts are split over two windows
        key = window_key(key_digest(None), window)
        wait_for(lambda: redis_server.client.hget(key, "t") == str(8 * 12), what="the corrections in Redis")
        assert redis_server.client.hget(key, "r") == "8"


def _tiers(stubs: dict[str, Any]) -> list[dict[str, Any]]:
    """A free cloud tier (the router's first choice) and a paid edge tier to shed to."""
    return [openai_tier("edge", stubs["edge"][0], cost={"input_per_mtok": 1.0}),
            openai_tier("cloud", stubs["cloud"][0], location="cloud", read_timeout_s=30)]


def test_a_tier_busy_on_one_replica_is_saturated_for_the_other(redis_server, backends):
    backends["cloud"][1].token_delay_s = 0.5  # each streamed answer takes ~2.5 s
    policies = {"cloud_max_in_flight": 2}
    with contextlib.ExitStack() as stack:
        (a, _), (b, app_b) = replica_apps(stack, redis_server.port, _tiers(backends), policies=policies)
        assert post(b).headers["x-tierwise-tier"] == "cloud"
        release = threading.Event()

        def hold_a_stream() -> None:
            body = {"model": "cloud", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            with httpx.stream("POST", f"{a}/v1/chat/completions", json=body, timeout=30) as answer:
                lines = answer.iter_lines()  # kept: a dropped iterator closes the connection
                next(lines)
                release.wait(20)

        holders = [threading.Thread(target=hold_a_stream) for _ in range(2)]
        for holder in holders:
            holder.start()
        try:
            views = lambda: {v.name: v.in_flight for v in app_b.state.tierwise.tier_views()}  # noqa: E731
            wait_for(lambda: views()["cloud"] == 2, what="B to see A's two requests in flight", timeout_s=5)
            shed = post(b)
            assert shed.headers["x-tierwise-tier"] == "edge"
            assert "saturated (2 in flight" in shed.json()["tierwise"]["excluded"]["cloud"]
        finally:
            release.set()
            for holder in holders:
                holder.join(30)
        wait_for(lambda: views()["cloud"] == 0, what="B to see them end", timeout_s=10)
        assert post(b).headers["x-tierwise-tier"] == "cloud"


def test_a_replica_that_stops_beating_stops_counting(redis_server, backends):
    with contextlib.ExitStack() as stack:
        ((b, app_b),) = replica_apps(stack, redis_server.port, _tiers(backends), n=1,
                                     policies={"cloud_max_in_flight": 3})
        # a replica that crashed with 3 requests in flight on the cloud: its last heartbeat, never renewed
        ghost = json.dumps({"at": time.time(), "tiers": {"cloud": 3}})
        redis_server.client.hset(INFLIGHT_KEY, "crashed-replica", ghost)
        wait_for(lambda: app_b.state.tierwise.tier_views()[1].in_flight == 3, what="B to count the ghost")
        assert post(b).headers["x-tierwise-tier"] == "edge"
        ttl = app_b.state.tierwise.shared.in_flight.ttl_s
        wait_for(lambda: app_b.state.tierwise.tier_views()[1].in_flight == 0, what="the ghost to expire",
                 timeout_s=ttl + 3)
        assert post(b).headers["x-tierwise-tier"] == "cloud"
        wait_for(lambda: not redis_server.client.hexists(INFLIGHT_KEY, "crashed-replica"),
                 what="the ghost's field deleted")


def test_load_through_a_redis_outage_fails_no_request_and_loses_no_spending(backends, tmp_path: Path):
    cloud = [openai_tier("cloud", backends["cloud"][0], location="cloud", cost=PRICE)]
    policies = {"daily_budget_usd": 1000.0, "rate_limits": {"requests_per_minute": 100_000}}
    with running_redis(aof_dir=tmp_path) as server, contextlib.ExitStack() as stack:
        apps = replica_apps(stack, server.port, cloud, policies=policies)
        urls = [url for url, _ in apps]
        stop = threading.Event()
        results: list[tuple[int, float]] = []  # (status, cost charged)
        health_seen: list[dict[str, Any]] = []

        def client(i: int) -> None:
            with httpx.Client(timeout=20) as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    body = {"model": "auto", "max_tokens": 5, "stream": (i + n) % 2 == 0,
                            "messages": [{"role": "user", "content": "hi"}]}
                    answer = http.post(f"{urls[(i + n) % 2]}/v1/chat/completions", json=body)
                    text = answer.text  # a stream's cost is in its last chunk
                    cost = float(answer.headers.get("x-tierwise-cost-usd") or _streamed_cost(text))
                    results.append((answer.status_code, cost))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            server.stop()  # killed (SIGKILL) under load
            wait_for(lambda: not apps[0][1].state.tierwise.shared.up, what="replica A to notice")
            health_seen.append(httpx.get(f"{urls[0]}/healthz", timeout=5).json())
            time.sleep(1.5)
            during = len(results)
            server.start()  # from its append-only file: what it acknowledged before the kill is kept
            wait_for(lambda: all(app.state.tierwise.shared.up for _, app in apps), what="both to reconnect")
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert len(results) > during > 0
        assert [status for status, _ in results if status != 200] == []
        for _, app in apps:
            wait_for(lambda app=app: app.state.tierwise.shared.ledger.queued_usd() == 0,
                     what="every charge written to Redis")
        charged = sum(cost for _, cost in results)
        in_redis = server.spent_today().get(key_digest(None), 0.0)
        # Never lost; a sync whose reply the kill cut off may have been applied and is then sent again.
        assert in_redis >= charged - 1e-9 and in_redis <= charged * 1.2, (in_redis, charged)
        assert health_seen[0]["status"] == "degraded" and health_seen[0]["shared_state"]["up"] is False
        metrics = httpx.get(f"{urls[0]}/metrics", timeout=5).text + httpx.get(f"{urls[1]}/metrics", timeout=5).text
        assert 'tierwise_rate_limit_decisions_total{result="admitted",where="local"}' in metrics
        assert httpx.get(f"{urls[0]}/healthz", timeout=5).json()["shared_state"] == {"up": True, "replicas": 2}


def _streamed_cost(text: str) -> float:
    for line in reversed(text.splitlines()):
        if line.startswith("data: {"):
            report = json.loads(line[6:]).get("tierwise") or {}
            if "cost_usd" in report:
                return float(report["cost_usd"])
    raise AssertionError(f"no cost in the stream: {text[-300:]}")


def test_concurrent_requests_on_two_replicas_never_spend_more_than_the_budget(redis_server, backends):
    backends["cloud"][1].header_delay_s = 0.5  # every request is in flight at once
    cloud = [openai_tier("cloud", backends["cloud"][0], location="cloud", cost=PRICE)]
    with contextlib.ExitStack() as stack:
        (a, app_a), (b, app_b) = replica_apps(stack, redis_server.port, cloud)  # 0.05 USD: ~2 reservations
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: post(a if i % 2 else b), range(16)))
        served = sum(r.status_code == 200 for r in answers)
        assert served >= 2 and {r.status_code for r in answers} == {200, 429}
        for app in (app_a, app_b):
            wait_for(lambda app=app: app.state.tierwise.shared.ledger.queued_usd() == 0, what="charges in Redis")
        assert sum(redis_server.spent_today().values()) == pytest.approx(0.012 * served)
        assert 0.012 * served <= 0.05  # without reservations all 16 are served (0.19 USD)
        # every reservation was released with its charge
        client = redis_server.client
        wait_for(lambda: all(not client.hgetall(k) for k in client.keys("tierwise:reserve:*")),
                 what="no reservation left")


def test_a_crashed_replicas_reservations_expire(redis_server, backends):
    cloud = [openai_tier("cloud", backends["cloud"][0], location="cloud", cost=PRICE)]
    with contextlib.ExitStack() as stack:
        ((b, app_b),) = replica_apps(stack, redis_server.port, cloud, n=1)
        day = datetime.now(UTC).date()
        # a replica that crashed holding the whole budget: its heartbeat and reservations, never renewed
        redis_server.client.hset(INFLIGHT_KEY, "crashed-replica", json.dumps({"at": time.time(), "tiers": {}}))
        held = reserve_prefix(day) + "crashed-replica"
        redis_server.client.hset(held, key_digest(None), "0.05")
        redis_server.client.expire(held, int(app_b.state.tierwise.shared.in_flight.ttl_s) + 1)
        refused = post(b)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "daily_budget_exceeded"
        wait_for(lambda: not redis_server.client.exists(held), what="the reservations to expire", timeout_s=10)
        assert post(b).status_code == 200


def test_two_serve_workers_share_a_rate_limit(tmp_path: Path, backends):
    import subprocess
    import sys

    import yaml

    from tierwise.testing.servers import free_port, stop_process, wait_until_ready

    with running_redis() as server:
        port = free_port()
        config = tmp_path / "tiers.yaml"
        config.write_text(yaml.safe_dump({
            "tiers": [openai_tier("edge", backends["edge"][0])],
            "gateway": {"state_url": f"redis://127.0.0.1:{server.port}/0", "state_sync_interval_s": 0.1},
            "policies": {"rate_limits": {"requests_per_minute": 3, "per_key": {"sha256:00": {}}}},
        }))
        process = subprocess.Popen([sys.executable, "-m", "tierwise", "serve", "-c", str(config), "--port",
                                    str(port), "--workers", "2", "--log-level", "warning"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/healthz", timeout_s=60, process=process)
            statuses = [httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                                   headers={"Connection": "close"},  # a new connection: either worker
                                   json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
                                   ).status_code for _ in range(8)]
            replicas = server.client.hkeys(INFLIGHT_KEY)  # both workers publish their heartbeat
            admitted = server.client.hget(window_key(key_digest(None), window_at(time.time())[0]), "r")
        finally:
            stop_process(process)
    assert statuses == [200, 200, 200, 429, 429, 429, 429, 429]  # alone, each worker would admit 3
    assert len(replicas) == 2
    assert admitted in ("3", None)  # None: the minute turned after the requests

"""Shared-state test helpers: a redis-server of a test's own on a free loopback port (no persistence unless asked),
and N gateway replicas on it. Used by the shared-state, rate-limit and worker tests and this folder's conftest."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from tierwise.config import settings_from_dict
from tierwise.gateway.app import create_app
from tierwise.testing.servers import free_port, serve_in_thread

PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}  # the stub's 7 + 5 tokens cost 0.012 USD
BUDGET = 0.05  # three requests (~0.018 USD expected each); the fourth is refused
SYNC_S = 0.1


class RedisServer:
    """redis-server on 127.0.0.1:port, which a test may stop and start again (empty: nothing is saved)."""

    def __init__(self, port: int, *, password: str | None = None, aof_dir: Path | None = None) -> None:
        self.port = port
        self.password = password
        self.aof_dir = aof_dir  # set: an append-only file, fsynced at every write, survives a kill
        self.process: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(port=port, password=password, decode_responses=True, socket_timeout=2,
                                  socket_connect_timeout=2)

    def start(self) -> None:
        auth = ["--requirepass", self.password] if self.password else []
        aof = (["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.aof_dir)] if self.aof_dir
               else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *aof, *auth],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, what="redis-server to answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def _answers(self) -> bool:
        with contextlib.suppress(redis.RedisError):
            return bool(self.client.ping())
        return False

    def spent_today(self) -> dict[str, float]:
        day = datetime.now(UTC).date().isoformat()
        return {k: float(v) for k, v in self.client.hgetall(f"tierwise:spend:{day}").items()}  # type: ignore[union-attr]


def wait_for(check: Callable[[], bool], *, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def running_redis(*, password: str | None = None, aof_dir: Path | None = None) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(free_port(), password=password, aof_dir=aof_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.client.close()


def replicas(stack: contextlib.ExitStack, redis_port: int, tiers: list[dict[str, Any]], n: int = 2) -> list[str]:
    return [url for url, _ in replica_apps(stack, redis_port, tiers, n)]


def replica_apps(
    stack: contextlib.ExitStack, redis_port: int, tiers: list[dict[str, Any]], n: int = 2,
    *, policies: dict[str, Any] | None = None,
) -> list[tuple[str, Any]]:
    """N gateways on one Redis: (base URL, app) each."""
    config = {
        "tiers": tiers,
        "gateway": {"state_url": f"redis://127.0.0.1:{redis_port}/0", "state_sync_interval_s": SYNC_S,
                    "failure_threshold": 2, "cooldown_s": 60, "probe_interval_s": 60},
        "policies": {"daily_budget_usd": BUDGET} if policies is None else policies,
    }
    apps = [create_app(settings_from_dict(config)) for _ in range(n)]
    return [(stack.enter_context(serve_in_thread(app)), app) for app in apps]

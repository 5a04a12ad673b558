"""`tierwise serve --workers N`: N processes on one port sharing state through Redis; refused without it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from tests.gateway.redis_replicas import running_redis
from tierwise.cli import app
from tierwise.testing.servers import child_pids, free_port, serve_in_thread, stop_process, wait_until_ready
from tierwise.testing.stub_backend import StubBehavior, create_stub_app


def _config(path: Path, base_url: str, **gateway: object) -> Path:
    path.write_text(yaml.safe_dump({
        "tiers": [{"name": "edge", "location": "edge", "backend": "openai", "base_url": base_url, "model": "m",
                   "cost": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}}],
        "gateway": gateway, "policies": {"daily_budget_usd": 0.05}}))
    return path


def test_several_workers_without_shared_state_are_refused(tmp_path):
    result = CliRunner().invoke(app, ["serve", "-c", str(_config(tmp_path / "t.yaml", "http://127.0.0.1:9/v1")),
                                      "--workers", "2"])
    assert result.exit_code == 2 and "gateway.state_url" in result.output


@pytest.mark.slow
def test_two_workers_on_one_port_share_the_budget(tmp_path):
    behavior = StubBehavior(record=False)
    with running_redis() as redis_server, serve_in_thread(create_stub_app(behavior)) as backend:
        port = free_port()
        config = _config(tmp_path / "t.yaml", f"{backend}/v1", state_url=f"redis://127.0.0.1:{redis_server.port}/0",
                         state_sync_interval_s=0.1)
        process = subprocess.Popen([sys.executable, "-m", "tierwise", "serve", "-c", str(config), "--port",
                                    str(port), "--workers", "2", "--log-level", "warning"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/healthz", timeout_s=60, process=process)
            body = {"model": "edge", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
            statuses = []
            with httpx.Client(timeout=10) as client:
                for _ in range(12):  # each answer costs 0.012 USD: the budget holds four, whichever worker serves
                    statuses.append(client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                                                headers={"Connection": "close"}).status_code)
                    time.sleep(0.25)  # past the sync interval: each worker has seen the other's spending
            # alone, each worker would grant the whole budget (3 to 4 answers each)
            assert set(statuses) == {200, 429} and statuses.count(200) <= 5, statuses
            assert len(child_pids(process.pid)) >= 2  # two worker processes (and uvicorn's supervisor above them)
            time.sleep(0.3)
            # every answer's spending (0.012 USD each), from whichever worker, is in Redis
            assert sum(redis_server.spent_today().values()) == pytest.approx(0.012 * statuses.count(200))
        finally:
            stop_process(process)

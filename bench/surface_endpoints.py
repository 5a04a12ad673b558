"""Latency the gateway adds per endpoint — chat, legacy text completions, embeddings forwarded to a tier — next
to calling the same stub backend directly, one client at a time, on this machine.

    python bench/surface_endpoints.py [--requests 300]

The stub backend (answers at once) and `tierwise serve` (one `openai` tier on the stub, `embedding_model` set)
run as their own processes on 127.0.0.1; this process sends non-streaming requests one after another with httpx
and prints p50/p99 per endpoint, direct and through the gateway, and the difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

from tierwise.testing.servers import free_port, start_process, stop_process

BODIES = {
    "chat/completions": {"messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 8},
    "completions": {"prompt": "Say hello in five words.", "max_tokens": 8},
    "embeddings": {"input": ["Say hello in five words.", "The tide comes in twice a day."]},
}


def timings(client: httpx.Client, url: str, body: dict[str, object], *, requests: int) -> np.ndarray:
    for _ in range(20):  # warm-up: connections, first-request paths
        client.post(url, json=body).raise_for_status()
    out = []
    for _ in range(requests):
        started = time.perf_counter()
        client.post(url, json=body).raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    stub_port, gateway_port = free_port(), free_port()
    stub = start_process([sys.executable, "-m", "tierwise.testing.stub_backend", "--port", str(stub_port)],
                         f"http://127.0.0.1:{stub_port}/v1/models")
    config = {"tiers": [{"name": "edge", "location": "edge", "backend": "openai", "model": "stub",
                         "base_url": f"http://127.0.0.1:{stub_port}/v1", "embedding_model": "stub-embed"}],
              "policies": {"personal_data": "off"}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiers.yaml"
        path.write_text(yaml.safe_dump(config))
        # warning: at info every upstream call is logged, and the unread stderr pipe would fill and block it
        command = [sys.executable, "-m", "tierwise", "serve", "-c", str(path), "--host", "127.0.0.1", "--port",
                   str(gateway_port), "--no-access-log", "--log-level", "warning"]
        gateway = start_process(command, f"http://127.0.0.1:{gateway_port}/healthz", env={**os.environ}, timeout_s=60)
        try:
            print(f"{'endpoint':18} {'direct p50':>10} {'p99':>7} {'gateway p50':>11} {'p99':>7} {'+p50 ms':>8}")
            with httpx.Client(timeout=30) as client:
                for endpoint, body in BODIES.items():
                    direct = timings(client, f"http://127.0.0.1:{stub_port}/v1/{endpoint}",
                                     {**body, "model": "stub"}, requests=args.requests)
                    routed = timings(client, f"http://127.0.0.1:{gateway_port}/v1/{endpoint}",
                                     {**body, "model": "auto"}, requests=args.requests)
                    d50, d99, g50, g99 = (np.percentile(direct, 50), np.percentile(direct, 99),
                                          np.percentile(routed, 50), np.percentile(routed, 99))
                    print(f"{endpoint:18} {d50:10.2f} {d99:7.2f} {g50:11.2f} {g99:7.2f} {g50 - d50:8.2f}")
        finally:
            stop_process(gateway)
            stop_process(stub)


if __name__ == "__main__":
    main()

"""Device-tier speed through the gateway next to raw llama-cpp-python, on the same real model, in one run.

    python bench/device_throughput.py [--rounds 5] [--max-tokens 128] [--threads 2]

Raw: `llama_cpp.Llama.create_chat_completion(stream=True)` on SmolLM2-135M-Instruct (Q4_1) in this process.
Gateway: `tierwise serve -c <a device-only config>` in its own process, asked by httpx with `stream: true`, the same
prompt, the same sampling (temperature 0: both produce the same tokens, so the figures compare like with like).
Rounds alternate raw / gateway so drift on a shared machine hits both. Printed per side: time to first token
(median), decode tokens/s after the first token (median), and the gateway's difference to raw.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from tierwise.bundled import SMOLLM2_NAME, smollm2_path
from tierwise.testing.servers import cpu_seconds, free_port, start_process, stop_process

MESSAGES = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def _measure(chunks: Iterator[str]) -> tuple[float, float, int]:
    """(time to first token s, decode tokens/s after it, tokens) over a stream of content pieces."""
    started = time.perf_counter()
    first = last = None
    tokens = 0
    for _ in chunks:
        last = time.perf_counter()
        first = first or last
        tokens += 1
    assert first is not None and last is not None and tokens > 1, "no tokens came back"
    return first - started, (tokens - 1) / (last - first), tokens


def raw_rounds(model: object, *, max_tokens: int) -> tuple[float, float, int]:
    def pieces() -> Iterator[str]:
        for chunk in model.create_chat_completion(  # type: ignore[attr-defined]
            messages=MESSAGES, max_tokens=max_tokens, temperature=0.0, top_p=1.0, stream=True
        ):
            content = chunk["choices"][0]["delta"].get("content")
            if content:
                yield content

    return _measure(pieces())


def gateway_round(client: httpx.Client, url: str, *, max_tokens: int) -> tuple[float, float, int]:
    body = {"model": "device", "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0.0, "stream": True}

    def pieces() -> Iterator[str]:
        with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                    yield chunk["choices"][0]["delta"]["content"]

    return _measure(pieces())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from llama_cpp import Llama

    path = smollm2_path()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "device.yaml"
        config.write_text(yaml.safe_dump({"tiers": [{
            "name": "device", "location": "device", "backend": "llama_cpp", "model_path": str(path),
            "model": SMOLLM2_NAME, "n_ctx": 2048, "n_threads": args.threads}]}))
        gateway = start_process(
            [sys.executable, "-m", "tierwise", "serve", "-c", str(config), "--port", str(port), "--log-level",
             "warning"], f"http://127.0.0.1:{port}/healthz", timeout_s=120)
        # the gateway's tier has its own model; this one is the raw baseline (logits_all as the tier's default)
        model = Llama(model_path=str(path), n_ctx=2048, n_threads=args.threads, logits_all=True, verbose=False)
        url = f"http://127.0.0.1:{port}"
        results: dict[str, list[tuple[float, float, int]]] = {"raw llama-cpp-python": [], "through the gateway": []}
        gateway_cpu_s = 0.0
        try:
            with httpx.Client(timeout=120) as client:
                gateway_round(client, url, max_tokens=8)  # warm-up: first request pays one-off costs
                raw_rounds(model, max_tokens=8)
                for _ in range(args.rounds):
                    results["raw llama-cpp-python"].append(raw_rounds(model, max_tokens=args.max_tokens))
                    before = cpu_seconds(gateway.pid)
                    results["through the gateway"].append(gateway_round(client, url, max_tokens=args.max_tokens))
                    gateway_cpu_s += cpu_seconds(gateway.pid) - before
        finally:
            stop_process(gateway)
            model.close()

    print(f"SmolLM2-135M-Instruct Q4_1, {args.rounds} rounds, max_tokens {args.max_tokens}, {args.threads} threads")
    print(f"{'':22} {'TTFT p50 ms':>12} {'decode tok/s p50':>17} {'tokens':>7}")
    medians = {}
    for name, runs in results.items():
        ttft = statistics.median(r[0] for r in runs) * 1000
        rate = statistics.median(r[1] for r in runs)
        medians[name] = (ttft, rate)
        print(f"{name:22} {ttft:12.1f} {rate:17.1f} {statistics.median(r[2] for r in runs):7.0f}")
    (raw_ttft, raw_rate), (gw_ttft, gw_rate) = medians.values()
    print(f"gateway vs raw: TTFT {gw_ttft - raw_ttft:+.1f} ms, decode {100 * (gw_rate / raw_rate - 1):+.1f} %")
    tokens = sum(r[2] for r in results["through the gateway"])
    print(f"gateway process CPU (its event loop, not the model's worker): {1000 * gateway_cpu_s / tokens:.2f} ms "
          "per streamed token")


if __name__ == "__main__":
    main()

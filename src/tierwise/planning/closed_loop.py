"""Closed-loop load: `concurrency` clients, each sending its next request the moment the last one finished.

That is how benchmark clients (AIPerf, genai-perf, `vllm bench serve --max-concurrency`) load a server, and how
NVIDIA NIM's published tables were measured. The engine is the same as `simulate.simulate`'s: iteration-level
continuous batching, prefill-first, FCFS admission within batch slots, prefill token budget and KV reservation.
Arrivals depend on completions here, so the loop is a plain one over the step model's calls (no inlined tables);
a closed-loop run is thousands of steps, not millions.

Usage: `simulate_closed_loop(pm, concurrency=25, prompt_lens=p, output_lens=o, config=SchedulerConfig(...))`
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from tierwise.planning.perf_model import StepModel
from tierwise.planning.simulate import SchedulerConfig, SimulationResult, _admit


def simulate_closed_loop(
    step_model: StepModel,
    *,
    concurrency: int,
    prompt_lens: np.ndarray,
    output_lens: np.ndarray,
    config: SchedulerConfig,
    start_times: np.ndarray | None = None,
) -> SimulationResult:
    """Serve `len(prompt_lens)` requests from `concurrency` clients; request i is sent by the first free client.

    `start_times` (s, one per client) staggers the clients' first requests; all start at 0 without it. With
    equal request lengths, clients that start together stay in lock-step waves forever, which real clients
    (started a little apart, with lengths that differ by a token or two) do not.
    """
    prompt = np.asarray(prompt_lens, dtype=np.int64).tolist()
    output = np.asarray(output_lens, dtype=np.int64).tolist()
    n = len(prompt)
    need = [p + o for p, o in zip(prompt, output, strict=True)]
    arrival, first, finish = [math.nan] * n, [math.nan] * n, [math.nan] * n
    waiting: deque[int] = deque()
    running: dict[int, int] = {}  # request → tokens still to decode
    now = integral = busy = 0.0
    prefills = decodes = decoded = kv_reserved = context_sum = 0
    sent = 0

    def send(count: int, at: float | None = None) -> None:
        nonlocal sent
        for _ in range(min(count, n - sent)):
            arrival[sent] = now if at is None else at
            waiting.append(sent)
            sent += 1

    starts = sorted(np.zeros(concurrency) if start_times is None else np.asarray(start_times, dtype=float))
    starts.reverse()  # pop() takes the earliest
    while waiting or running or (starts and sent < n):
        while starts and starts[-1] <= now:  # a client started during the last step: its request waited for it
            send(1, at=starts.pop())
        if not (waiting or running):  # idle until the next client starts (if any is left to start)
            if not starts or sent == n:
                break
            now = starts[-1]
            continue
        in_system = len(waiting) + len(running)
        batch = []
        if waiting and len(running) < config.max_batch and kv_reserved + need[waiting[0]] <= config.kv_capacity_tokens:
            batch = _admit(waiting, prompt, need, len(running), kv_reserved, config)
        if batch:
            lens = [prompt[i] for i in batch]
            dt = step_model.prefill_ms(sum(lens), sq_tokens=sum(x * x for x in lens), batch=len(batch)) / 1000
            now += dt
            kv_reserved += sum(need[i] for i in batch)
            prefills += 1
            done = []
            for i in batch:
                first[i] = now
                if output[i] <= 1:
                    done.append(i)
                else:
                    running[i] = output[i] - 1
                    context_sum += prompt[i] + 1
        elif running:
            dt = step_model.decode_ms(len(running), context_sum) / 1000
            now += dt
            decodes += 1
            decoded += len(running)
            context_sum += len(running)
            done = [i for i, left in running.items() if left == 1]
            for i in running:
                running[i] -= 1
            for i in done:
                del running[i]
                context_sum -= need[i]
        else:  # the queue's head can never fit in the KV cache: rejected, its client sends the next request
            waiting.popleft()
            send(1)
            continue
        integral += in_system * dt
        busy += dt
        for i in done:
            finish[i] = now
            kv_reserved -= need[i]
        send(len(done))
    return SimulationResult(
        arrival=np.asarray(arrival),
        first_token=np.asarray(first),
        finish=np.asarray(finish),
        output_lens=np.asarray(output, dtype=np.int64),
        end_time=now,
        in_system_time_integral=integral,
        prefill_steps=prefills,
        decode_steps=decodes,
        decoded_tokens=decoded,
        busy_time=busy,
    )

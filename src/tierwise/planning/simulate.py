"""Discrete-event simulation of one replica serving requests with continuous batching.

The core is a pure event heap (arrivals, step completions) over a `StepModel`; it returns a
`SimulationResult` in-process. The scheduler is iteration-level and prefill-first (vLLM's default without
chunked prefill): when waiting requests fit (batch slots, prefill token budget, KV cache reserved for prompt
+ output), the next step prefills them; otherwise every running request decodes one token.

Usage: `simulate(pm, arrivals, prompt_lens, output_lens, config=SchedulerConfig(kv_capacity_tokens=200_000))`
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from tierwise.planning.perf_model import StepModel

_ARRIVAL, _STEP_END = 0, 1


@dataclass(frozen=True)
class SchedulerConfig:
    """Engine limits: running sequences, prompt tokens per prefill step, KV-cache tokens of the replica."""

    kv_capacity_tokens: int
    max_batch: int = 256
    max_prefill_tokens: int = 8192


@dataclass
class SimulationResult:
    """Per-request timestamps (s) and engine totals of one simulated replica."""

    arrival: np.ndarray
    first_token: np.ndarray  # NaN for requests rejected (larger than the KV cache)
    finish: np.ndarray
    output_lens: np.ndarray
    end_time: float
    in_system_time_integral: float  # ∫ (requests in the system) dt, accumulated event by event
    prefill_steps: int
    decode_steps: int
    decoded_tokens: int
    busy_time: float

    @property
    def completed(self) -> np.ndarray:
        return ~np.isnan(self.finish)

    @property
    def ttft(self) -> np.ndarray:
        return (self.first_token - self.arrival)[self.completed]

    @property
    def tpot(self) -> np.ndarray:
        """Time per output token after the first, for requests with more than one output token."""
        ok = self.completed & (self.output_lens > 1)
        return (self.finish - self.first_token)[ok] / (self.output_lens[ok] - 1)

    @property
    def latency(self) -> np.ndarray:
        return (self.finish - self.arrival)[self.completed]

    @property
    def mean_in_system(self) -> float:
        """Time-average number of requests in the system (L in Little's law)."""
        return self.in_system_time_integral / self.end_time

    @property
    def throughput(self) -> float:
        """Completed requests per second over the simulated time (λ in Little's law)."""
        return float(self.completed.sum()) / self.end_time

    @property
    def mean_decode_batch(self) -> float:
        return self.decoded_tokens / max(self.decode_steps, 1)


class _Engine:
    """Mutable state of the replica while the event loop runs."""

    def __init__(self, n: int) -> None:
        self.waiting: deque[int] = deque()
        self.finishing: list[tuple[int, int]] = []  # (decode step count at which it finishes, request)
        self.running = 0
        self.context_sum = 0  # Σ (prompt + generated) over running requests
        self.kv_reserved = 0
        self.decode_count = 0
        self.first_token = [math.nan] * n
        self.finish = [math.nan] * n


def simulate(
    step_model: StepModel,
    arrivals: np.ndarray,
    prompt_lens: np.ndarray,
    output_lens: np.ndarray,
    *,
    config: SchedulerConfig,
) -> SimulationResult:
    """Run the replica until every request has finished (or been rejected) and return the timings."""
    n = len(arrivals)
    # Python lists, not numpy arrays, inside the loop: scalar indexing of a list is several times faster.
    arrival_list = np.asarray(arrivals, dtype=float).tolist()
    prompt = np.asarray(prompt_lens, dtype=np.int64).tolist()
    output = np.asarray(output_lens, dtype=np.int64).tolist()
    eng = _Engine(n)
    events: list[tuple[float, int, int]] = [(arrival_list[0], _ARRIVAL, 0)] if n else []
    now = in_system_integral = busy = 0.0
    in_system = prefills = decodes = tokens = 0
    engine_busy = False
    pending: list[int] = []  # requests in the prefill step now running (empty for a decode step)
    while events:
        t, kind, idx = heapq.heappop(events)
        in_system_integral += in_system * (t - now)
        now = t
        if kind == _ARRIVAL:
            in_system += 1
            eng.waiting.append(idx)
            if idx + 1 < n:
                heapq.heappush(events, (arrival_list[idx + 1], _ARRIVAL, idx + 1))
        else:
            engine_busy = False
            in_system -= _finish_step(eng, pending, prompt, output, now)
        if engine_busy:
            continue
        if eng.waiting:
            in_system -= _reject_oversized(eng, prompt, output, config)
            pending = _admit(eng, prompt, output, config)
        if pending:
            lens = [prompt[i] for i in pending]
            dt = step_model.prefill_ms(sum(lens), sq_tokens=sum(x * x for x in lens), batch=len(lens))
            prefills += 1
        elif eng.running:
            dt = step_model.decode_ms(eng.running, eng.context_sum)
            decodes += 1
            tokens += eng.running
        else:
            continue
        busy += dt / 1000
        engine_busy = True
        heapq.heappush(events, (now + dt / 1000, _STEP_END, -1))
    return SimulationResult(
        arrival=np.asarray(arrivals, dtype=float),
        first_token=np.asarray(eng.first_token),
        finish=np.asarray(eng.finish),
        output_lens=np.asarray(output_lens, dtype=np.int64),
        end_time=now,
        in_system_time_integral=in_system_integral,
        prefill_steps=prefills,
        decode_steps=decodes,
        decoded_tokens=tokens,
        busy_time=busy,
    )


def _reject_oversized(eng: _Engine, prompt: list[int], output: list[int], config: SchedulerConfig) -> int:
    """Drop waiting requests at the head that could never fit in the KV cache; returns how many."""
    dropped = 0
    while eng.waiting and prompt[eng.waiting[0]] + output[eng.waiting[0]] > config.kv_capacity_tokens:
        eng.waiting.popleft()
        dropped += 1
    return dropped


def _admit(eng: _Engine, prompt: list[int], output: list[int], config: SchedulerConfig) -> list[int]:
    """FCFS admission into a prefill step, within batch slots, prefill token budget and KV reservation."""
    batch: list[int] = []
    budget = config.max_prefill_tokens
    while eng.waiting and eng.running + len(batch) < config.max_batch:
        i = eng.waiting[0]
        need = prompt[i] + output[i]
        if eng.kv_reserved + need > config.kv_capacity_tokens or (batch and prompt[i] > budget):
            break
        eng.waiting.popleft()
        eng.kv_reserved += need
        budget -= prompt[i]
        batch.append(i)
    return batch


def _finish_step(eng: _Engine, pending: list[int], prompt: list[int], output: list[int], now: float) -> int:
    """Apply the effects of the step that just ended; returns the number of requests that completed."""
    done: list[int] = []
    if pending:  # a prefill step: each admitted request has its first token
        for i in pending:
            eng.first_token[i] = now
            if output[i] <= 1:
                done.append(i)
                continue
            eng.running += 1
            eng.context_sum += prompt[i] + 1
            heapq.heappush(eng.finishing, (eng.decode_count + output[i] - 1, i))
        pending.clear()
    else:  # a decode step: every running request gained one token
        eng.decode_count += 1
        eng.context_sum += eng.running
        finishing = eng.finishing
        while finishing and finishing[0][0] <= eng.decode_count:
            _, i = heapq.heappop(finishing)
            eng.running -= 1
            eng.context_sum -= prompt[i] + output[i]
            done.append(i)
    for i in done:
        eng.finish[i] = now
        eng.kv_reserved -= prompt[i] + output[i]
    return len(done)

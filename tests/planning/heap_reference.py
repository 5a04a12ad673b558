"""The simulator's previous event loop, kept verbatim as the specification the fast loop must reproduce.

A heap of (time, kind, request) events with arrivals as kind 0, a heap of (finishing decode count, request) and
a step-model call per step: slow (≈ 3× the fast loop) but obviously right. tests/planning/test_simulate_equivalence.py
checks that `tierwise.planning.simulate.simulate` gives bit-identical timestamps and totals.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

from tierwise.planning.perf_model import StepModel
from tierwise.planning.simulate import SchedulerConfig, SimulationResult

_ARRIVAL, _STEP_END = 0, 1


class _Engine:
    def __init__(self, n: int) -> None:
        self.waiting: deque[int] = deque()
        self.finishing: list[tuple[int, int]] = []
        self.running = 0
        self.context_sum = 0
        self.kv_reserved = 0
        self.decode_count = 0
        self.first_token = [math.nan] * n
        self.finish = [math.nan] * n


def reference_simulate(
    step_model: StepModel,
    arrivals: np.ndarray,
    prompt_lens: np.ndarray,
    output_lens: np.ndarray,
    *,
    config: SchedulerConfig,
) -> SimulationResult:
    n = len(arrivals)
    arrival_list = np.asarray(arrivals, dtype=float).tolist()
    prompt = np.asarray(prompt_lens, dtype=np.int64).tolist()
    output = np.asarray(output_lens, dtype=np.int64).tolist()
    eng = _Engine(n)
    events: list[tuple[float, int, int]] = [(arrival_list[0], _ARRIVAL, 0)] if n else []
    now = in_system_integral = busy = 0.0
    in_system = prefills = decodes = tokens = 0
    engine_busy = False
    pending: list[int] = []
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
    dropped = 0
    while eng.waiting and prompt[eng.waiting[0]] + output[eng.waiting[0]] > config.kv_capacity_tokens:
        eng.waiting.popleft()
        dropped += 1
    return dropped


def _admit(eng: _Engine, prompt: list[int], output: list[int], config: SchedulerConfig) -> list[int]:
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
    done: list[int] = []
    if pending:
        for i in pending:
            eng.first_token[i] = now
            if output[i] <= 1:
                done.append(i)
                continue
            eng.running += 1
            eng.context_sum += prompt[i] + 1
            heapq.heappush(eng.finishing, (eng.decode_count + output[i] - 1, i))
        pending.clear()
    else:
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

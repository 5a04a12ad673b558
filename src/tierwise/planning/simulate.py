"""Discrete-event simulation of one replica serving requests with continuous batching.

The core is a pure event loop (arrivals, step completions) over a `StepModel`; it returns a
`SimulationResult` in-process. With only two kinds of pending event it merges them instead of keeping a heap,
and it inlines the roofline's decode time, because a simulated day is millions of engine steps.
The scheduler is iteration-level and prefill-first (vLLM's default without
chunked prefill): when waiting requests fit (batch slots, prefill token budget, KV cache reserved for prompt
+ output), the next step prefills them; otherwise every running request decodes one token.

Usage: `simulate(pm, arrivals, prompt_lens, output_lens, config=SchedulerConfig(kv_capacity_tokens=200_000))`
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tierwise.planning.perf_model import DecodeLines, StepModel


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


class _Replica:
    """Mutable per-request state of the replica while the event loop runs (the loop keeps the rest in locals)."""

    def __init__(self, n: int) -> None:
        self.waiting: deque[int] = deque()
        # decode-step count at which running requests finish → those requests: a bucket per step, not a heap,
        # because the count advances by one per decode step, so the due bucket is one dict lookup away
        self.finishing: dict[int, list[int]] = {}
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
    """Run the replica until every request has finished (or been rejected) and return the timings.

    The step model must be a pure function of its arguments: one-request prefill times are memoised.
    """
    # Python lists, not numpy arrays, inside the loop: scalar indexing of a list is several times faster.
    prompt = np.asarray(prompt_lens, dtype=np.int64).tolist()
    output = np.asarray(output_lens, dtype=np.int64)
    rep = _Replica(len(prompt))
    end, integral, prefills, decodes, busy = _run(
        step_model, np.asarray(arrivals, dtype=float).tolist(), prompt, output.tolist(), rep, config
    )
    first_token = np.asarray(rep.first_token)
    # each admitted request with more than one output token took part in output − 1 decode steps
    decoding = ~np.isnan(first_token) & (output > 1)
    return SimulationResult(
        arrival=np.asarray(arrivals, dtype=float),
        first_token=first_token,
        finish=np.asarray(rep.finish),
        output_lens=output,
        end_time=end,
        in_system_time_integral=integral,
        prefill_steps=prefills,
        decode_steps=decodes,
        decoded_tokens=int((output[decoding] - 1).sum()),
        busy_time=busy,
    )


# One flat loop, longer than the house limit on purpose: it runs once per event, millions of times per simulated
# day, and a function call per step would cost more than the step's own bookkeeping. Batched admission and
# batched prefill, the rarer paths, are helpers.
def _run(
    step_model: StepModel,
    arrival: list[float],
    prompt: list[int],
    output: list[int],
    rep: _Replica,
    config: SchedulerConfig,
) -> tuple[float, float, int, int, float]:
    """The event loop; returns (end time, ∫ in-system dt, prefill steps, decode steps, busy time).

    Only two events can be pending, the next arrival (arrivals are taken in index order) and the end of the
    running step, so the event heap reduces to comparing two times; at equal times the arrival comes first, as
    it did in a heap of (time, kind) with arrivals as kind 0.
    """
    n, cap, max_batch = len(arrival), config.kv_capacity_tokens, config.max_batch
    need = [p + o for p, o in zip(prompt, output, strict=True)]  # KV tokens reserved for prompt + output
    waiting, finishing, first_token, finish = rep.waiting, rep.finishing, rep.first_token, rep.finish
    decode_ms, prefill_ms = step_model.decode_ms, step_model.prefill_ms
    prefill_one: dict[int, float] = {}  # prompt length → time of a one-request prefill step
    # A roofline's decode time is inlined from its tables; any other step model is called. Both give the same
    # floats (tests/planning/test_simulate.py).
    lines = _decode_lines(step_model, max_batch)
    kv_ms, flop_ms, attn_ms, fixed_ms, comm_ms = _line_coefficients(lines)
    inf = math.inf
    now = integral = busy = 0.0
    in_system = prefills = running = context_sum = kv_reserved = decode_count = nxt = 0  # nxt: next arrival
    next_arrival = arrival[0] if n else inf
    step_end = inf  # inf while the engine is idle
    pending: list[int] = []  # requests in the prefill step now running (empty for a decode step)
    while True:
        if next_arrival <= step_end:
            if next_arrival == inf:
                break
            integral += in_system * (next_arrival - now)
            now = next_arrival
            in_system += 1
            waiting.append(nxt)
            nxt += 1
            next_arrival = arrival[nxt] if nxt < n else inf
            if step_end != inf:
                continue  # the engine is busy: the request waits for the step to end
        else:
            integral += in_system * (step_end - now)
            now, step_end = step_end, inf
            if pending:  # a prefill step ended: each admitted request has its first token
                for i in pending:
                    first_token[i] = now
                    if output[i] <= 1:
                        finish[i] = now
                        kv_reserved -= need[i]
                        in_system -= 1
                        continue
                    running += 1
                    context_sum += prompt[i] + 1
                    due = decode_count + output[i] - 1
                    bucket = finishing.get(due)
                    if bucket is None:
                        finishing[due] = [i]
                    else:
                        bucket.append(i)
                pending = []
            else:  # a decode step ended: every running request gained one token
                decode_count += 1
                context_sum += running
                done = finishing.pop(decode_count, None)
                if done is not None:
                    for i in done:
                        context_sum -= need[i]
                        kv_reserved -= need[i]
                        finish[i] = now
                    running -= len(done)
                    in_system -= len(done)
        if waiting:
            while waiting and need[waiting[0]] > cap:  # could never fit in the KV cache: rejected
                waiting.popleft()
                in_system -= 1
            if waiting and running < max_batch and kv_reserved + need[waiting[0]] <= cap:
                if len(waiting) == 1:  # what _admit would do with a one-request queue whose head fits
                    pending = [waiting.popleft()]
                    kv_reserved += need[pending[0]]
                else:
                    pending = _admit(waiting, prompt, need, running, kv_reserved, config)
                    kv_reserved += sum(need[i] for i in pending)
        if pending:
            if len(pending) == 1:
                p = prompt[pending[0]]
                dt = prefill_one.get(p)
                if dt is None:
                    dt = prefill_one[p] = prefill_ms(p, sq_tokens=p * p, batch=1)
            else:
                dt = _batch_prefill_ms(prefill_ms, [prompt[i] for i in pending])
            dt /= 1000
            prefills += 1
            busy += dt
            step_end = now + dt
            continue
        if not running:
            continue
        # Decode steps back to back until an arrival or a finishing request needs the general path. Nothing else
        # can change in between (the waiting queue's head was just found not to fit), so nothing is rechecked,
        # and the batch's terms of the step time are computed once.
        if lines is not None:
            weight, flop, comm = lines.weight_ms[running], flop_ms * running, comm_ms * running
        while True:
            if lines is None:
                dt = decode_ms(running, context_sum)
            else:  # DecodeLines.ms, inlined
                mem = weight + kv_ms * context_sum
                dt = flop + attn_ms * context_sum
                dt = (mem if mem >= dt else dt) + fixed_ms + comm
            dt /= 1000
            busy += dt
            step_end = now + dt
            if next_arrival <= step_end or decode_count + 1 in finishing:
                break
            integral += in_system * (step_end - now)
            now = step_end
            decode_count += 1
            context_sum += running
    return now, integral, prefills, decode_count, busy


def _decode_lines(step_model: StepModel, max_batch: int) -> DecodeLines | None:
    tables = getattr(step_model, "decode_lines", None)
    return tables(max_batch) if callable(tables) else None


def _line_coefficients(lines: DecodeLines | None) -> tuple[float, float, float, float, float]:
    if lines is None:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    return lines.kv_ms, lines.flop_ms, lines.attn_ms, lines.fixed_ms, lines.comm_ms


def _batch_prefill_ms(prefill_ms: Callable[..., float], lens: list[int]) -> float:
    return prefill_ms(sum(lens), sq_tokens=sum(x * x for x in lens), batch=len(lens))


def _admit(
    waiting: deque[int], prompt: list[int], need: list[int], running: int, kv_reserved: int, config: SchedulerConfig
) -> list[int]:
    """FCFS admission into a prefill step, within batch slots, prefill token budget and KV reservation."""
    batch: list[int] = []
    budget = config.max_prefill_tokens
    while waiting and running + len(batch) < config.max_batch:
        i = waiting[0]
        if kv_reserved + need[i] > config.kv_capacity_tokens or (batch and prompt[i] > budget):
            break
        waiting.popleft()
        kv_reserved += need[i]
        budget -= prompt[i]
        batch.append(i)
    return batch

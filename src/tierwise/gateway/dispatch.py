"""Sending a request to tiers in order until one starts answering (failover before the first token).

Once a tier has produced its first chunk the request is committed to it: what follows is streamed from that
tier, and a later failure is reported to the client rather than silently replayed elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from tierwise.errors import (
    NoTierAvailable,
    RateLimited,
    TierBadResponse,
    TierBusy,
    TierRateLimited,
    TierRejected,
    TierRequestFailed,
    TierUnavailable,
    TierwiseError,
    UpstreamError,
)
from tierwise.gateway.decision import Attempt
from tierwise.gateway.health import TierHealthTracker
from tierwise.gateway.metrics import GatewayMetrics
from tierwise.protocol import ChatCompletionRequest
from tierwise.tiers.base import Chunk, Tier
from tierwise.tiers.reasoning import split_think_tags

log = logging.getLogger("tierwise.gateway")


@dataclass
class Served:
    """A tier that has started answering: its first chunk, and a stream of the rest.

    It holds the tier's concurrency slot and its stream until `aclose()` — which must be called on every path,
    whether `rest` was read to the end, abandoned half-way, or never started (a client gone before the response
    began): an async generator that never started does not run its `finally` when closed."""

    tier: Tier
    first: Chunk
    rest: AsyncIterator[Chunk]
    usage: dict[str, Any] | None = None  # filled in when the stream ends
    ttft_s: float | None = None  # from the start of this tier's attempt to its first chunk
    finish: Callable[[str], None] = field(default=lambda outcome: None, repr=False)  # frees the slot, once
    stream: AsyncIterator[Chunk] | None = field(default=None, repr=False)  # the tier's own generator

    async def aclose(self) -> None:
        """Free everything the answer holds; shielded from cancellation (the caller may be being cancelled)."""
        with anyio.CancelScope(shield=True):
            await self.rest.aclose()  # type: ignore[attr-defined]
            self.finish("cancelled")  # no-op if `rest` finished
            if self.stream is not None:
                await self.stream.aclose()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _TierMetrics:
    """One tier's metric children, looked up once (a `labels()` call per update costs more than the update)."""

    ttft: Any
    latency: Any
    in_flight: Any
    prompt_tokens: Any
    completion_tokens: Any

    @classmethod
    def of(cls, metrics: GatewayMetrics, tier: str) -> _TierMetrics:
        return cls(metrics.ttft.labels(tier), metrics.latency.labels(tier), metrics.in_flight.labels(tier),
                   metrics.tokens.labels(tier, "prompt"), metrics.tokens.labels(tier, "completion"))


class Dispatcher:
    """Holds the tiers, their health and their concurrency slots; opens streams with failover."""

    def __init__(
        self, tiers: dict[str, Tier], health: dict[str, TierHealthTracker], metrics: GatewayMetrics
    ) -> None:
        self.tiers = tiers
        self.health = health
        self.metrics = metrics
        self._slots = {name: asyncio.Semaphore(t.config.max_concurrent) for name, t in tiers.items()}
        self._tier_metrics = {name: _TierMetrics.of(metrics, name) for name in tiers}
        self._waiting = dict.fromkeys(tiers, 0)  # requests queued for a slot, per tier

    async def open(
        self,
        request: ChatCompletionRequest,
        order: Sequence[str],
        attempts: list[Attempt],
        *,
        skip_down: bool = True,
        excluded: Mapping[str, str] | None = None,
    ) -> Served:
        """Try tiers in `order`; return the first that yields a chunk. Tiers marked down are skipped. Each tier
        that fails is appended to `attempts` (the request's trace). `excluded`: tiers the policies ruled out, and
        why; named in the error when no tier in `order` serves."""
        skipped: dict[str, str] = {}
        for name in order:
            tracker = self.health[name]
            if skip_down and not tracker.available():
                skipped[name] = tracker.describe()
                continue
            try:
                served = await self._start(name, request)
            except TierRejected:
                raise  # the request itself is at fault: another tier would refuse it too
            except Exception as err:
                if not isinstance(err, TierwiseError):
                    log.exception("tier %s failed unexpectedly", name)
                    err = TierUnavailable(f"{type(err).__name__}: {err}")
                if isinstance(err, TierRequestFailed | TierBusy):  # the request's fault, or load: not a fault
                    self.metrics.errors.labels(name, type(err).__name__).inc()
                else:
                    self._record_failure(name, err.message, kind=type(err).__name__)
                attempts.append(Attempt(name, err))
                continue
            if attempts:
                self.metrics.failovers.labels(attempts[-1].tier).inc()
            return served
        raise _exhausted(attempts, skipped, excluded or {})

    @contextlib.asynccontextmanager
    async def holding_slot(self, name: str) -> AsyncIterator[None]:
        """One of the tier's concurrency slots, queued for as a chat request is (`TierBusy` when the queue is
        full), for a call that is not a stream: an embedding. Meanwhile the tier counts as busy (not probed)."""
        slot = await self._acquire(name)
        self.health[name].in_flight += 1
        try:
            yield
        finally:
            self._release(name, slot)

    async def _acquire(self, name: str) -> asyncio.Semaphore:
        """A concurrency slot of the tier, waiting in its bounded queue; `TierBusy` when full or too slow."""
        slot, config = self._slots[name], self.tiers[name].config
        if not slot.locked():  # a slot is free and nobody waits: no queue, no timer (the common case)
            await slot.acquire()
            return slot
        if self._waiting[name] >= config.max_queue:
            self.metrics.queue_rejections.labels(name).inc()
            raise TierBusy(f"tier {name!r} is busy: {self._waiting[name]} requests already wait (max_queue)",
                           retry_after_s=1)
        self._waiting[name] += 1
        self.metrics.queued.labels(name).inc()
        try:
            async with asyncio.timeout(config.queue_timeout_s):
                await slot.acquire()
        except TimeoutError:
            self.metrics.queue_rejections.labels(name).inc()
            raise TierBusy(f"tier {name!r} is busy: no slot within {config.queue_timeout_s:g} s (queue_timeout_s)",
                           retry_after_s=1) from None
        finally:
            self._waiting[name] -= 1
            self.metrics.queued.labels(name).dec()
        return slot

    async def _start(self, name: str, request: ChatCompletionRequest) -> Served:
        tier = self.tiers[name]
        slot = await self._acquire(name)
        self.health[name].in_flight += 1
        started = time.perf_counter()
        stream = tier.answer(request)  # a text completion's stream when the request stands for one
        if tier.config.think_tags:
            stream = split_think_tags(stream)
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            self._release(name, slot)
            raise UpstreamError(f"tier {name!r} ended its answer without sending anything") from None
        except BaseException:
            self._release(name, slot)
            with anyio.CancelScope(shield=True):  # the tier frees its model even if this request is cancelled
                await stream.aclose()  # type: ignore[attr-defined]
            raise
        ttft_s = time.perf_counter() - started
        metrics = self._tier_metrics[name]
        metrics.ttft.observe(ttft_s)
        self.health[name].record_ttft(ttft_s * 1000)
        metrics.in_flight.inc()
        served = Served(tier=tier, first=first, rest=_empty(), stream=stream, ttft_s=ttft_s)
        _note_usage(served, first)
        served.finish = self._finisher(served, slot, started)
        served.rest = self._rest(served, stream)
        return served

    def _finisher(self, served: Served, slot: asyncio.Semaphore, started: float) -> Callable[[str], None]:
        """Frees the slot and records the outcome, once, however the answer ended."""
        name = served.tier.name
        metrics = self._tier_metrics[name]
        done = False

        def finish(outcome: str) -> None:
            nonlocal done
            if done:
                return
            done = True
            self._release(name, slot)
            metrics.in_flight.dec()
            self.metrics.requests.labels(name, outcome).inc()
            metrics.latency.observe(time.perf_counter() - started)
            if served.usage:
                metrics.prompt_tokens.inc(served.usage.get("prompt_tokens") or 0)
                metrics.completion_tokens.inc(served.usage.get("completion_tokens") or 0)

        return finish

    async def _rest(self, served: Served, stream: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        name = served.tier.name
        outcome = "error"
        try:
            async for chunk in stream:
                _note_usage(served, chunk)
                yield chunk
            outcome = "ok"
            self.health[name].record_success()
        except TierwiseError as err:
            self._record_failure(name, err.message, kind=type(err).__name__)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "cancelled"  # the client went away; not the tier's fault
            raise
        finally:
            served.finish(outcome)
            with anyio.CancelScope(shield=True):
                await stream.aclose()  # type: ignore[attr-defined]

    def _release(self, name: str, slot: asyncio.Semaphore) -> None:
        slot.release()
        self.health[name].in_flight -= 1

    def _record_failure(self, name: str, reason: str, *, kind: str) -> None:
        self.health[name].record_failure(reason)
        self.metrics.errors.labels(name, kind).inc()


def _note_usage(served: Served, chunk: Chunk) -> None:
    if chunk.get("usage"):
        served.usage = chunk["usage"]


async def _empty() -> AsyncIterator[Chunk]:
    return
    yield  # pragma: no cover - makes this an async generator


def _exhausted(attempts: list[Attempt], skipped: dict[str, str], excluded: Mapping[str, str]) -> TierwiseError:
    """The error when no tier in the order served: its class says what the client can do about it."""
    parts = [f"{a.tier}: {a.error.message}" for a in attempts] + [f"{n}: {why}" for n, why in skipped.items()]
    # why the other tiers were never tried (e.g. personal data may not go to the cloud): part of a clear refusal
    parts += [f"{n}: not tried: {why}" for n, why in excluded.items() if n not in skipped]
    detail = "; ".join(parts) or "no tier to try"
    errors = [a.error for a in attempts]
    if errors and all(isinstance(e, TierBadResponse) for e in errors):
        return UpstreamError(f"every tier failed: {detail}")
    if errors and not skipped and not excluded and all(isinstance(e, TierRequestFailed) for e in errors):
        # every tier tried is healthy and failed on this request, and none was left out: the request is at fault
        return TierRequestFailed(f"no tier could process this request: {detail}")
    waits = [e.retry_after_s for e in errors if e.retry_after_s is not None]
    retry_after = min(waits) if waits else None
    if errors and all(isinstance(e, TierRateLimited) for e in errors):
        return RateLimited(f"rate limited: {detail}", code=TierRateLimited.code, retry_after_s=retry_after)
    return NoTierAvailable(f"no tier could serve the request: {detail}", excluded=dict(excluded),
                           retry_after_s=retry_after)

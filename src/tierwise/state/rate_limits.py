"""Per-API-key rate limits (`policies.rate_limits`): requests and tokens per minute, shared by replicas via Redis.

A request is admitted at the door, before routing, with an estimate of its tokens (prompt characters / 4 plus
its `max_tokens`, or the default output length); once the tier reports real usage the estimate is corrected by
the difference, in the window it was counted in (`settle`). Windows are sliding-window counters
(`sliding_window.py`).

With `gateway.state_url` every admission is one Lua script on Redis (check and count atomically, so replicas
together never admit more than the limit); each is also counted locally. While Redis is unreachable (the shared
state store is marked down, and its sync loop reconnects) the limits are kept on this replica's own counts, so N
replicas may together admit up to N times the limit; `/healthz` and `tierwise_rate_limit_decisions{where="local"}`
show it. Usage::

    limiter = RateLimiter(settings.policies.rate_limits, store=store, registry=metrics.registry)
    admission = await limiter.admit(api_key, estimated_tokens(chat))   # raises RateLimited (429, Retry-After)
    limiter.settle(admission, actual_tokens=57)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from tierwise.costs import expected_tokens
from tierwise.errors import RateLimited
from tierwise.gateway.request_scope import current_scope
from tierwise.routing.settings import RateLimit, RateLimitSettings
from tierwise.state.sliding_window import (
    WINDOW_S,
    Counts,
    LocalWindows,
    Refusal,
    check,
    previous_weight,
    window_at,
)
from tierwise.state.spend import key_digest

if TYPE_CHECKING:
    from tierwise.protocol import ChatCompletionRequest
    from tierwise.state.store import SharedStateStore

log = logging.getLogger("tierwise.gateway")

KEY_TTL_MS = int(3 * WINDOW_S * 1000)  # a window's counts are read for two windows; then they expire

# KEYS[1]: this window's hash, KEYS[2]: the previous window's (fields r: requests, t: tokens).
# ARGV: the previous window's weight, requests and tokens per minute (0: no limit), this request's tokens, ttl ms.
# Returns {admitted (0/1), previous r, previous t, current r, current t} as they were before this request.
ADMIT_SCRIPT = """
local w, rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cur = redis.call('HMGET', KEYS[1], 'r', 't')
local prev = redis.call('HMGET', KEYS[2], 'r', 't')
local cr, ct = tonumber(cur[1] or '0'), tonumber(cur[2] or '0')
local pr, pt = tonumber(prev[1] or '0'), tonumber(prev[2] or '0')
if (rpm > 0 and pr * w + cr + 1 > rpm) or (tpm > 0 and pt * w + ct + tokens > tpm) then
  return {0, pr, pt, cr, ct}
end
redis.call('HINCRBY', KEYS[1], 'r', 1)
redis.call('HINCRBY', KEYS[1], 't', tokens)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, pr, pt, cr, ct}
"""

# KEYS[1]: the window's hash the request was counted in; ARGV[1]: the token correction. Never below 0.
SETTLE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HINCRBY', KEYS[1], 't', ARGV[1]) < 0 then redis.call('HSET', KEYS[1], 't', 0) end
end
return 0
"""

def window_key(digest: str, window: int) -> str:
    return f"tierwise:rl:{{{digest}}}:{window}"  # the braces keep a key's windows in one Redis Cluster slot


def estimated_tokens(chat: ChatCompletionRequest) -> int:
    """What a request may use, counted at admission: what it sends (characters / 4) and its output limit, estimated
    from the same text as its budget reservation and the budget policy (`outbound_text`)."""
    prompt, output = expected_tokens(chat.outbound_text, chat.token_limit)
    return int(prompt) + 1 + int(output)


def usage_tokens(usage: Mapping[str, Any]) -> int:
    return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)


@dataclass
class Admission:
    """One admitted request: where its estimate was counted, so real usage can correct it."""

    digest: str
    window: int
    tokens_estimate: int
    shared: bool  # counted in Redis too
    settled: bool = False


class RateLimiter:
    """Admits or refuses requests per API key; a no-op without limits configured."""

    def __init__(
        self,
        settings: RateLimitSettings | None,
        *,
        store: SharedStateStore | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.local = LocalWindows(clock=clock)
        self._per_digest: dict[str, RateLimit] = {}
        for name, limit in (settings.per_key if settings else {}).items():
            digest = name.removeprefix("sha256:") if name.startswith("sha256:") else key_digest(name)
            self._per_digest[digest] = limit
        self.decisions = Counter(
            "tierwise_rate_limit_decisions",
            "Rate-limit decisions, by where the counts were kept (shared: Redis, local: this replica) and result",
            ["where", "result"], registry=registry,
        )
        self._admit = self._settle = None
        if store is not None:
            self._admit = store.client.register_script(ADMIT_SCRIPT)
            self._settle = store.client.register_script(SETTLE_SCRIPT)
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.settings is not None

    def limit_for(self, digest: str) -> RateLimit | None:
        if self.settings is None:
            return None
        limit = self._per_digest.get(digest, self.settings)
        return limit if limit.requests_per_minute or limit.tokens_per_minute else None

    async def admit(self, api_key: str | None, tokens_estimate: int) -> Admission | None:
        """Count the request against the key's limits, or raise RateLimited; the admission is also left in the
        request's scope (`request_scope.current_scope()`), where `settle_current` finds it."""
        digest = key_digest(api_key)
        limit = self.limit_for(digest)
        if limit is None:
            return None
        admission = await self._admit_shared(digest, limit, tokens_estimate)
        if admission is None:
            window, refusal = self.local.admit(digest, limit, tokens_estimate)
            self._count("local", refusal)
            if refusal is not None:
                raise _rate_limited(refusal)
            admission = Admission(digest, window, tokens_estimate, shared=False)
        scope = current_scope()
        if scope is not None:
            scope.admission = admission
        return admission

    def settle(self, admission: Admission | None, actual_tokens: int) -> None:
        """Correct the admission's estimate with real usage; called once per answer (an escalated request twice:
        both answers' tokens count). A Redis correction is sent in the background, and dropped if Redis fails."""
        if admission is None:
            return
        delta = actual_tokens - (0 if admission.settled else admission.tokens_estimate)
        admission.settled = True
        self.local.settle(admission.digest, admission.window, delta)
        if admission.shared and delta and self._settle is not None and self.store is not None and self.store.up:
            task = asyncio.get_running_loop().create_task(self._settle_shared(admission, delta))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def settle_current(self, usage: Mapping[str, Any]) -> None:
        """`settle` the admission of the request being served in this context, with the tier's usage."""
        scope = current_scope()
        if scope is not None:
            self.settle(scope.admission, usage_tokens(usage))

    async def aclose(self) -> None:
        """Wait (briefly) for corrections still being sent."""
        if self._pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.gather(*self._pending, return_exceptions=True)

    async def _admit_shared(self, digest: str, limit: RateLimit, tokens: int) -> Admission | None:
        """Admit through Redis; None when it cannot be asked (then the local counts decide)."""
        if self._admit is None or self.store is None or not self.store.up:
            return None
        window, elapsed = window_at(self.clock())
        args: list[str | int] = [repr(previous_weight(elapsed)), limit.requests_per_minute or 0,
                                 limit.tokens_per_minute or 0, tokens, KEY_TTL_MS]
        try:
            admitted, pr, pt, cr, ct = await self._admit(
                keys=[window_key(digest, window), window_key(digest, window - 1)], args=args
            )
        except (RedisError, OSError) as err:
            self.store.mark_down(f"rate limit check: {type(err).__name__}: {err}")
            return None
        if not admitted:
            refusal = check(limit, tokens, Counts(int(pr), int(pt)), Counts(int(cr), int(ct)), elapsed)
            self._count("shared", refusal)
            raise _rate_limited(refusal or Refusal("requests", limit.requests_per_minute or 0, 0, 1, 1.0))
        self._count("shared", None)
        self.local.record(digest, window, tokens)
        return Admission(digest, window, tokens, shared=True)

    async def _settle_shared(self, admission: Admission, delta: int) -> None:
        assert self._settle is not None
        try:
            await self._settle(keys=[window_key(admission.digest, admission.window)], args=[delta])
        except (RedisError, OSError) as err:  # a lost correction: the estimate stays counted until it expires
            log.debug("rate limit correction not sent: %s", err)

    def _count(self, where: str, refusal: Refusal | None) -> None:
        self.decisions.labels(where, "admitted" if refusal is None else f"refused_{refusal.limit}").inc()


def _rate_limited(refusal: Refusal) -> RateLimited:
    unit = "requests" if refusal.limit == "requests" else "tokens"
    if refusal.retry_after_s is None:
        return RateLimited(
            f"this request's estimated {refusal.requested} tokens exceed the limit of {refusal.allowed} tokens per "
            "minute: lower max_tokens or shorten the prompt", code="rate_limit_exceeded",
        )
    return RateLimited(
        f"rate limit reached for {unit} per minute: limit {refusal.allowed}, used {refusal.used:.0f}, requested "
        f"{refusal.requested}; try again in {refusal.retry_after_s:.1f} s",
        code="rate_limit_exceeded", retry_after_s=refusal.retry_after_s,
    )


def digest_hex(api_key: str) -> str:
    """The `sha256:` form a `per_key` entry may use instead of the raw key."""
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()

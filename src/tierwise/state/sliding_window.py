"""The arithmetic of per-key rate limits: a sliding-window counter, and the in-process counts behind it.

Each key's requests and tokens are counted in fixed windows of `WINDOW_S` seconds. What the key has used "in the
last minute" is the current window's count plus the previous window's, weighted by how much of it still lies
within the last minute (`1 - elapsed / WINDOW_S`). That is the sliding-window counter (as in Cloudflare's limiter):
two numbers per key, so it sums tokens as easily as requests, and a client cannot get twice its limit through by
sending at the end of one window and the start of the next, as it can with plain fixed windows. It assumes the
previous window's traffic was spread evenly, so it is an estimate, never more than one window's count off.

`check` is the one place the verdict is computed; the Redis script in `rate_limits.py` applies the same
comparison atomically, and this module then explains its refusal. Usage::

    windows = LocalWindows()
    window, refusal = windows.admit("digest", RateLimit(requests_per_minute=60), tokens=300)
    windows.settle("digest", window, delta=-120)   # the request used 120 tokens fewer than estimated
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tierwise.routing.settings import RateLimit

WINDOW_S = 60.0


@dataclass(frozen=True)
class Counts:
    """One key's requests and tokens counted in one window."""

    requests: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class Refusal:
    """Why a request is over a limit, and when trying again may succeed (None: never, it alone is over)."""

    limit: Literal["requests", "tokens"]
    allowed: int
    used: float  # the sliding estimate before this request
    requested: int
    retry_after_s: float | None


def window_at(now: float, window_s: float = WINDOW_S) -> tuple[int, float]:
    """The index of the window `now` (Unix time) falls in, and the seconds elapsed in it."""
    index = int(now // window_s)
    return index, now - index * window_s


def previous_weight(elapsed: float, window_s: float = WINDOW_S) -> float:
    """How much of the previous window still counts."""
    return 1.0 - elapsed / window_s


def check(
    limit: RateLimit, tokens: int, previous: Counts, current: Counts, elapsed: float, window_s: float = WINDOW_S
) -> Refusal | None:
    """None if a request of `tokens` fits both limits, else the first limit it is over."""
    weight = previous_weight(elapsed, window_s)
    for kind, allowed, cost, before, now in (
        ("requests", limit.requests_per_minute, 1, previous.requests, current.requests),
        ("tokens", limit.tokens_per_minute, tokens, previous.tokens, current.tokens),
    ):
        # the same expression, in the same order, as the Redis script: the same doubles, the same verdict
        if allowed is not None and before * weight + now + cost > allowed:
            wait = retry_after_s(allowed, cost, before, now, elapsed, window_s)
            return Refusal(kind, allowed, before * weight + now, cost, wait)  # type: ignore[arg-type]
    return None


def retry_after_s(allowed: int, cost: int, before: int, now: int, elapsed: float, window_s: float) -> float | None:
    """Seconds until `cost` fits, if nothing else is admitted meanwhile; None if it never fits."""
    if cost > allowed:
        return None
    if now + cost <= allowed:  # the previous window's share must fade enough
        fade_to = window_s * (1.0 - (allowed - now - cost) / before) if before else elapsed
        return max(0.0, fade_to - elapsed)
    # this window's own count is too high: wait for the next window, then for this one's share to fade
    into_next = window_s * (1.0 - (allowed - cost) / now) if now else 0.0
    return (window_s - elapsed) + max(0.0, into_next)


class LocalWindows:
    """Counts per key digest in this process: the limiter without Redis, and its fallback while Redis is down.

    Not thread-safe: used from the event loop only (no method awaits)."""

    def __init__(self, *, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.clock = clock
        self._counts: dict[str, dict[int, list[int]]] = {}  # digest -> window index -> [requests, tokens]
        self._swept = 0

    def counts(self, digest: str, window: int) -> Counts:
        found = self._counts.get(digest, {}).get(window)
        return Counts(*found) if found else Counts()

    def admit(self, digest: str, limit: RateLimit, tokens: int) -> tuple[int, Refusal | None]:
        """Count the request if it fits; returns the window it was counted in, or the refusal."""
        window, elapsed = window_at(self.clock(), self.window_s)
        self._sweep(window)
        refusal = check(limit, tokens, self.counts(digest, window - 1), self.counts(digest, window), elapsed,
                        self.window_s)
        if refusal is None:
            self.record(digest, window, tokens)
        return window, refusal

    def record(self, digest: str, window: int, tokens: int) -> None:
        """Count a request admitted elsewhere (by Redis), so a fallback to local counts starts from them."""
        windows = self._counts.setdefault(digest, {})
        counts = windows.setdefault(window, [0, 0])
        counts[0] += 1
        counts[1] += tokens
        for old in [w for w in windows if w < window - 1]:
            del windows[old]

    def settle(self, digest: str, window: int, delta: int) -> None:
        """Correct the tokens counted in `window` by `delta` (real usage minus the estimate); never below 0."""
        counts = self._counts.get(digest, {}).get(window)
        if counts is not None:
            counts[1] = max(0, counts[1] + delta)

    def _sweep(self, window: int) -> None:
        # once per window: forget keys that sent nothing in the last two windows
        if window <= self._swept:
            return
        self._swept = window
        for digest in [d for d, w in self._counts.items() if not w or max(w) < window - 1]:
            del self._counts[digest]

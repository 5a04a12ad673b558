"""Per-tier health as the gateway sees it: a small circuit breaker fed by requests and probes.

A tier is marked down after `failure_threshold` consecutive failures (or one failed probe) and skipped for
`cooldown_s`. After the cooldown it is half-open: the next request or probe may use it; one success brings it
back, one more failure marks it down for another cooldown.

Reads (`available`, `is_down`) are always local and synchronous. With shared state (`gateway.state_url`) a
`listener` hears every success and failure so it can publish them, and `adopt` takes in the replicas' shared
view, so a tier one replica saw fail is skipped by the others too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class HealthListener(Protocol):
    """Hears a tracker's successes and failures as they are recorded (e.g. to publish them to other replicas)."""

    def success(self) -> None: ...

    def failure(self, error: str, *, immediately: bool) -> None: ...


@dataclass
class TierHealthTracker:
    failure_threshold: int = 3
    cooldown_s: float = 5.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    consecutive_failures: int = 0
    down_until: float = 0.0
    last_error: str = ""
    in_flight: int = 0
    ttft_ms: float | None = None  # moving average of measured time to first token
    listener: HealthListener | None = field(default=None, repr=False)

    def record_ttft(self, ms: float, *, weight: float = 0.2) -> None:
        self.ttft_ms = ms if self.ttft_ms is None else (1 - weight) * self.ttft_ms + weight * ms

    @property
    def is_down(self) -> bool:
        return self.consecutive_failures >= self.failure_threshold

    def available(self) -> bool:
        """May a request be sent to this tier now (up, or down but past its cooldown)?"""
        return not self.is_down or self.clock() >= self.down_until

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.down_until = 0.0
        self.last_error = ""
        if self.listener is not None:
            self.listener.success()

    def record_failure(self, error: str, *, immediately: bool = False) -> None:
        self.consecutive_failures = (
            max(self.consecutive_failures + 1, self.failure_threshold) if immediately
            else self.consecutive_failures + 1
        )
        self.last_error = error
        if self.is_down:
            self.down_until = self.clock() + self.cooldown_s
        if self.listener is not None:
            self.listener.failure(error, immediately=immediately)

    def adopt(self, *, consecutive_failures: int, down_for_s: float, last_error: str) -> None:
        """Take in the shared view of this tier (from other replicas): no listener hears this."""
        self.consecutive_failures = consecutive_failures
        self.down_until = self.clock() + down_for_s if self.is_down else 0.0
        self.last_error = last_error if self.is_down else ""

    def describe(self) -> str:
        if not self.is_down:
            return "up"
        wait = self.down_until - self.clock()
        state = f"down, retry in {wait:.1f} s" if wait > 0 else "down, half-open"
        return f"{state} ({self.last_error})" if self.last_error else state

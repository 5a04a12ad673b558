"""Tier circuit breakers shared by gateway replicas: local trackers publish to Redis and adopt its view.

Each tier has a hash `tierwise:tier:<name>` with `failures` (consecutive, all replicas together), `down_until`
(Unix time, since replicas share no monotonic clock) and `error`. A success or failure recorded by any replica is
applied to it atomically by a small Lua script; each sync then hands every tracker the shared view.

Usage::

    breakers = SharedBreakers(trackers, failure_threshold=3, cooldown_s=5.0)
    breakers.attach()          # the trackers now report their successes and failures here
    events = breakers.take_events()   # the sync sends these, then calls adopt(...) with what it read back
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tierwise.gateway.health import TierHealthTracker

TIER_TTL_S = 24 * 3600
MAX_QUEUED_EVENTS = 10_000

# KEYS[1]: the tier's hash. ARGV: failed (0/1), immediately (0/1), threshold, down_until if it goes down, error, ttl.
RECORD_SCRIPT = """
local failures = 0
if ARGV[1] == '1' then
  failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') + 1
  if ARGV[2] == '1' then failures = math.max(failures, tonumber(ARGV[3])) end
  redis.call('HSET', KEYS[1], 'failures', failures, 'error', ARGV[5])
  if failures >= tonumber(ARGV[3]) then redis.call('HSET', KEYS[1], 'down_until', ARGV[4]) end
else
  redis.call('HSET', KEYS[1], 'failures', 0, 'down_until', 0, 'error', '')
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return failures
"""


def tier_key(name: str) -> str:
    return f"tierwise:tier:{name}"


@dataclass(frozen=True)
class BreakerEvent:
    """One success or failure a tracker recorded, with the wall-clock time it happened."""

    tier: str
    failed: bool
    at: float
    error: str = ""
    immediately: bool = False


class _Publisher:
    """The listener one tracker calls; it queues events for the next sync."""

    def __init__(self, tier: str, breakers: SharedBreakers) -> None:
        self.tier, self._breakers = tier, breakers

    def success(self) -> None:
        self._breakers.queue(BreakerEvent(self.tier, False, self._breakers.wall_clock()))

    def failure(self, error: str, *, immediately: bool) -> None:
        self._breakers.queue(
            BreakerEvent(self.tier, True, self._breakers.wall_clock(), error=error, immediately=immediately)
        )


class SharedBreakers:
    """Queues the trackers' events for Redis and applies the shared view back to them."""

    def __init__(
        self,
        trackers: Mapping[str, TierHealthTracker],
        *,
        failure_threshold: int,
        cooldown_s: float,
        wall_clock: Callable[[], float] = time.time,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.trackers = trackers
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.wall_clock = wall_clock
        self.on_failure = on_failure  # called after each failure is queued (the store uses it to sync soon)
        self._lock = threading.Lock()
        self._events: deque[BreakerEvent] = deque(maxlen=MAX_QUEUED_EVENTS)

    def attach(self) -> None:
        """Make every tracker report its successes and failures here."""
        for name, tracker in self.trackers.items():
            tracker.listener = _Publisher(name, self)

    def queue(self, event: BreakerEvent) -> None:
        with self._lock:
            last = self._events[-1] if self._events else None
            repeated_success = last is not None and not last.failed and not event.failed and last.tier == event.tier
            if not repeated_success:  # a run of successes of one tier is sent once
                self._events.append(event)
        if event.failed and self.on_failure is not None:
            self.on_failure()

    def take_events(self) -> list[BreakerEvent]:
        with self._lock:
            events = list(self._events)
            self._events.clear()
            return events

    def restore(self, events: list[BreakerEvent]) -> None:
        """Sending failed: queue again what is still recent enough to matter (within one cooldown)."""
        horizon = self.wall_clock() - self.cooldown_s
        with self._lock:
            kept = [e for e in events if e.at >= horizon]
            self._events = deque([*kept, *self._events], maxlen=MAX_QUEUED_EVENTS)  # the newest are kept

    def script_args(self, event: BreakerEvent) -> list[str]:
        """RECORD_SCRIPT's ARGV for one event."""
        return [
            "1" if event.failed else "0", "1" if event.immediately else "0", str(self.failure_threshold),
            f"{event.at + self.cooldown_s:.3f}", event.error[:500], str(TIER_TTL_S),
        ]

    def adopt(self, shared: Mapping[str, Mapping[str, str]]) -> None:
        """Hand each tracker the shared view read back from Redis; a tier with events still queued here keeps
        its local state until they are sent (else a failure seen a moment ago would be forgotten)."""
        with self._lock:
            queued = {e.tier for e in self._events}
        now = self.wall_clock()
        for name, fields in shared.items():
            tracker = self.trackers.get(name)
            if tracker is None or name in queued or not fields:
                continue
            tracker.adopt(
                consecutive_failures=int(fields.get("failures", 0)),
                down_for_s=float(fields.get("down_until", 0)) - now,
                last_error=fields.get("error", ""),
            )

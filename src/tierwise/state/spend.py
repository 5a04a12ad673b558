"""Daily spending per API key, shared by gateway replicas: charged locally at once, added to Redis by the sync.

Redis holds one hash per UTC day, `tierwise:spend:<day>` (kept 2 days), whose fields are the SHA-256 of each API
key (never the key itself) and whose values are USD totals, added to atomically with HINCRBYFLOAT.

Usage::

    ledger = SharedBudgetLedger()
    ledger.charge("key-1", 0.01)   # queued for Redis; counted at once by this replica
    ledger.spent("key-1")          # the last total read back from Redis plus what is still queued
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import date, datetime

from tierwise.routing.budget import utc_day

SPEND_TTL_S = 2 * 24 * 3600
ANONYMOUS = "anonymous"  # the field for requests without an API key (a gateway without auth)

Charges = dict[tuple[date, str], float]  # (UTC day, key digest) -> USD


def key_digest(api_key: str | None) -> str:
    """What stands for an API key in Redis: its SHA-256, hex (the raw key never leaves the process)."""
    return ANONYMOUS if api_key is None else hashlib.sha256(api_key.encode()).hexdigest()


def spend_key(day: date) -> str:
    return f"tierwise:spend:{day.isoformat()}"


class SharedBudgetLedger:
    """A `SpendLedger` whose totals every replica shares; `charge` and `spent` never wait on Redis.

    Charges queue here until a sync adds them to Redis; while Redis is unreachable they stay queued (and
    counted locally) and are added when it is back, so no spending is lost. Thread-safe."""

    def __init__(self, *, on_charge: Callable[[], None] | None = None) -> None:
        self.on_charge = on_charge  # called after each charge (the store uses it to sync soon)
        self._lock = threading.Lock()
        self._day: date | None = None
        self._shared: dict[str, float] = {}  # digest -> today's total as last read back from Redis
        self._queued: Charges = {}  # charged here, not yet sent
        self._sending: Charges = {}  # sent by the sync in progress, not yet confirmed

    def charge(self, api_key: str | None, usd: float, *, now: datetime | None = None) -> float:
        """Add `usd` (≥ 0) to the key's spending today; returns the new total as this replica knows it."""
        if usd < 0:
            raise ValueError("a charge cannot be negative")
        day, digest = utc_day(now), key_digest(api_key)
        with self._lock:
            self._roll(day)
            self._queued[day, digest] = self._queued.get((day, digest), 0.0) + usd
            total = self._total(day, digest)
        if self.on_charge is not None:
            self.on_charge()
        return total

    def spent(self, api_key: str | None, *, now: datetime | None = None) -> float:
        """USD the key has spent today (UTC) on all replicas, as of the last sync, plus this replica's since."""
        day, digest = utc_day(now), key_digest(api_key)
        with self._lock:
            self._roll(day)
            return self._total(day, digest)

    def queued_usd(self) -> float:
        """USD charged here and not yet confirmed in Redis."""
        with self._lock:
            return sum(self._queued.values()) + sum(self._sending.values())

    def take_queued(self) -> Charges:
        """The charges to send now (the sync calls this, then `confirm` or `restore`)."""
        with self._lock:
            for slot, usd in self._queued.items():
                self._sending[slot] = self._sending.get(slot, 0.0) + usd
            taken, self._queued = self._queued, {}
            return taken

    def confirm(self, day: date, totals: dict[str, float]) -> None:
        """The sent charges are in Redis, and `totals` is the day's hash read back after them."""
        with self._lock:
            self._sending = {}
            self._roll(day)
            if day == self._day:
                self._shared = totals

    def restore(self) -> None:
        """Sending failed: the charges queue again for the next sync."""
        with self._lock:
            for slot, usd in self._sending.items():
                self._queued[slot] = self._queued.get(slot, 0.0) + usd
            self._sending = {}

    def _roll(self, day: date) -> None:
        # Queued charges of an earlier day are kept: they still go to that day's hash.
        if self._day is None or day > self._day:
            self._day, self._shared = day, {}

    def _total(self, day: date, digest: str) -> float:
        slot = (day, digest)
        shared = self._shared.get(digest, 0.0) if day == self._day else 0.0
        return shared + self._queued.get(slot, 0.0) + self._sending.get(slot, 0.0)

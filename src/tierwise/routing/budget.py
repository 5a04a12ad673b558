"""Per-API-key daily spending, in memory, by UTC day. The gateway charges it after each request.

Usage::

    ledger = BudgetLedger()
    ledger.charge("key-1", 0.0012)
    ledger.spent("key-1")            # USD spent today (UTC) by that key

With `gateway.state_url` set the gateway uses `tierwise.state.SharedBudgetLedger` instead: the same interface
(`SpendLedger`), its totals shared by every gateway replica through Redis.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Protocol


def utc_day(now: datetime | None = None) -> date:
    """Today's date in UTC (or `now`'s, converted to UTC when it carries a time zone)."""
    moment = now or datetime.now(UTC)
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


class SpendLedger(Protocol):
    """Where the gateway records and reads each API key's spending today (UTC): in-process or shared."""

    def charge(self, api_key: str | None, usd: float, *, now: datetime | None = None) -> float:
        """Add `usd` (≥ 0) to the key's spending today; returns the new total as this process knows it."""
        ...

    def spent(self, api_key: str | None, *, now: datetime | None = None) -> float:
        """USD the key has spent today (UTC), as this process knows it."""
        ...


class BudgetLedger:
    """USD spent per API key per UTC day; old days are dropped as the day changes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._day: date | None = None
        self._spent: dict[str | None, float] = {}

    def _roll(self, now: datetime | None) -> None:
        today = utc_day(now)
        if today != self._day:
            self._day, self._spent = today, {}

    def charge(self, api_key: str | None, usd: float, *, now: datetime | None = None) -> float:
        """Add `usd` (≥ 0) to the key's spending today; returns the new total."""
        if usd < 0:
            raise ValueError("a charge cannot be negative")
        with self._lock:
            self._roll(now)
            self._spent[api_key] = self._spent.get(api_key, 0.0) + usd
            return self._spent[api_key]

    def spent(self, api_key: str | None, *, now: datetime | None = None) -> float:
        """USD the key has spent today (UTC)."""
        with self._lock:
            self._roll(now)
            return self._spent.get(api_key, 0.0)

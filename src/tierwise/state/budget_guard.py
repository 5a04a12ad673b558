"""Budget reservations: a request holds its expected cost against its key's daily budget from admission until it
is charged, so concurrent requests — on one replica or many — cannot all spend the last of a budget.

At admission the request reserves the largest of its expected costs (one per paid tier, as the budget policy
estimates them) that still fits: budget − spending − every live reservation. The budget policy then sees, as the
key's spending, what was committed before this request (`ReservingLedger.spent`), so every tier it allows costs
at most the reservation. When the answer is charged, or the request ends without one, the reservation is
released. Overspend is then bounded by how far real usage exceeds the estimate, not by the number of requests in
flight.

With Redis the check and the reservation are one Lua script: reservations live in one hash per replica and day,
`tierwise:reserve:<day>:<replica>` (field: key digest), whose TTL the replica's syncs renew (a crashed replica's
reservations expire with its in-flight heartbeat); a release is sent in the same MULTI as the charge it goes with,
so Redis never sees the money neither reserved nor spent. Without Redis, or while it is down, reservations are kept
in-process. Usage::

    guard = BudgetGuard(ledger, store=store)
    committed = await guard.reserve(scope, api_key, [0.05, 0.01], budget_usd=5.0)
    guard.release(scope)      # at charge time, or when the request ends
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from tierwise.costs import cost_usd, expected_tokens
from tierwise.gateway.request_scope import RequestScope, current_scope
from tierwise.routing.budget import SpendLedger, utc_day
from tierwise.routing.router import TierView
from tierwise.state.in_flight import INFLIGHT_KEY
from tierwise.state.spend import key_digest, spend_key

if TYPE_CHECKING:
    from datetime import datetime

    from tierwise.protocol import ChatCompletionRequest
    from tierwise.state.store import SharedStateStore

# KEYS[1]: today's spending, KEYS[2]: this replica's reservations today, KEYS[3]: the replicas (in-flight hash).
# ARGV: key digest, budget, this replica's id, the reservation keys' prefix, ttl s, then the amounts, largest first.
# Returns {committed before this request, amount reserved ('0': none fits)}, as strings (Lua numbers → integers).
RESERVE_SCRIPT = """
local committed = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
  + tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
for _, replica in ipairs(redis.call('HKEYS', KEYS[3])) do
  if replica ~= ARGV[3] then
    committed = committed + tonumber(redis.call('HGET', ARGV[4] .. replica, ARGV[1]) or '0')
  end
end
for i = 6, #ARGV do
  if committed + tonumber(ARGV[i]) <= tonumber(ARGV[2]) then
    redis.call('HINCRBYFLOAT', KEYS[2], ARGV[1], ARGV[i])
    redis.call('EXPIRE', KEYS[2], ARGV[5])
    return {string.format('%.17g', committed), ARGV[i]}
  end
end
return {string.format('%.17g', committed), '0'}
"""

# KEYS[1]: a replica's reservations of one day; ARGV: key digest, USD to release. The field goes at (about) zero.
RELEASE_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  if tonumber(redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], -tonumber(ARGV[2]))) <= 1e-12 then
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
end
return 0
"""


def expected_costs(chat: ChatCompletionRequest, views: Sequence[TierView]) -> list[float]:
    """The request's expected cost on each tier, estimated exactly as the budget policy estimates it."""
    tokens = expected_tokens(chat.outbound_text, chat.token_limit)  # as the budget policy estimates them
    return [cost_usd(v, *tokens) for v in views]


def reserve_prefix(day: date) -> str:
    return f"tierwise:reserve:{day.isoformat()}:"


@dataclass
class Reservation:
    """Part of a key's budget held for one request."""

    digest: str
    day: date
    usd: float
    shared: bool  # held in Redis too
    committed_usd: float  # the key's spending and others' reservations when this was made
    released: bool = False


class BudgetGuard:
    """Reserves and releases budget per key; in Redis when the store answers, else in this process."""

    def __init__(self, ledger: SpendLedger, *, store: SharedStateStore | None = None) -> None:
        self.ledger = ledger
        self.store = store
        self._lock = threading.Lock()
        self._local: dict[str, float] = {}  # digest -> this replica's live reservations (shared ones too)
        self._releases: dict[tuple[date, str], float] = {}  # shared reservations to release at the next sync
        self._reserve = store.client.register_script(RESERVE_SCRIPT) if store is not None else None

    async def reserve(
        self, scope: RequestScope | None, api_key: str | None, amounts: Sequence[float], *, budget_usd: float
    ) -> Reservation:
        """Reserve the largest of `amounts` that fits the budget (none may fit: then `usd` is 0)."""
        digest, day = key_digest(api_key), utc_day()
        amounts = sorted((a for a in amounts if a > 0), reverse=True)
        reservation = await self._reserve_shared(digest, day, amounts, budget_usd) if amounts else None
        if reservation is None:
            with self._lock:
                committed = self.ledger.spent(api_key) + self._local.get(digest, 0.0)
            usd = next((a for a in amounts if committed + a <= budget_usd), 0.0)
            reservation = Reservation(digest, day, usd, shared=False, committed_usd=committed)
        with self._lock:
            self._local[digest] = self._local.get(digest, 0.0) + reservation.usd
        if scope is not None:
            scope.reservation = reservation
        return reservation

    def release(self, scope: RequestScope | None) -> None:
        """Give back the scope's reservation (once): at charge time, or when the request ends without a charge."""
        reservation = scope.reservation if scope is not None else None
        if reservation is None or reservation.released:
            return
        reservation.released = True
        with self._lock:
            left = self._local.get(reservation.digest, 0.0) - reservation.usd
            if left > 1e-12:
                self._local[reservation.digest] = left
            else:
                self._local.pop(reservation.digest, None)
            if reservation.shared and reservation.usd > 0:
                slot = (reservation.day, reservation.digest)
                self._releases[slot] = self._releases.get(slot, 0.0) + reservation.usd

    def take_releases(self) -> dict[tuple[date, str], float]:
        """The shared releases to send with the next sync (which calls `restore_releases` if it fails)."""
        with self._lock:
            taken, self._releases = self._releases, {}
            return taken

    def restore_releases(self, releases: dict[tuple[date, str], float]) -> None:
        with self._lock:
            for slot, usd in releases.items():
                self._releases[slot] = self._releases.get(slot, 0.0) + usd

    async def _reserve_shared(self, digest: str, day: date, amounts: list[float], budget: float) -> Reservation | None:
        store = self.store
        if self._reserve is None or store is None or not store.up:
            return None
        replica = store.in_flight.replica_id
        keys = [spend_key(day), reserve_prefix(day) + replica, INFLIGHT_KEY]
        args: list[str | int] = [digest, repr(budget), replica, reserve_prefix(day), int(store.in_flight.ttl_s) + 1,
                *(repr(a) for a in amounts)]
        try:
            committed, reserved = await self._reserve(keys=keys, args=args)
        except (RedisError, OSError) as err:
            store.mark_down(f"budget reservation: {type(err).__name__}: {err}")
            return None
        # this replica's charges not yet in Redis are still covered by their reservations until the sync that
        # sends them also releases those
        return Reservation(digest, day, float(reserved), shared=float(reserved) > 0, committed_usd=float(committed))


class ReservingLedger:
    """The `SpendLedger` the budget policy reads: inside a request that reserved, the key's spending is what was
    committed before it (so the policy allows exactly the tiers its reservation covers); elsewhere the ledger's."""

    def __init__(self, inner: SpendLedger) -> None:
        self.inner = inner

    def charge(self, api_key: str | None, usd: float, *, now: datetime | None = None) -> float:
        return self.inner.charge(api_key, usd, now=now)

    def spent(self, api_key: str | None, *, now: datetime | None = None) -> float:
        scope = current_scope()
        reservation = scope.reservation if scope is not None else None
        if reservation is not None and not reservation.released and reservation.digest == key_digest(api_key):
            return reservation.committed_usd
        return self.inner.spent(api_key, now=now)

"""State shared by gateway replicas through Redis (`gateway.state_url`): spending per API key per UTC day, each
tier's circuit breaker, requests in flight per tier, per-key rate limits (`RateLimiter`) and budget reservations
(`BudgetGuard`) — the last two work in-process without Redis too. Reads on the request path stay local and
synchronous (except the rate-limit check and the budget reservation, one Lua script each per request); a
background sync pushes what this replica recorded and reads back what all replicas recorded, every
`gateway.state_sync_interval_s`.

Usage::

    store = SharedStateStore.from_config(settings.gateway, trackers, registry=metrics.registry)
    ledger = store.ledger          # a SpendLedger: charge() / spent()
    await store.start()            # first sync, then syncing in the background
    ...
    await store.aclose()           # last push, then disconnect
"""

from tierwise.state.breakers import SharedBreakers
from tierwise.state.budget_guard import BudgetGuard
from tierwise.state.in_flight import SharedInFlight
from tierwise.state.rate_limits import Admission, RateLimiter, estimated_tokens
from tierwise.state.spend import SharedBudgetLedger, key_digest
from tierwise.state.store import SharedStateStore

__all__ = [
    "Admission", "BudgetGuard", "RateLimiter", "SharedBreakers", "SharedBudgetLedger", "SharedInFlight",
    "SharedStateStore", "estimated_tokens", "key_digest",
]

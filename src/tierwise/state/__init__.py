"""State shared by gateway replicas through Redis (`gateway.state_url`): spending per API key per UTC day, and
each tier's circuit breaker. Reads on the request path stay local and synchronous; a background sync pushes what
this replica recorded and reads back what all replicas recorded, every `gateway.state_sync_interval_s`.

Usage::

    store = SharedStateStore.from_config(settings.gateway, trackers, registry=metrics.registry)
    ledger = store.ledger          # a SpendLedger: charge() / spent()
    await store.start()            # first sync, then syncing in the background
    ...
    await store.aclose()           # last push, then disconnect
"""

from tierwise.state.breakers import SharedBreakers
from tierwise.state.spend import SharedBudgetLedger, key_digest
from tierwise.state.store import SharedStateStore

__all__ = ["SharedBreakers", "SharedBudgetLedger", "SharedStateStore", "key_digest"]

"""Requests in flight per tier, summed over gateway replicas, for the saturation policy.

Redis holds one hash, `tierwise:inflight`, with one field per live replica (a random id made at startup) whose
value is `{"at": <Unix time>, "tiers": {<tier>: <count>}}`, rewritten by every sync of that replica. A field
older than `ttl_s` is a replica that stopped syncing (crashed, or cut off from Redis): it counts for nothing, and
the next sync that sees it deletes it. A replica's own count is always its live local one; the others' are as of
the last sync (at most one sync interval old).

Usage::

    shared = SharedInFlight(trackers, ttl_s=5.0)
    pipe.hset(INFLIGHT_KEY, shared.replica_id, shared.heartbeat())      # in each sync
    shared.adopt(fields_read_back)                                    # -> stale fields to delete next time
    shared.others("cloud"), shared.replicas()
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping

from tierwise.gateway.health import TierHealthTracker

INFLIGHT_KEY = "tierwise:inflight"


class SharedInFlight:
    """This replica's heartbeat of in-flight counts, and the other replicas' counts as last read."""

    def __init__(
        self,
        trackers: Mapping[str, TierHealthTracker],
        *,
        ttl_s: float,
        replica_id: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.trackers = trackers
        self.ttl_s = ttl_s
        self.replica_id = replica_id or uuid.uuid4().hex
        self.wall_clock = wall_clock
        self.stale: list[str] = []  # fields of replicas gone quiet: deleted by the next sync
        self._others: dict[str, int] = {}
        self._other_replicas = 0
        self._read_at = float("-inf")

    def heartbeat(self) -> str:
        """This replica's field value now."""
        counts = {name: tracker.in_flight for name, tracker in self.trackers.items()}
        return json.dumps({"at": round(self.wall_clock(), 3), "tiers": counts}, separators=(",", ":"))

    def adopt(self, fields: Mapping[str, str]) -> None:
        """Take in every replica's field as read back by a sync."""
        now = self.wall_clock()
        totals: dict[str, int] = {}
        live, stale = 0, []
        for replica, raw in fields.items():
            if replica == self.replica_id:
                continue
            try:
                entry = json.loads(raw)
                fresh = now - float(entry["at"]) <= self.ttl_s
                counts = {str(k): int(v) for k, v in entry["tiers"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                fresh, counts = False, {}  # not ours to read: treated like a dead replica's
            if not fresh:
                stale.append(replica)
                continue
            live += 1
            for tier, count in counts.items():
                totals[tier] = totals.get(tier, 0) + max(count, 0)
        self._others, self._other_replicas, self._read_at, self.stale = totals, live, now, stale

    def _current(self) -> bool:
        # While Redis is unreachable the last read ages; past the TTL it says nothing about the others any more.
        return self.wall_clock() - self._read_at <= self.ttl_s

    def others(self, tier: str) -> int:
        """Requests the other live replicas have in flight on `tier`."""
        return self._others.get(tier, 0) if self._current() else 0

    def replicas(self) -> int:
        """Live replicas, this one included."""
        return 1 + (self._other_replicas if self._current() else 0)

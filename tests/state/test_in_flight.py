"""In-flight counts per tier summed over replicas: heartbeats, and replicas that stop sending them."""

from __future__ import annotations

import json

from tierwise.gateway.health import TierHealthTracker
from tierwise.state.in_flight import SharedInFlight


def beat(at: float, **tiers: int) -> str:
    return json.dumps({"at": at, "tiers": tiers})


def test_other_replicas_counts_are_summed_and_our_own_is_left_out():
    clock = [1000.0]
    trackers = {"cloud": TierHealthTracker()}
    shared = SharedInFlight(trackers, ttl_s=2.0, replica_id="me", wall_clock=lambda: clock[0])
    trackers["cloud"].in_flight = 4
    assert json.loads(shared.heartbeat()) == {"at": 1000.0, "tiers": {"cloud": 4}}
    shared.adopt({"me": beat(1000, cloud=4), "a": beat(999.5, cloud=2), "b": beat(999.9, cloud=3, edge=1)})
    assert (shared.others("cloud"), shared.others("edge"), shared.replicas()) == (5, 1, 3)
    assert shared.stale == []


def test_a_replica_that_stopped_beating_counts_for_nothing_and_is_deleted():
    clock = [1000.0]
    shared = SharedInFlight({}, ttl_s=2.0, replica_id="me", wall_clock=lambda: clock[0])
    shared.adopt({"crashed": beat(997.0, cloud=8), "alive": beat(999.0, cloud=1), "junk": "not json"})
    assert shared.others("cloud") == 1 and shared.replicas() == 2
    assert sorted(shared.stale) == ["crashed", "junk"]


def test_without_a_fresh_read_the_others_are_forgotten():
    clock = [1000.0]
    shared = SharedInFlight({}, ttl_s=2.0, replica_id="me", wall_clock=lambda: clock[0])
    shared.adopt({"a": beat(1000.0, cloud=8)})
    assert shared.others("cloud") == 8
    clock[0] += 2.5  # Redis unreachable: no sync has read the others since
    assert shared.others("cloud") == 0 and shared.replicas() == 1

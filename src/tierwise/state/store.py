"""The gateway's link to Redis: one background task that syncs the shared ledger, breakers and in-flight counts,
and reconnects.

A sync is one MULTI/EXEC transaction: add the queued charges, apply the queued breaker events, write this
replica's in-flight heartbeat, read back today's spending hash, every tier's hash and every replica's in-flight
counts. When Redis does not answer (a sync fails, or the rate limiter's check does: `mark_down`), the gateway
keeps serving on its local state, the gauge `tierwise_shared_state_up` reads 0, and the next syncs retry (redis-py
reconnects by itself); the first that succeeds marks Redis up again.

Usage::

    store = SharedStateStore.from_config(settings.gateway, trackers, registry=metrics.registry)
    await store.start()
    ...
    await store.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tierwise.config import GatewayConfig
from tierwise.errors import ConfigError
from tierwise.gateway.health import TierHealthTracker
from tierwise.routing.budget import utc_day
from tierwise.state.breakers import RECORD_SCRIPT, SharedBreakers, tier_key
from tierwise.state.budget_guard import RELEASE_SCRIPT, BudgetGuard, reserve_prefix
from tierwise.state.in_flight import INFLIGHT_KEY, SharedInFlight
from tierwise.state.spend import SPEND_TTL_S, SharedBudgetLedger, spend_key

log = logging.getLogger("tierwise.gateway")

SOCKET_TIMEOUT_S = 1.0  # a sync waits at most this long on an unresponsive Redis


def in_flight_ttl_s(interval_s: float) -> float:
    """How long a replica's in-flight heartbeat counts: several missed syncs, and never under 2 s."""
    return max(2.0, 4 * interval_s)


class SharedStateStore:
    """Owns the Redis client, the shared ledger and breakers, and the task that syncs them."""

    def __init__(
        self,
        client: Redis,
        *,
        ledger: SharedBudgetLedger,
        breakers: SharedBreakers,
        interval_s: float,
        in_flight: SharedInFlight | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.breakers = breakers
        self.interval_s = interval_s
        self.in_flight = in_flight or SharedInFlight(breakers.trackers, ttl_s=in_flight_ttl_s(interval_s))
        self.budget_guard: BudgetGuard | None = None  # set by the gateway: its releases go with the charges
        self.up = False
        self.last_error = "not synced yet"
        self.gauge = Gauge(
            "tierwise_shared_state_up", "1 while the shared state store (Redis) answers, else 0", registry=registry
        )
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    @classmethod
    def from_config(
        cls, config: GatewayConfig, trackers: Mapping[str, TierHealthTracker], *, registry: CollectorRegistry | None
    ) -> SharedStateStore:
        """The store `gateway.state_url` names (nothing is connected until `start`)."""
        if config.state_url is None:
            raise ConfigError("gateway.state_url is not set")
        options: dict[str, Any] = {}
        if config.state_password_env:
            options["password"] = os.environ.get(config.state_password_env)
            if options["password"] is None:
                raise ConfigError(f"gateway.state_password_env: {config.state_password_env} is not set")
        client: Redis = Redis.from_url(
            config.state_url,
            **options,  # a password in the URL itself is used when there is no variable
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # the sync loop is the retry: a sync must never hang
        )
        breakers = SharedBreakers(trackers, failure_threshold=config.failure_threshold, cooldown_s=config.cooldown_s)
        return cls(client, ledger=SharedBudgetLedger(), breakers=breakers, interval_s=config.state_sync_interval_s,
                   registry=registry)

    async def start(self) -> None:
        """Attach to the trackers, sync once (serving starts even if Redis is down), then sync in the background."""
        loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()

        def soon() -> None:  # charges may be recorded from any thread
            loop.call_soon_threadsafe(wake.set)

        self.ledger.on_charge = self.breakers.on_failure = soon
        self.breakers.attach()
        await self.sync()
        self._task = asyncio.create_task(self._sync_forever(), name="tierwise-shared-state")

    async def aclose(self) -> None:
        """Stop syncing, push what is still queued (if Redis answers), and disconnect."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self.sync(leaving=True)
        if self.ledger.queued_usd() > 0:
            log.warning("shared state: %.6g USD of spending could not be written to Redis", self.ledger.queued_usd())
        await self.client.aclose()

    async def sync(self, *, leaving: bool = False) -> bool:
        """Push queued charges, breaker events and the in-flight heartbeat, read back the shared view; False if
        Redis did not answer. `leaving`: this replica's in-flight field is removed instead of written."""
        day = utc_day()
        charges = self.ledger.take_queued()
        releases = self.budget_guard.take_releases() if self.budget_guard is not None else {}
        events = self.breakers.take_events()
        tiers = list(self.breakers.trackers)
        try:
            results = await self._exchange(day, (charges, releases), events, tiers, leaving=leaving)
        except (RedisError, OSError) as err:
            self.ledger.restore()
            if self.budget_guard is not None:
                self.budget_guard.restore_releases(releases)
            self.breakers.restore(events)
            self.mark_down(f"{type(err).__name__}: {err}")
            return False
        spending, *tier_hashes, in_flight = results[-2 - len(tiers):]
        self.ledger.confirm(day, {digest: float(usd) for digest, usd in spending.items()})
        self.breakers.adopt(dict(zip(tiers, tier_hashes, strict=True)))
        self.in_flight.adopt(in_flight)
        self._mark(up=True)
        return True

    async def _exchange(self, day: Any, money: Any, events: Any, tiers: list[str], *, leaving: bool) -> list[Any]:
        charges, releases = money
        replica = self.in_flight.replica_id
        async with self.client.pipeline(transaction=True) as pipe:
            for (charge_day, digest), usd in charges.items():
                pipe.hincrbyfloat(spend_key(charge_day), digest, usd)
                pipe.expire(spend_key(charge_day), SPEND_TTL_S)
            for (reserve_day, digest), usd in releases.items():  # in the same transaction as the charges
                pipe.eval(RELEASE_SCRIPT, 1, reserve_prefix(reserve_day) + replica, digest, repr(usd))
            pipe.expire(reserve_prefix(day) + replica, int(self.in_flight.ttl_s) + 1)  # the reservations' heartbeat
            for event in events:
                pipe.eval(RECORD_SCRIPT, 1, tier_key(event.tier), *self.breakers.script_args(event))
            gone = [*self.in_flight.stale, *([self.in_flight.replica_id] if leaving else [])]
            if gone:
                pipe.hdel(INFLIGHT_KEY, *gone)
            if not leaving:
                pipe.hset(INFLIGHT_KEY, self.in_flight.replica_id, self.in_flight.heartbeat())
            pipe.expire(INFLIGHT_KEY, SPEND_TTL_S)  # no replica left: the hash goes too
            pipe.hgetall(spend_key(day))
            for name in tiers:
                pipe.hgetall(tier_key(name))
            pipe.hgetall(INFLIGHT_KEY)
            return list(await pipe.execute())

    def mark_down(self, why: str) -> None:
        """Redis did not answer (a sync, or a rate-limit check): serve on local state until a sync succeeds."""
        self._mark(up=False, why=why)

    def report(self, *, detailed: bool) -> dict[str, object]:
        """For /healthz: whether Redis answers, and what falls back to this replica's own state meanwhile."""
        entry: dict[str, object] = {"up": self.up}
        if not self.up:
            entry["fallback"] = "serving on this replica's own budget, tier health, rate limits and in-flight counts"
        if detailed:
            entry["replicas"] = self.in_flight.replicas()
            if not self.up:
                entry["error"] = self.last_error
        return entry

    def _mark(self, *, up: bool, why: str = "") -> None:
        if up != self.up:
            if up:
                log.info("shared state: Redis answers; syncing budget, tier health and rate limits again")
            else:
                log.warning("shared state: Redis unreachable (%s); serving on local state", why)
        self.up = up
        self.last_error = "" if up else why
        self.gauge.set(1 if up else 0)

    async def _sync_forever(self) -> None:
        assert self._wake is not None
        while True:
            if self.up:  # a charge or failure syncs at once; while Redis is down, retry at the interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
            else:
                await asyncio.sleep(self.interval_s)
            self._wake.clear()
            try:
                await self.sync()
            except Exception:  # a sync bug must not stop syncing
                log.exception("shared state sync failed")

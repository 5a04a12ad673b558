"""Shared state without a Redis server: the ledger's queue, the breakers' adoption, config, and Redis unreachable."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import openai_tier
from tierwise.config import settings_from_dict
from tierwise.errors import ConfigError
from tierwise.gateway.health import TierHealthTracker
from tierwise.state import SharedBreakers, SharedBudgetLedger, key_digest
from tierwise.testing.servers import free_port

NOON = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_charges_count_at_once_and_survive_a_failed_send():
    ledger = SharedBudgetLedger()
    ledger.charge("k", 0.5, now=NOON)
    sent = ledger.take_queued()
    assert sent == {(NOON.date(), key_digest("k")): 0.5}
    ledger.charge("k", 0.25, now=NOON)  # while the send is in flight
    assert ledger.spent("k", now=NOON) == pytest.approx(0.75)
    ledger.restore()  # Redis did not answer: everything queues again
    assert ledger.take_queued() == {(NOON.date(), key_digest("k")): pytest.approx(0.75)}
    ledger.confirm(NOON.date(), {key_digest("k"): 2.0})  # other replicas spent too
    assert ledger.spent("k", now=NOON) == pytest.approx(2.0)
    assert ledger.queued_usd() == 0.0


def test_raw_api_keys_never_become_redis_fields():
    assert key_digest("sk-secret") != "sk-secret" and len(key_digest("sk-secret")) == 64
    assert key_digest(None) == "anonymous"


def test_a_tracker_publishes_and_adopts_the_shared_view():
    clock = [100.0]
    tracker = TierHealthTracker(failure_threshold=2, cooldown_s=10.0, clock=lambda: clock[0])
    breakers = SharedBreakers({"edge": tracker}, failure_threshold=2, cooldown_s=10.0, wall_clock=lambda: 1000.0)
    breakers.attach()
    tracker.record_success()
    tracker.record_success()
    tracker.record_failure("boom")
    events = breakers.take_events()
    assert [e.failed for e in events] == [False, True]  # the run of successes is sent once
    breakers.adopt({"edge": {"failures": "2", "down_until": "1004.0", "error": "seen by a replica"}})
    assert not tracker.available() and tracker.last_error == "seen by a replica"
    clock[0] += 5  # 4 s left on the shared cooldown, counted on this replica's clock
    assert tracker.available()
    assert breakers.take_events() == []  # adopting is not re-published


def test_a_tier_with_queued_events_keeps_its_local_state():
    tracker = TierHealthTracker(failure_threshold=1, cooldown_s=10.0)
    breakers = SharedBreakers({"edge": tracker}, failure_threshold=1, cooldown_s=10.0)
    breakers.attach()
    tracker.record_failure("just now")
    breakers.adopt({"edge": {"failures": "0", "down_until": "0", "error": ""}})
    assert not tracker.available()


def test_state_url_must_be_redis():
    with pytest.raises(ConfigError, match="state_url"):
        settings_from_dict({"tiers": [openai_tier("a", "http://127.0.0.1:9/v1")],
                            "gateway": {"state_url": "http://127.0.0.1:6379"}})


def test_a_missing_password_variable_is_named(monkeypatch):
    from tierwise.gateway.app import create_app
    from tierwise.state import SharedStateStore

    monkeypatch.delenv("TIERWISE_TEST_REDIS_PW", raising=False)
    settings = settings_from_dict({"tiers": [openai_tier("a", "http://127.0.0.1:9/v1")], "gateway": {
        "state_url": "redis://127.0.0.1:9/0", "state_password_env": "TIERWISE_TEST_REDIS_PW"}})
    create_app(settings)  # nothing is read before the lifespan
    with pytest.raises(ConfigError, match="TIERWISE_TEST_REDIS_PW"):
        SharedStateStore.from_config(settings.gateway, {}, registry=None)


def test_without_redis_the_gateway_serves_on_local_state(stub_backend, run_gateway):
    stub_url, _ = stub_backend
    started = time.monotonic()
    url = run_gateway({
        "tiers": [openai_tier("cloud", stub_url, location="cloud", cost={"input_per_mtok": 1000.0})],
        "gateway": {"state_url": f"redis://127.0.0.1:{free_port()}/0", "state_sync_interval_s": 0.1},
        "policies": {"daily_budget_usd": 0.02},  # one request (~0.0132 USD expected, 0.007 charged)
    })
    assert time.monotonic() - started < 10
    body = {"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).status_code == 200
    assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).status_code == 429  # budget kept locally
    assert "tierwise_shared_state_up 0.0" in httpx.get(f"{url}/metrics", timeout=10).text

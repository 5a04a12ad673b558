"""Two gateway replicas sharing budget and tier health through a real redis-server (skipped without one).

Each test starts its own redis-server on a free loopback port, without persistence, and stops it afterwards
(the `redis_server` and `backends` fixtures are in this folder's conftest.py).
"""

from __future__ import annotations

import contextlib

import httpx
import pytest

from tests.conftest import openai_tier
from tests.gateway.redis_replicas import (
    PRICE,
    SYNC_S,
    replica_apps,
    replicas,
    running_redis,
    wait_for,
)
from tierwise.config import settings_from_dict
from tierwise.gateway.app import create_app
from tierwise.state import key_digest
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import create_stub_app

pytestmark = pytest.mark.slow

def ask(url: str, key: str = "none") -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=10, headers={"authorization": f"Bearer {key}"},
                      json={"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})


def test_spending_through_one_replica_exhausts_the_budget_on_the_other(redis_server, backends):
    cloud = [openai_tier("cloud", backends["cloud"][0], location="cloud", cost=PRICE)]
    with contextlib.ExitStack() as stack:
        (a, _), (b, app_b) = replica_apps(stack, redis_server.port, cloud)
        for _ in range(3):
            assert ask(a).status_code == 200
        # Asking B until it refuses would spend on B: watch its view instead (at most a sync or two behind).
        wait_for(lambda: app_b.state.tierwise.ledger.spent(None) >= 0.036 - 1e-9, what="B to see A's spending",
                 timeout_s=5)
        refused = ask(b)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "daily_budget_exceeded"
        assert ask(a).status_code == 429
    assert redis_server.spent_today() == {key_digest(None): pytest.approx(0.036)}


def test_raw_api_keys_are_never_written_to_redis(redis_server, backends):
    cloud = [openai_tier("cloud", backends["cloud"][0], location="cloud", cost=PRICE)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(pytest.MonkeyPatch.context()).setenv("TIERWISE_TEST_KEYS", "sk-alpha,sk-beta")
        config = {"tiers": cloud, "gateway": {"state_url": f"redis://127.0.0.1:{redis_server.port}/0",
                                              "api_keys_env": "TIERWISE_TEST_KEYS", "state_sync_interval_s": SYNC_S}}
        url = stack.enter_context(serve_in_thread(create_app(settings_from_dict(config))))
        assert ask(url, "sk-alpha").status_code == 200
        assert ask(url, "sk-beta").status_code == 200
        wait_for(lambda: len(redis_server.spent_today()) == 2, what="both keys' spending in Redis")
    dump = repr([(k, redis_server.client.dump(k)) for k in redis_server.client.keys("*")])  # type: ignore[union-attr]
    assert "sk-alpha" not in dump and "sk-beta" not in dump
    assert set(redis_server.spent_today()) == {key_digest("sk-alpha"), key_digest("sk-beta")}


def test_a_tier_seen_down_by_one_replica_is_skipped_by_the_other(redis_server, backends):
    cloud_url = backends["cloud"][0]
    edge = contextlib.ExitStack()
    edge_url = edge.enter_context(serve_in_thread(create_stub_app())) + "/v1"
    tiers = [openai_tier("edge", edge_url), openai_tier("cloud", cloud_url, location="cloud", cost=PRICE)]
    with edge, contextlib.ExitStack() as stack:
        a, b = replicas(stack, redis_server.port, tiers)
        assert ask(b).headers["x-tierwise-tier"] == "edge"  # the free tier, while it is up
        edge.close()  # the edge goes away; only A finds out, by trying it
        for _ in range(2):  # failure_threshold: the second failure marks it down
            answer = ask(a)
            assert (answer.headers["x-tierwise-tier"], answer.headers["x-tierwise-failover"]) == ("cloud", "edge")
        wait_for(lambda: not httpx.get(f"{b}/healthz", timeout=5).json()["tiers"]["edge"]["available"],
                 what="replica B to see edge down", timeout_s=5)
        assert 'tierwise_tier_up{tier="edge"} 0.0' in httpx.get(f"{b}/metrics").text  # B has not probed it
        answer = ask(b)
        assert answer.headers["x-tierwise-tier"] == "cloud"
        assert "x-tierwise-failover" not in answer.headers  # B skipped the edge without trying it


def test_replicas_keep_serving_while_redis_is_down_and_lose_no_spending(redis_server, backends):
    cloud = [openai_tier("cloud", backends["cloud"][0], location="cloud", cost=PRICE)]
    with contextlib.ExitStack() as stack:
        (a, app_a), (b, _) = replica_apps(stack, redis_server.port, cloud)
        assert ask(a).status_code == 200
        wait_for(lambda: app_a.state.tierwise.shared.ledger.queued_usd() == 0, what="the first charge confirmed")
        assert redis_server.spent_today() == {key_digest(None): pytest.approx(0.012)}
        redis_server.stop()
        for url in (a, b):
            wait_for(lambda url=url: "tierwise_shared_state_up 0.0" in httpx.get(f"{url}/metrics").text,
                     what="the gauge to read 0")
            assert ask(url).status_code == 200  # served on local state: 0.012 USD each
        redis_server.start()  # empty: it saved nothing
        for url in (a, b):
            wait_for(lambda url=url: "tierwise_shared_state_up 1.0" in httpx.get(f"{url}/metrics").text,
                     what="the gauge to read 1")
        wait_for(lambda: redis_server.spent_today().get(key_digest(None), 0) >= 0.024 - 1e-9,
                 what="the outage's spending in Redis")
        assert redis_server.spent_today() == {key_digest(None): pytest.approx(0.024)}


def test_the_password_comes_from_the_named_variable(backends, monkeypatch):
    monkeypatch.setenv("TIERWISE_TEST_REDIS_PW", "s3cret-pw")
    cloud = [openai_tier("cloud", backends["cloud"][0], location="cloud", cost=PRICE)]
    with running_redis(password="s3cret-pw") as server, contextlib.ExitStack() as stack:
        config = {"tiers": cloud, "gateway": {"state_url": f"redis://127.0.0.1:{server.port}/0",
                                              "state_password_env": "TIERWISE_TEST_REDIS_PW"}}
        url = stack.enter_context(serve_in_thread(create_app(settings_from_dict(config))))
        assert "tierwise_shared_state_up 1.0" in httpx.get(f"{url}/metrics").text
        assert ask(url).status_code == 200
        wait_for(lambda: server.spent_today() != {}, what="the charge in Redis")

"""Hard policies and the learned router, end to end through the gateway with the stock openai SDK.

The cloud tier is a stub that records every body it receives: personal data must never appear there.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import llama_tier, needs_llama_cpp, openai_tier, sdk
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app

CLOUD_PRICE = {"input_per_mtok": 5.0, "output_per_mtok": 15.0}
CANARIES = [
    "Please email the report to li.wei@example.com today",
    "Call me back on +86 138 0013 8000 after lunch",
    "My phone is (415) 555-0134, text me",
    "ID 11010519491231002X is on the form",
    "Charge card 4111 1111 1111 1111 for the order",
    "The server at 192.168.10.24 refuses ssh",
]


@pytest.fixture
def recording_cloud():
    behavior = StubBehavior(pieces=["cloud", " answer"])
    with serve_in_thread(create_stub_app(behavior)) as url:
        yield f"{url}/v1", behavior


def _leaked(behavior: StubBehavior) -> list[str]:
    received = json.dumps(behavior.received)
    return [c for c in CANARIES if c in received]


def test_personal_data_never_reaches_the_cloud(tiny_gguf, recording_cloud, run_gateway):
    needs_llama_cpp()
    cloud_url, cloud = recording_cloud
    # The cloud is made the cheapest so that, without the policy, every request would go there.
    url = run_gateway({"tiers": [
        llama_tier("device", tiny_gguf, cost={"input_per_mtok": 9.0}),
        openai_tier("cloud", cloud_url, location="cloud"),
    ]})
    client = sdk(url)
    plain = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello"}])
    assert plain.model_extra["tierwise"]["tier"] == "cloud"
    for canary in CANARIES:
        earlier_turn = [{"role": "user", "content": canary}, {"role": "assistant", "content": "noted"},
                        {"role": "user", "content": "and now a harmless question"}]
        for messages in ([{"role": "user", "content": "x " * 150 + canary + " y" * 150}], earlier_turn):
            completion = client.chat.completions.create(model="auto", messages=messages, max_tokens=4)
            report = completion.model_extra["tierwise"]
            assert report["tier"] == "device", canary
            assert "personal data" in report["excluded"]["cloud"]
        with pytest.raises(openai.PermissionDeniedError, match="personal data"):
            client.chat.completions.create(model="cloud", messages=[{"role": "user", "content": canary}])
    assert _leaked(cloud) == []
    assert len(cloud.received) == 1  # only the harmless request


def test_no_private_tier_up_means_refusal_not_leak(recording_cloud, run_gateway):
    cloud_url, cloud = recording_cloud
    url = run_gateway({"tiers": [
        openai_tier("device", "http://127.0.0.1:9/v1", location="device"),  # nothing listens: the device is down
        openai_tier("cloud", cloud_url, location="cloud", cost=CLOUD_PRICE),
    ]})
    for canary in CANARIES:
        for stream in (False, True):
            response = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
                "model": "auto", "stream": stream, "messages": [{"role": "user", "content": canary}]})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "no_tier_available"
    assert _leaked(cloud) == [] and cloud.received == []
    ok = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                    json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]})
    assert ok.status_code == 200 and ok.json()["tierwise"]["tier"] == "cloud"  # failed over from the device


def test_daily_budget_pushes_to_cheaper_tiers_then_429(recording_cloud, stub_backend, run_gateway):
    cloud_url, _ = recording_cloud
    edge_url, _ = stub_backend
    url = run_gateway({
        "tiers": [openai_tier("edge", edge_url, cost={"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}),
                  openai_tier("cloud", cloud_url, location="cloud", cost={"input_per_mtok": 4000.0,
                                                                          "output_per_mtok": 4000.0})],
        "gateway": {"api_keys": ["k1", "k2"]},
        "policies": {"daily_budget_usd": 0.1},
    })
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}

    def post(key: str) -> httpx.Response:
        return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})

    served = [post("k1") for _ in range(12)]
    statuses = [r.status_code for r in served]
    assert statuses[0] == 200 and served[0].json()["tierwise"]["tier"] == "edge"
    assert 429 in statuses, statuses
    refused = served[statuses.index(429)].json()["error"]
    assert refused["code"] == "daily_budget_exceeded" and "budget" in refused["message"]
    assert post("k2").status_code == 200  # budgets are per key


def test_gateway_routes_auto_with_a_trained_router(tmp_path, stub_backend, recording_cloud, run_gateway):
    import numpy as np

    from tierwise.outcomes import OutcomeTable
    from tierwise.routing.features import FeaturizerSettings
    from tierwise.routing.train import parse_tiers, train_router

    queries, scores = [], []
    for i in range(160):
        hard = i % 2 == 1
        queries.append(f"Prove the theorem {i} about integrals of x^{i}" if hard else f"Say hi to my neighbour {i}")
        scores.append([0.0 if hard else 1.0, 1.0])
    table = OutcomeTable(queries=queries, models=["small", "big"], scores=np.array(scores),
                         query_ids=[str(i) for i in range(len(queries))])
    router_file = train_router(table, parse_tiers("edge=small,cloud=big"), target_cloud_share=0.5,
                               featurizer=FeaturizerSettings(embedding="none"), cache_dir=str(tmp_path / "cache"))
    router_file.save(tmp_path / "router.json")

    edge_url, _ = stub_backend
    cloud_url, _ = recording_cloud
    url = run_gateway({
        "tiers": [openai_tier("edge", edge_url, cost={"input_per_mtok": 0.02, "output_per_mtok": 0.06}),
                  openai_tier("cloud", cloud_url, location="cloud", cost=CLOUD_PRICE)],
        "router": {"model": str(tmp_path / "router.json")},
        "policies": {"personal_data": "off"},
    })
    client = sdk(url)
    hard = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Prove the theorem 9 about integrals of x^9"}])
    easy = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Say hi to my neighbour 4"}])
    hard_report, easy_report = hard.model_extra["tierwise"], easy.model_extra["tierwise"]
    assert hard_report["router"] == "learned" and hard_report["tier"] == "cloud"
    assert easy_report["tier"] == "edge"
    assert set(easy_report["predicted_quality"]) == {"edge", "cloud"}
    assert easy_report["expected_cost_usd"]["cloud"] > easy_report["expected_cost_usd"]["edge"]
    assert any("tolerance" in reason for reason in easy_report["reasons"])

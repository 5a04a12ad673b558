from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import openai_tier, sdk

MESSAGES = [{"role": "user", "content": "hi"}]


def test_api_keys_guard_every_endpoint_but_health(stub_backend, run_gateway, monkeypatch):
    base, _ = stub_backend
    monkeypatch.setenv("TW_KEYS", "sk-env-1, sk-env-2")
    url = run_gateway({"tiers": [openai_tier("edge", base)],
                       "gateway": {"api_keys": ["sk-good"], "api_keys_env": "TW_KEYS"}})
    for method, path in [("GET", "/v1/models"), ("GET", "/metrics"), ("POST", "/v1/chat/completions")]:
        for headers in ({}, {"Authorization": "Bearer sk-bad"}, {"Authorization": "Basic sk-good"}):
            response = httpx.request(method, f"{url}{path}", headers=headers, json={"model": "edge"})
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"]["type"] == "authentication_error"
            assert "sk-bad" not in response.text
    assert httpx.get(f"{url}/healthz").status_code == 200
    for key in ("sk-good", "sk-env-2"):
        client = sdk(url, api_key=key)
        assert client.chat.completions.create(model="edge", messages=MESSAGES).choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        sdk(url, api_key="sk-wrong").models.list()


def test_models_lists_tiers_and_auto(stub_backend, run_gateway):
    base, _ = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base), openai_tier("cloud", base, location="cloud")]})
    ids = [m.id for m in sdk(url, api_key="x").models.list()]
    assert ids == ["auto", "edge", "cloud"]


def test_healthz_reports_each_tier(stub_backend, run_gateway):
    base, _ = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base), openai_tier("cloud", "http://127.0.0.1:9/v1")]})
    response = httpx.get(f"{url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["tiers"]["edge"]["healthy"] is True
    assert body["tiers"]["cloud"]["healthy"] is False and body["tiers"]["cloud"]["available"] is False


def test_healthz_answers_from_state_and_keeps_details_for_key_holders(stub_backend, run_gateway):
    base, behavior = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base)], "gateway": {"api_keys": ["sk-good"]}})
    probes_at_start = behavior.models_calls
    for _ in range(200):  # an open endpoint must not relay each call to the backends
        anonymous = httpx.get(f"{url}/healthz")
    assert behavior.models_calls - probes_at_start <= 2  # only the background prober's own probes
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ok", "tiers": {"edge": {"available": True}}}
    keyed = httpx.get(f"{url}/healthz", headers={"Authorization": "Bearer sk-good"}).json()
    assert keyed["tiers"]["edge"]["detail"] == "ok" and keyed["tiers"]["edge"]["location"] == "edge"


def test_metrics_count_requests_tokens_and_errors(stub_backend, run_gateway):
    base, _ = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    client = sdk(url, api_key="x")
    client.chat.completions.create(model="edge", messages=MESSAGES)
    list(client.chat.completions.create(model="edge", messages=MESSAGES, stream=True))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    text = httpx.get(f"{url}/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("tierwise_requests_total", (("outcome", "ok"), ("tier", "edge")))] == 2
    assert samples[("tierwise_tokens_total", (("kind", "completion"), ("tier", "edge")))] == 10
    assert samples[("tierwise_http_errors_total", (("status", "404"),))] == 1
    assert samples[("tierwise_request_latency_seconds_count", (("tier", "edge"),))] == 2
    assert samples[("tierwise_time_to_first_token_seconds_count", (("tier", "edge"),))] == 2

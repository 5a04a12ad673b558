"""Without keys only loopback host names are served (DNS rebinding), and API posts must be JSON (form posts)."""

from __future__ import annotations

import httpx

from tests.conftest import openai_tier

BODY = {"model": "edge", "messages": [{"role": "user", "content": "hi"}]}


def test_without_keys_a_foreign_host_name_is_refused(stub_backend, run_gateway):
    base, behavior = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    evil = httpx.post(f"{url}/v1/chat/completions", json=BODY, headers={"Host": "attacker.example"})
    assert evil.status_code == 421 and evil.json()["error"]["code"] == "host_not_allowed"
    assert httpx.get(f"{url}/v1/models", headers={"Host": "rebound.example:8000"}).status_code == 421
    for host in ("127.0.0.1", "localhost:8000", "[::1]:8000"):
        assert httpx.post(f"{url}/v1/chat/completions", json=BODY, headers={"Host": host}).status_code == 200
    assert len(behavior.received) == 3


def test_an_api_post_that_is_not_json_is_refused(stub_backend, run_gateway):
    base, behavior = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    for content_type in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
        form = httpx.post(f"{url}/v1/chat/completions", content=b'{"model": "edge"}',
                          headers={"Content-Type": content_type})
        assert form.status_code == 415, content_type
        assert form.json()["error"]["code"] == "unsupported_media_type"
    ok = httpx.post(f"{url}/v1/chat/completions", json=BODY,
                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200 and len(behavior.received) == 1


def test_with_keys_or_an_allowlist_other_hosts_are_served(stub_backend, run_gateway):
    base, _ = stub_backend
    keyed = run_gateway({"tiers": [openai_tier("edge", base)], "gateway": {"api_keys": ["sk-1"]}})
    assert httpx.post(f"{keyed}/v1/chat/completions", json=BODY,
                      headers={"Host": "gw.internal", "Authorization": "Bearer sk-1"}).status_code == 200
    listed = run_gateway({"tiers": [openai_tier("edge", base)], "gateway": {"allowed_hosts": ["gw.internal"]}})
    assert httpx.post(f"{listed}/v1/chat/completions", json=BODY, headers={"Host": "gw.internal"}).status_code == 200
    assert httpx.post(f"{listed}/v1/chat/completions", json=BODY, headers={"Host": "localhost"}).status_code == 421

"""Keys: every endpoint but /healthz refuses a missing or unknown key; keys are compared in constant time (every
configured key, through hmac.compare_digest) and never appear in logs, error bodies or metrics."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from tests.conftest import openai_tier
from tierwise.config import settings_from_dict
from tierwise.gateway import auth as auth_module
from tierwise.gateway.app import create_app
from tierwise.gateway.auth import ApiKeyAuth
from tierwise.testing.servers import free_port, stop_process, wait_until_ready

KEYS = ["sk-tw-alpha-0123456789", "sk-tw-bravo-9876543210", "sk-tw-charlie-5555555555"]
WRONG = ["sk-tw-wrong-0000000000", "sk-tw-alpha-012345678X", "x", "sk-tw-alpha-0123456789-and-more"]
SECRETS = [k for k in KEYS + WRONG if len(k) > 8]  # "x" is a wrong key, but also a letter of every log line
MESSAGES = [{"role": "user", "content": "hi"}]


def _config(base: str, **gateway) -> dict:
    return {"tiers": [openai_tier("edge", base)], "gateway": {"api_keys": KEYS[:1], **gateway}}


def test_every_route_but_health_needs_a_key(stub_backend, run_gateway, monkeypatch):
    base, _ = stub_backend
    monkeypatch.setenv("TW_REL_KEYS", ",".join(KEYS[1:]))
    config = _config(base, api_keys_env="TW_REL_KEYS")
    # The routes of the app itself, so that an endpoint added later is covered without editing this test.
    app = create_app(settings_from_dict(config))
    routes = list(_endpoints(app.routes))
    paths = {path for _, path in routes}
    assert {"/v1/chat/completions", "/v1/models", "/metrics", "/healthz"} <= paths
    assert not paths & {"/docs", "/redoc", "/openapi.json"}  # FastAPI's own pages are off when keys are set
    url = run_gateway(config)
    for method, path in routes:
        for headers in ({}, *({"Authorization": f"Bearer {k}"} for k in WRONG), {"Authorization": KEYS[0]},
                        {"Authorization": "Bearer"}, {"Authorization": f"Basic {KEYS[0]}"}):
            response = httpx.request(method, f"{url}{path}", headers=headers, json={"model": "edge"}, timeout=10)
            if path == "/healthz":
                assert response.status_code == 200
                continue
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["error"]["type"] == "authentication_error"
            assert not any(k in response.text for k in SECRETS)
    for path in ("/docs", "/openapi.json"):
        assert httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {KEYS[0]}"}).status_code == 404
    for key in KEYS:  # every configured key works, from the config and from the environment
        ok = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": "edge", "messages": MESSAGES}, timeout=10)
        assert ok.status_code == 200, ok.text


def _endpoints(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every endpoint, through FastAPI's included-router wrappers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _endpoints(inner.routes, prefix + (getattr(route.include_context, "prefix", "") or ""))
        elif getattr(route, "methods", None):
            yield from ((method, prefix + route.path) for method in sorted(route.methods - {"HEAD"}))


def _request(authorization: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"authorization",
                                                                              authorization.encode())]})


@pytest.mark.parametrize("presented", [KEYS[0], KEYS[2], *WRONG])
def test_every_key_is_compared_with_compare_digest_without_stopping_early(monkeypatch, presented):
    calls: list[tuple[bytes, bytes]] = []
    real = auth_module.hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", recording)
    auth = ApiKeyAuth(KEYS)
    if presented in KEYS:
        assert auth.key_of(_request(f"Bearer {presented}")) == presented
    else:
        with pytest.raises(auth_module.AuthenticationFailed):
            auth.key_of(_request(f"Bearer {presented}"))
    # one constant-time comparison per configured key, whichever key matches (or none): no early exit
    assert [b for _, b in calls] == [k.encode() for k in KEYS]
    assert all(a == presented.encode() for a, _ in calls)


def test_keys_never_reach_the_in_process_logs(stub_backend, run_gateway, caplog):
    base, _ = stub_backend
    url = run_gateway(_config(base))
    with caplog.at_level(logging.DEBUG):
        for key in (KEYS[0], *WRONG):
            headers = {"Authorization": f"Bearer {key}"}
            httpx.post(f"{url}/v1/chat/completions", headers=headers, json={"model": "edge", "messages": MESSAGES})
            httpx.post(f"{url}/v1/chat/completions", headers=headers, content=b"{broken")
            httpx.get(f"{url}/metrics", headers=headers)
    assert caplog.records  # the loggers did run (uvicorn, httpx, tierwise)
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert not [k for k in SECRETS if k in logged]


@pytest.mark.slow
def test_keys_never_reach_the_served_gateways_logs(tmp_path, stub_backend):
    """`tierwise serve` at debug level with the access log on, keys from the environment, an upstream key too."""
    base, _ = stub_backend
    port = free_port()
    config = tmp_path / "tiers.yaml"
    config.write_text(
        f"tiers:\n  - {{name: edge, location: edge, backend: openai, base_url: '{base}', model: m, retries: 0,"
        f" api_key_env: TW_UPSTREAM_KEY}}\n  - {{name: gone, location: cloud, backend: openai,"
        f" base_url: 'http://127.0.0.1:9/v1', model: m, retries: 0, api_key_env: TW_UPSTREAM_KEY}}\n"
        f"gateway: {{port: {port}, api_keys_env: TW_KEYS}}\n")
    upstream = "sk-upstream-secret-424242"
    env = {"PATH": "/usr/bin:/bin", "TW_KEYS": ",".join(KEYS), "TW_UPSTREAM_KEY": upstream}
    process = subprocess.Popen([sys.executable, "-m", "tierwise", "serve", "-c", str(config), "--log-level",
                                "debug"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", timeout_s=60, process=process)
        gateway = f"http://127.0.0.1:{port}"
        for key in (*KEYS, *WRONG):
            headers = {"Authorization": f"Bearer {key}"}
            for model in ("edge", "gone", "nope"):
                httpx.post(f"{gateway}/v1/chat/completions", headers=headers, timeout=10,
                           json={"model": model, "messages": MESSAGES})
            httpx.get(f"{gateway}/v1/models", headers=headers, timeout=10)
        metrics = httpx.get(f"{gateway}/metrics", headers={"Authorization": f"Bearer {KEYS[0]}"}).text
    finally:
        process.terminate()
        out, err = process.communicate(timeout=20)
        stop_process(process)
    logs = (out + err).decode("utf-8", "replace")
    assert "POST /v1/chat/completions" in logs  # the access log was on and captured
    assert not [k for k in [*SECRETS, upstream] if k in logs + metrics]

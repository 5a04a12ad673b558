"""Per-key rate limits without Redis: the limiter's API, and what a client of the gateway sees past a limit."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.conftest import openai_tier, sdk
from tierwise.errors import RateLimited
from tierwise.gateway.request_scope import SCOPE, RequestScope
from tierwise.routing.settings import RateLimitSettings
from tierwise.state.rate_limits import RateLimiter, digest_hex

CHAT = "/v1/chat/completions"


def ask(url: str, *, key: str = "none", max_tokens: int = 5, stream: bool = False) -> httpx.Response:
    body = {"model": "auto", "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{url}{CHAT}", json=body, headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_per_key_limits_replace_the_default_by_raw_key_or_digest():
    limiter = RateLimiter(RateLimitSettings(
        requests_per_minute=10,
        per_key={"sk-raw": {"requests_per_minute": 1}, digest_hex("sk-hidden"): {"tokens_per_minute": 50}},
    ))

    async def scenario() -> None:
        await limiter.admit("sk-raw", 1)
        with pytest.raises(RateLimited):
            await limiter.admit("sk-raw", 1)
        await limiter.admit("sk-hidden", 50)
        with pytest.raises(RateLimited) as refused:
            await limiter.admit("sk-hidden", 1)
        assert refused.value.code == "rate_limit_exceeded" and refused.value.retry_after_s is not None
        for _ in range(10):
            await limiter.admit("sk-other", 1)  # the default
        with pytest.raises(RateLimited):
            await limiter.admit("sk-other", 1)

    asyncio.run(scenario())


def test_settling_twice_counts_both_answers_and_drops_the_estimate_once():
    limiter = RateLimiter(RateLimitSettings(tokens_per_minute=1000))

    async def scenario() -> None:
        scope = RequestScope()
        SCOPE.set(scope)
        admission = await limiter.admit("k", 400)
        assert admission is not None and scope.admission is admission  # where charge() finds it
        limiter.settle_current({"prompt_tokens": 10, "completion_tokens": 20})  # the first answer
        limiter.settle(admission, 20)  # an escalated request's second answer
        assert limiter.local.counts(admission.digest, admission.window).tokens == 50

    asyncio.run(scenario())


def test_without_limits_nothing_is_counted():
    limiter = RateLimiter(RateLimitSettings())
    assert asyncio.run(limiter.admit("k", 10**9)) is None


def test_past_the_request_limit_the_client_gets_429_with_retry_after(stub_backend, run_gateway):
    url = run_gateway({"tiers": [openai_tier("edge", stub_backend[0])],
                       "gateway": {"api_keys": ["sk-a", "sk-b"]},
                       "policies": {"rate_limits": {"requests_per_minute": 2}}})
    assert [ask(url, key="sk-a").status_code for _ in range(2)] == [200, 200]
    refused = ask(url, key="sk-a")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "requests per minute" in error["message"]
    assert ask(url, key="sk-b").status_code == 200  # another key, its own limit
    assert len(stub_backend[1].received) == 3  # the refused request never reached a tier
    metrics = httpx.get(f"{url}/metrics", headers={"authorization": "Bearer sk-a"}).text
    assert 'tierwise_rate_limit_decisions_total{result="refused_requests",where="local"} 1.0' in metrics


def test_token_estimates_are_corrected_by_real_usage_streamed_or_not(stub_backend, run_gateway):
    # Each request is admitted at ~301 estimated tokens; the stub reports 7 + 5 real ones. Counted at the estimate,
    # the third request would be refused; settled with real usage, all of them fit.
    url = run_gateway({"tiers": [openai_tier("edge", stub_backend[0])],
                       "policies": {"rate_limits": {"tokens_per_minute": 700}}})
    for stream in (False, True, False, True, False, True):
        answer = ask(url, max_tokens=300, stream=stream)
        assert answer.status_code == 200
    too_big = ask(url, max_tokens=800)
    assert too_big.status_code == 429 and "retry-after" not in too_big.headers
    assert "exceed the limit of 700 tokens per minute" in too_big.json()["error"]["message"]


def test_the_responses_endpoint_shares_the_limit(stub_backend, run_gateway):
    url = run_gateway({"tiers": [openai_tier("edge", stub_backend[0])],
                       "policies": {"rate_limits": {"requests_per_minute": 1}}})
    client = sdk(url)
    client.responses.create(model="auto", input="hi")
    import openai

    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])


def test_a_bad_limit_is_a_config_error_naming_the_key():
    from tierwise.config import settings_from_dict
    from tierwise.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape("policies.rate_limits.requests_per_minute")):
        settings_from_dict({"tiers": [openai_tier("edge", "http://127.0.0.1:9/v1")],
                            "policies": {"rate_limits": {"requests_per_minute": 0}}})
    with pytest.raises(ConfigError, match=re.escape("per_key.sk-a.tokens_per_mintue: unknown key")):
        settings_from_dict({"tiers": [openai_tier("edge", "http://127.0.0.1:9/v1")],
                            "policies": {"rate_limits": {"per_key": {"sk-a": {"tokens_per_mintue": 5}}}}})

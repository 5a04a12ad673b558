"""Bad input, generated (hypothesis) and hand-picked: giant messages, deep JSON, invalid UTF-8, NaN, lone
surrogates, negative or huge `max_tokens`, thousands of messages, wrong types everywhere. Never a 500, never a
tier blamed for a client's mistake, memory bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import openai_tier
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app

LIMIT = 256 * 1024  # the gateway's body limit here: giant bodies below and above it, in little time
CLIENT_ERRORS = {400, 403, 404, 413}  # 403: the text happened to look like personal data, for a non-device tier
OK_BODY = {"model": "edge", "messages": [{"role": "user", "content": "hi"}]}

leaves = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=30))
surrogates = st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), min_size=1, max_size=4)
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
parts = st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]) | json_values},
                                       optional={"text": st.text(max_size=40) | json_values}), max_size=3)
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "wizard"]) | json_values},
    optional={"content": st.text(max_size=200) | parts | json_values, "name": json_values,
              "tool_calls": json_values})


def wild_or(valid: st.SearchStrategy[Any], *, weight: int = 3) -> st.SearchStrategy[Any]:
    """Mostly `valid` (`weight` to 1), sometimes any JSON value at all."""
    return st.sampled_from([True] * weight + [False]).flatmap(lambda ok: valid if ok else json_values)


good_messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=200) | parts},
    optional={"name": st.text(max_size=10), "tool_calls": json_values}), min_size=1, max_size=5)
bodies = st.fixed_dictionaries({
    "model": wild_or(st.sampled_from(["edge", "auto", "edge", "nope"]), weight=6),
    "messages": wild_or(good_messages, weight=6) | st.lists(messages, max_size=5),
}, optional={
    "stream": wild_or(st.booleans()),
    "max_tokens": wild_or(st.integers(min_value=1, max_value=64) | st.integers()),
    "max_completion_tokens": wild_or(st.integers(min_value=1, max_value=64) | st.integers()),
    "temperature": wild_or(st.floats(min_value=0, max_value=2) | st.floats(allow_nan=False)),
    "top_p": st.floats(allow_nan=False), "n": st.integers(), "stop": wild_or(st.text(max_size=5)),
    "stream_options": wild_or(st.fixed_dictionaries({"include_usage": st.booleans()})),
    "logprobs": json_values, "top_logprobs": st.integers(), "seed": wild_or(st.integers()),
    "tools": json_values, "user": wild_or(st.text(max_size=20)) | surrogates, "metadata": json_values,
})


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    from tierwise.config import settings_from_dict
    from tierwise.gateway.app import create_app

    with serve_in_thread(create_stub_app(StubBehavior(record=False))) as stub:
        # A private tier too: generated text that happens to look like personal data (a float whose digits pass
        # Luhn, say) is then served there, as it should be, instead of being refused for want of one.
        config = {"tiers": [openai_tier("edge", f"{stub}/v1", max_concurrent=64),
                            openai_tier("device", f"{stub}/v1", location="device", max_concurrent=64,
                                        cost={"input_per_mtok": 1.0})],
                  "gateway": {"max_body_bytes": LIMIT, "failure_threshold": 1}}
        with serve_in_thread(create_app(settings_from_dict(config))) as url:
            yield url


def _post(client: httpx.Client, url: str, content: bytes) -> httpx.Response:
    return client.post(f"{url}/v1/chat/completions", content=content, headers={"content-type": "application/json"})


def _check(response: httpx.Response) -> None:
    """200 with a complete answer, or a client error in the OpenAI envelope; nothing else."""
    if response.status_code == 200:
        if response.headers["content-type"].startswith("text/event-stream"):
            assert response.text.endswith("data: [DONE]\n\n") and '{"error"' not in response.text
        else:
            assert response.json()["choices"][0]["message"]["content"]
        return
    assert response.status_code in CLIENT_ERRORS, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)
    assert error["message"] and "Traceback" not in error["message"]


def _tier_blamed(url: str) -> dict[str, float]:
    """Tier failures and 5xx answers counted by the gateway: a client's bad input must add to neither."""
    text = httpx.get(f"{url}/metrics").text
    return {f"{s.name}{sorted(s.labels.items())}": s.value for family in text_string_to_metric_families(text)
            for s in family.samples
            if (s.name == "tierwise_tier_errors_total" or (s.name == "tierwise_http_errors_total"
                                                           and s.labels["status"].startswith("5"))) and s.value}


def test_generated_bodies_never_500(gateway):
    served: list[int] = []
    with httpx.Client(timeout=30) as client:

        @settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(body=bodies)
        def one(body: dict[str, Any]) -> None:
            response = _post(client, gateway, json.dumps(body).encode())
            _check(response)
            served.append(response.status_code == 200)

        @settings(max_examples=40, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(garbage=st.binary(max_size=64), where=st.sampled_from(["content", "prefix", "suffix"]))
        def raw(garbage: bytes, where: str) -> None:
            valid = json.dumps(OK_BODY).encode()
            content = {"content": valid.replace(b'"hi"', b'"' + garbage + b'"'), "prefix": garbage + valid,
                       "suffix": valid + garbage}[where]
            _check(_post(client, gateway, content))

        one()
        raw()
    assert sum(served) >= len(served) // 20  # enough bodies pass validation to exercise forwarding too
    assert _tier_blamed(gateway) == {}


def _deep(depth: int) -> bytes:
    return json.dumps({**OK_BODY, "metadata": "X"}).encode().replace(b'"X"', b"[" * depth + b"]" * depth)


@pytest.mark.parametrize(("name", "content", "status"), [
    ("giant message under the limit", json.dumps({**OK_BODY, "messages": [
        {"role": "user", "content": "lorem ipsum " * ((LIMIT - 200) // 12)}]}).encode(), 200),
    ("giant message over the limit", json.dumps({**OK_BODY, "messages": [
        {"role": "user", "content": "x" * (LIMIT + 1)}]}).encode(), 413),
    ("4096 messages", json.dumps({**OK_BODY, "messages": [{"role": "user", "content": "a"}] * 4096}).encode(), 200),
    ("4097 messages", json.dumps({**OK_BODY, "messages": [{"role": "user", "content": "a"}] * 4097}).encode(), 400),
    ("10000 empty messages", json.dumps({**OK_BODY, "messages": [{"role": "user"}] * 10000}).encode(), 400),
    ("invalid UTF-8 in a string", b'{"model": "edge", "messages": [{"role": "user", "content": "\xff\xc3("}]}', 400),
    ("lone surrogate", b'{"model": "edge", "messages": [{"role": "user", "content": "a\\udc80b"}]}', 400),
    ("surrogate pair is fine", b'{"model": "edge", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}', 200),
    ("NaN", json.dumps({**OK_BODY, "temperature": float("nan")}).encode(), 400),
    ("Infinity in a passed-through field", json.dumps({**OK_BODY, "top_k": float("inf")}).encode(), 400),
    ("max_tokens -1", json.dumps({**OK_BODY, "max_tokens": -1}).encode(), 400),
    ("max_tokens 0", json.dumps({**OK_BODY, "max_tokens": 0}).encode(), 400),
    ("max_tokens 10**40", json.dumps({**OK_BODY, "max_tokens": 10**40}).encode(), 400),
    ("max_tokens as a string", json.dumps({**OK_BODY, "max_tokens": "16"}).encode(), 200),
    ("messages as a dict", json.dumps({**OK_BODY, "messages": {"role": "user"}}).encode(), 400),
    ("content as a number", json.dumps({**OK_BODY, "messages": [{"role": "user", "content": 5}]}).encode(), 400),
    ("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, 400),
])
def test_hand_picked_bad_input(gateway, name, content, status):
    response = httpx.post(f"{gateway}/v1/chat/completions", content=content, timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == status, (name, response.text[:300])
    _check(response)


def test_deep_json_in_a_passed_through_field_is_never_blamed_on_the_tier(gateway):
    """Depths around the parser's and the encoder's recursion limits: served, or 400; never a tier failure."""
    with httpx.Client(timeout=30) as client:
        statuses = {depth: _post(client, gateway, _deep(depth)).status_code for depth in range(940, 1001)}
    assert set(statuses.values()) <= {200, 400}, statuses
    assert statuses[940] == 200 and statuses[1000] == 400
    assert _tier_blamed(gateway) == {}


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def test_memory_stays_bounded_under_giant_requests(gateway):
    """Gateway, stub and client share this process: 12 near-limit requests must not each leave their body behind
    (a leak would add ≥ 12 × 0.25 MB × (bytes + str + forwarded copy) ≈ 9 MB; measured growth is ~1 MB)."""
    body = json.dumps({**OK_BODY, "stream": True, "messages": [
        {"role": "user", "content": "word " * ((LIMIT - 300) // 5)}]}).encode()
    with httpx.Client(timeout=30) as client:
        for _ in range(2):  # warm up: allocator arenas, pools
            _check(_post(client, gateway, body))
        before = _rss_mb()
        for _ in range(12):
            _check(_post(client, gateway, body))
        after = _rss_mb()
    assert after - before < 5, (before, after)

"""Every client mistake gets OpenAI-style error JSON with the right status — never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import openai_tier

OK = {"model": "edge", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def gateway(stub_backend, run_gateway):
    base, _ = stub_backend
    return run_gateway({"tiers": [openai_tier("edge", base)], "gateway": {"max_body_bytes": 4096}})


def _post(url: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=10, **kwargs)


def _assert_error(response: httpx.Response, status: int, *, param: str | None = None, contains: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert contains in error["message"]
    if param is not None:
        assert error["param"] == param
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe\x00garbage", "not valid"),
        (b"[" * 100_000 + b"]" * 100_000, ""),
    ],
)
def test_malformed_bodies_are_400(body, contains, stub_backend, run_gateway):
    base, _ = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    _assert_error(_post(url, content=body, headers={"content-type": "application/json"}), 400, contains=contains)


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": 10**12}, "max_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"n": 1000}, "n"),
        ({"stream": "maybe"}, "stream"),
        ({"model": 7}, "model"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(gateway, patch, param):
    _assert_error(_post(gateway, json={**OK, **patch}), 400, param=param)


def test_missing_model_is_400(gateway):
    _assert_error(_post(gateway, json={"messages": OK["messages"]}), 400, param="model")


def test_unknown_model_is_404_and_lists_the_choices(gateway):
    response = _post(gateway, json={**OK, "model": "gpt-9"})
    _assert_error(response, 404, param="model", contains="auto, edge")
    assert response.json()["error"]["code"] == "model_not_found"


def test_body_over_the_limit_is_413(gateway):
    big = {**OK, "messages": [{"role": "user", "content": "x" * 10_000}]}
    _assert_error(_post(gateway, json=big), 413, contains="4096")

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        for _ in range(10):
            yield b"x" * 1000

    _assert_error(_post(gateway, content=chunks()), 413)


def test_unknown_route_and_wrong_method_are_openai_errors(gateway):
    _assert_error(httpx.get(f"{gateway}/v1/nothing"), 404)
    _assert_error(httpx.get(f"{gateway}/v1/chat/completions"), 405)


def test_no_healthy_tier_is_503(run_gateway):
    url = run_gateway({"tiers": [openai_tier("edge", "http://127.0.0.1:9/v1")]})  # port 9: nothing listens
    response = _post(url, json={**OK, "model": "auto"})
    _assert_error(response, 503, contains="edge")
    assert response.json()["error"]["code"] == "no_tier_available"
    pinned = _post(url, json={**OK, "stream": True})
    _assert_error(pinned, 503, contains="unreachable")


def test_upstream_4xx_is_passed_on_not_failed_over(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.mode, behavior.status = "error_status", 400
    url = run_gateway({"tiers": [openai_tier("edge", base)]})
    _assert_error(_post(url, json=OK), 400, contains="failing on purpose")

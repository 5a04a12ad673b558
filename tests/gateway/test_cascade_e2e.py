"""The cascade through the gateway: a doubtful device answer goes up to the cloud, unless the policies forbid it.

Device and cloud are stub backends; the check is trained in the test on a table where a wrong shown calculation
means a wrong answer. Clients use plain httpx (the report is in the body and headers).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import openai_tier
from tests.routing.answer_tables import answer_table
from tierwise.config import settings_from_dict
from tierwise.errors import ConfigError
from tierwise.gateway.app import load_cascade
from tierwise.routing.cascade import train_cascade
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app

WRONG = ["6 * 7 = <<6*7=45>>45", "\n#### 45"]
RIGHT = ["6 * 7 = <<6*7=42>>42", "\n#### 42"]
QUESTION = [{"role": "user", "content": "What is 6 times 7?"}]
CLOUD_PRICE = {"input_per_mtok": 5.0, "output_per_mtok": 15.0}


@pytest.fixture(scope="module")
def cascade_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_cascade(answer_table(300), "weak").save(tmp_path_factory.mktemp("cascade") / "cascade.json")


@pytest.fixture
def two_tiers(cascade_file, run_gateway):
    device, cloud = StubBehavior(pieces=list(WRONG)), StubBehavior(pieces=["cloud says", " 42"])
    with serve_in_thread(create_stub_app(device)) as d_url, serve_in_thread(create_stub_app(cloud)) as c_url:
        url = run_gateway({
            "tiers": [openai_tier("device", f"{d_url}/v1", location="device"),
                      openai_tier("cloud", f"{c_url}/v1", location="cloud", cost=CLOUD_PRICE)],
            "router": {"cascade": {"model": str(cascade_file)}},
        })
        yield url, device, cloud


def _ask(url: str, messages=QUESTION, **extra) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"model": "auto", "messages": messages, **extra}, timeout=30)


def test_doubtful_answer_is_escalated_and_both_calls_are_reported(two_tiers):
    url, device, cloud = two_tiers
    response = _ask(url)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "cloud says 42"
    assert response.headers["x-tierwise-tier"] == "cloud"
    assert response.headers["x-tierwise-escalated-from"] == "device"
    report = body["tierwise"]
    assert report["tier"] == "cloud" and report["cascade"]["escalated_to"] == "cloud"
    assert report["cascade"]["p_good"] < report["cascade"]["threshold"]
    assert any("escalated to 'cloud'" in r for r in report["reasons"])
    assert report["cost_usd"] > 0 and len(device.received) == 1 and len(cloud.received) == 1
    metrics = httpx.get(f"{url}/metrics").text
    assert 'tierwise_cascade_checks_total{result="escalated",tier="device"} 1.0' in metrics


def test_good_answer_is_kept(two_tiers):
    url, device, cloud = two_tiers
    device.pieces = list(RIGHT)
    body = _ask(url).json()
    assert body["choices"][0]["message"]["content"] == "".join(RIGHT)
    assert body["tierwise"]["tier"] == "device" and body["tierwise"]["cascade"]["escalated_to"] is None
    assert cloud.received == []


def test_personal_data_is_not_escalated_to_the_cloud(two_tiers):
    url, _, cloud = two_tiers
    body = _ask(url, [{"role": "user", "content": "Mail li.wei@example.com: what is 6 times 7?"}]).json()
    assert body["tierwise"]["tier"] == "device"
    assert "no stronger tier is allowed" in body["tierwise"]["cascade"]["reason"]
    assert cloud.received == []


def test_streamed_and_pinned_answers_are_not_checked(two_tiers):
    url, _, cloud = two_tiers
    streamed = _ask(url, stream=True)
    assert streamed.status_code == 200 and '"cascade"' not in streamed.text and "45" in streamed.text
    pinned = httpx.post(f"{url}/v1/chat/completions", json={"model": "device", "messages": QUESTION}, timeout=30)
    assert "cascade" not in pinned.json()["tierwise"] and cloud.received == []


def test_failed_escalation_keeps_the_first_answer(two_tiers):
    url, _, cloud = two_tiers
    cloud.mode = "error_status"
    response = _ask(url)
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "".join(WRONG)
    assert body["tierwise"]["tier"] == "device"
    assert "escalation to 'cloud' failed" in body["tierwise"]["cascade"]["error"]


def test_bad_cascade_config_is_a_clear_error(tmp_path, cascade_file):
    tiers = [openai_tier("device", "http://127.0.0.1:9/v1", location="device")]
    missing = settings_from_dict({"tiers": tiers, "router": {"cascade": {"model": str(tmp_path / "none.json")}}})
    with pytest.raises(ConfigError, match="train-cascade"):
        load_cascade(missing, ["device"])
    unknown = settings_from_dict({"tiers": tiers, "router": {"cascade": {"model": str(cascade_file), "check": ["x"]}}})
    with pytest.raises(ConfigError, match="unknown tiers"):
        load_cascade(unknown, ["device"])
    (tmp_path / "bad.json").write_text("{}")
    foreign = settings_from_dict({"tiers": tiers, "router": {"cascade": {"model": str(tmp_path / "bad.json")}}})
    with pytest.raises(ConfigError, match="not a tierwise-cascade"):
        load_cascade(foreign, ["device"])


def test_replayed_answers_each_get_their_own_check(two_tiers):
    url, device, cloud = two_tiers
    device.replies = {"What is 6 times 7?": "".join(RIGHT), "What is 6 times 8?": "6 * 8 = <<6*8=46>>46\n#### 46"}
    kept = _ask(url).json()
    escalated = _ask(url, [{"role": "user", "content": "What is 6 times 8?"}]).json()
    assert kept["choices"][0]["message"]["content"] == "".join(RIGHT) and kept["tierwise"]["tier"] == "device"
    assert escalated["tierwise"]["tier"] == "cloud" and len(cloud.received) == 1

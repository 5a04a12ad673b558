"""Fail-closed privacy: personal data in any part of a request never reaches a cloud backend that records every
byte it receives, under concurrent load, and with the device tier down or failing (then: a clear refusal)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import openai_tier
from tests.reliability.streams import Result, send_all
from tierwise.routing.pii import cn_id_valid, luhn_valid, normalise
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app


def _cn_id(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


def _card(first: str) -> str:
    check = next(str(d) for d in range(10) if luhn_valid(first + str(d)))
    return first + check


CANARIES = [
    "li.wei@example.com", "j.doe+bank@mail.example.co.uk",
    "+86 138 0013 8000", "13912345678", "139-1234-5678", "(415) 555-0134", "415-555-0199", "+44 20 7946 0958",
    "+1-202-555-0188", "010-62345678",
    _cn_id("11010519491231002"), _cn_id("44030819990101123"), _cn_id("32010619850615771").lower(),
    _card("411111111111111"), "-".join(re.findall("....", _card("550000555555555"))),
    " ".join(re.findall("....", _card("622202123456789012")[:16])) + " " + _card("622202123456789012")[16:],
    "192.168.10.24", "10.20.30.40", "2001:db8::8a2e:370:7334",
]
# The same kinds in other written forms (the families normalised before the scan): Unicode digits, zero-width and
# format characters, Unicode dashes and spaces, other separators and groupings, other at-signs, links.
WRITTEN_FORMS = [
    "１３８００１３８０００", "١٣٨٠٠١٣٨٠٠٠", "138\u200b0013\u200b8000", "138\u20110013\u20118000", "138.0013.8000",
    "(010) 6552 9988", "+86\u00a010\u00a06552-9988", "0755-8888 6666", "415/555/2671", "tel:+8613800138000",
    "https://wa.me/8613800138000", "li.wei＠example.com", "josé@exämple.de", "用户@例子.广告",
    " ".join(re.findall("......", _cn_id("11010119900307775")[:12])) + " " + _cn_id("11010119900307775")[12:],
    ".".join(re.findall("....", _card("411111111111111"))),
]
LONG = "The quarterly report covers revenue, costs and the outlook for next year. " * 40


def _placements(canary: str) -> dict[str, dict[str, Any]]:
    """The same canary in every part of a request that would be sent on to a backend."""
    user = [{"role": "user", "content": "what now?"}]
    return {
        "alone": {"messages": [{"role": "user", "content": f"My detail: {canary}"}]},
        "inside long text": {"messages": [{"role": "user", "content": f"{LONG}{canary} {LONG}"}]},
        "earlier turn": {"messages": [{"role": "user", "content": f"note {canary}"},
                                      {"role": "assistant", "content": "noted"}, *user]},
        "system message": {"messages": [{"role": "system", "content": f"The user is {canary}, remember."}, *user]},
        "content parts": {"messages": [{"role": "user", "content": [{"type": "text", "text": "see"},
                                                                    {"type": "text", "text": canary}]}]},
        "tool call arguments": {"messages": [
            {"role": "user", "content": "look me up"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "lookup", "arguments": json.dumps({"who": canary})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "found"}, *user]},
        "user field": {"messages": user, "user": canary},
        "stream_options": {"messages": user, "stream_options": {"include_usage": True, "note": canary}},
        "content part type": {"messages": [{"role": "user", "content": [{"type": canary, "text": "hi"}]}]},
        "metadata": {"messages": user, "metadata": {"customer": {"contact": [canary]}}},
    }


def _squash(text: str) -> str:
    return re.sub(r"[\s\-().+/]", "", normalise(text))


def _leaked(recorder: StubBehavior) -> list[str]:
    """Canaries found in what the cloud received: verbatim, or in any written form (both sides normalised, with
    separators removed), so a full-width or zero-width copy of a canary counts as leaked too."""
    received = json.dumps(recorder.received, ensure_ascii=False)
    squashed = _squash(received)
    return [c for c in CANARIES + WRITTEN_FORMS if c in received or _squash(c) in squashed]


def test_a_phone_number_sent_as_a_json_number_stays_private(tiers, run_gateway):
    device_url, _, cloud_url, cloud = tiers
    url = run_gateway(_config(device_url, cloud_url))
    results = send_all(url, [{"model": "auto", "seed": 13800138000, "messages": [{"role": "user", "content": "hi"}]},
                             {"model": "auto", "metadata": {"phone": 8613912345678},
                              "messages": [{"role": "user", "content": "hi"}]}])
    assert all(r.clean and r.tier == "device" for r in results), results
    assert cloud.received == []


def test_canaries_are_valid_personal_data():
    assert all(cn_id_valid(c) for c in CANARIES[10:13])
    assert all(luhn_valid(re.sub(r"\D", "", c)) for c in CANARIES[13:16])


@pytest.fixture
def tiers() -> Iterator[tuple[str, StubBehavior, str, StubBehavior]]:
    device, cloud = StubBehavior(pieces=["on", " device"]), StubBehavior(pieces=["in", " cloud"])
    with serve_in_thread(create_stub_app(device)) as d, serve_in_thread(create_stub_app(cloud)) as c:
        yield f"{d}/v1", device, f"{c}/v1", cloud


def _config(device_url: str, cloud_url: str) -> dict[str, Any]:
    # The cloud is the cheapest: without the policy, everything would go there.
    return {"tiers": [openai_tier("device", device_url, location="device", max_concurrent=64,
                                  cost={"input_per_mtok": 9.0}, read_timeout_s=0.5),
                      openai_tier("cloud", cloud_url, location="cloud", max_concurrent=64)],
            "gateway": {"failure_threshold": 1000}}


def _requests(stream_every: int = 2) -> list[dict[str, Any]]:
    bodies = [{"model": "auto", **b} for c in CANARIES + WRITTEN_FORMS for b in _placements(c).values()]
    return [{**b, "stream": i % stream_every == 0} for i, b in enumerate(bodies)]


def test_no_canary_reaches_the_cloud_under_load(tiers, run_gateway):
    device_url, device, cloud_url, cloud = tiers
    url = run_gateway(_config(device_url, cloud_url))
    private = _requests()
    harmless = [{"model": "auto", "stream": i % 2 == 0, "messages": [{"role": "user", "content": f"hello {i}"}]}
                for i in range(len(private))]
    mixed = [b for pair in zip(private, harmless, strict=True) for b in pair]
    results = send_all(url, mixed, concurrency=32)
    served: list[Result] = results[0::2]
    assert all(r.clean for r in results), [r for r in results if not r.clean][:3]
    assert [r.tier for r in served] == ["device"] * len(private)
    assert all("personal data" in r.report["excluded"]["cloud"] for r in served)
    assert _leaked(cloud) == []
    assert len(cloud.received) == len(harmless)  # the recorder works: every harmless request did reach it
    assert len(_leaked(device)) == len(CANARIES + WRITTEN_FORMS)  # ...and findable where they went


@pytest.mark.parametrize("device_fault", ["unreachable", "error_status", "slow"])
def test_device_down_means_a_clear_refusal_never_the_cloud(tiers, run_gateway, device_fault):
    device_url, device, cloud_url, cloud = tiers
    if device_fault == "unreachable":
        device_url = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    elif device_fault == "error_status":
        device.mode = "error_status"
    else:
        device.header_delay_s = 1.5  # longer than the device's read timeout (0.5 s)
    url = run_gateway(_config(device_url, cloud_url))
    requests = _requests()[:: 3 if device_fault == "slow" else 2]  # every canary, half or a third of placements
    results = send_all(url, requests, concurrency=32)
    for r in results:
        assert r.status == 503 and not r.hung, r
        assert r.body["error"]["code"] == "no_tier_available"
        assert "personal data" in r.body["error"]["message"] and "device" in r.body["error"]["message"]
    pinned = send_all(url, [{**b, "model": "cloud"} for b in requests[:20]])
    assert {r.status for r in pinned} == {403}
    assert all("personal data" in r.body["error"]["message"] for r in pinned)
    assert _leaked(cloud) == [] and cloud.received == []
    ok = send_all(url, [{"model": "auto", "messages": [{"role": "user", "content": "hello"}]}])[0]
    assert ok.clean and ok.tier == "cloud"  # without personal data, the cloud serves when the device cannot


def test_an_ip_address_at_the_end_of_a_sentence_stays_private(tiers, run_gateway):
    device_url, _, cloud_url, cloud = tiers
    url = run_gateway(_config(device_url, cloud_url))
    result = send_all(url, [{"model": "auto", "messages": [
        {"role": "user", "content": "The VPN gateway is at 192.168.10.24."}]}])[0]
    assert result.clean
    assert cloud.received == [], "an IPv4 address before a full stop reached the cloud"


def test_a_canary_in_a_large_body_is_found_by_the_scan_off_the_event_loop(tiers, run_gateway):
    device_url, _, cloud_url, cloud = tiers
    url = run_gateway(_config(device_url, cloud_url))
    big = LONG * 20  # ≈ 60 KB: over SCAN_IN_THREAD_CHARS, so the scan runs in a thread
    results = send_all(url, [{"model": "auto", "messages": [{"role": "user", "content": f"{big} {c} {big}"}]}
                             for c in CANARIES[:3] + WRITTEN_FORMS[:3]])
    assert all(r.clean and r.tier == "device" for r in results), results
    assert _leaked(cloud) == [] and cloud.received == []

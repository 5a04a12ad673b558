"""`ChatService` driven in-process — no server, no thread, no socket: failover, policies, the cascade, charging.

The tiers are `ScriptedTier`s; each test builds the gateway's state inside its own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tierwise.config import Settings
from tierwise.errors import (
    InvalidRequest,
    ModelNotFound,
    NoTierAvailable,
    PolicyRefused,
    RateLimited,
    TierBadResponse,
    TierBusy,
    TierRequestFailed,
    TierStreamBroken,
    TierUnavailable,
)
from tierwise.gateway.app import _build_state
from tierwise.gateway.decision import COST_HEADER, Attempt
from tierwise.gateway.service import ChatService
from tierwise.protocol import ChatCompletionRequest
from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.routing.cascade import FEATURE_NAMES, CascadeCheck
from tierwise.routing.features import FeaturizerSettings
from tierwise.routing.router_file import RouterFile, TierSpec, file_version
from tierwise.testing.scripted import ScriptedTier, scripted_config
from tierwise.traffic import store

PRICES = {"device": (0.0, 0.0), "edge": (1.0, 2.0), "cloud": (10.0, 30.0)}


def _service(tier_fields: dict[str, dict[str, Any]] | None = None, **settings: Any) -> tuple[ChatService, dict]:
    configs = [
        scripted_config(name, name, cost={"input_per_mtok": PRICES[name][0], "output_per_mtok": PRICES[name][1]},
                        **(tier_fields or {}).get(name, {}))
        for name in ("device", "edge", "cloud")
    ]
    tiers = {c.name: ScriptedTier(c, pieces=[f"answer from {c.name}"], usage=(1000, 100)) for c in configs}
    state = _build_state(Settings(tiers=configs, **settings), tiers=dict(tiers), router=None)
    return ChatService(state), tiers


def _chat(content: str = "What is 2 + 2?", **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": content}], **fields}
    )


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def test_cheapest_tier_serves_and_the_trace_says_why() -> None:
    async def scenario() -> None:
        service, tiers = _service()
        done = await service.complete(_chat(), None)
        body = done.response_body()
        assert body["choices"][0]["message"]["content"] == "answer from device"
        assert body["model"] == "device-model"
        report = body["tierwise"]
        assert report["tier"] == "device" and report["router"] == "cheapest-healthy"
        assert report["fallbacks"] == ["edge", "cloud"] and "failover" not in report
        assert done.trace.headers()["x-tierwise-tier"] == "device"
        assert len(tiers["device"].received) == 1 and not tiers["edge"].received

    run(scenario)


def test_failover_before_the_first_chunk_records_typed_attempts() -> None:
    async def scenario() -> None:
        service, tiers = _service()
        tiers["device"].fail_with(TierUnavailable("device refused the connection"))
        tiers["edge"].fail_with(TierBadResponse("edge sent invalid JSON"))
        done = await service.complete(_chat(), None)
        assert done.trace.tier is tiers["cloud"]
        assert [(a.tier, type(a.error)) for a in done.trace.attempts] == [
            ("device", TierUnavailable), ("edge", TierBadResponse)]
        report = done.response_body()["tierwise"]
        assert [f["code"] for f in report["failover"]] == ["tier_unavailable", "bad_upstream_response"]
        assert report["reasons"][-1] == "failed over to 'cloud'"
        assert done.trace.headers()["x-tierwise-failover"] == "device,edge"
        health = service.state.health
        assert health["device"].consecutive_failures == 1 and health["edge"].consecutive_failures == 1

    run(scenario)


def test_non_streaming_answer_broken_mid_way_moves_on_to_the_next_tier() -> None:
    async def scenario() -> None:
        service, tiers = _service()
        tiers["device"].fail_with(TierStreamBroken("device died mid-answer"), after=1)
        done = await service.complete(_chat(), None)
        assert done.body["choices"][0]["message"]["content"] == "answer from edge"
        assert done.trace.attempts == [Attempt("device", done.trace.attempts[0].error)]
        assert service.state.health["device"].in_flight == 0  # its slot was freed

    run(scenario)


def test_requests_that_break_every_healthy_tier_are_the_requests_fault() -> None:
    async def scenario() -> None:
        service, tiers = _service()
        for tier in tiers.values():
            tier.fail_with(TierRequestFailed("500 on this request"))
        with pytest.raises(TierRequestFailed, match="no tier could process this request"):
            await service.complete(_chat(), None)
        assert all(t.consecutive_failures == 0 for t in service.state.health.values())  # not the tiers' fault

    run(scenario)


def test_busy_everywhere_is_503_with_retry_after() -> None:
    async def scenario() -> None:
        service, tiers = _service()
        for tier in tiers.values():
            tier.fail_with(TierBusy("queue full", retry_after_s=3))
        with pytest.raises(NoTierAvailable) as caught:
            await service.complete(_chat(), None)
        assert caught.value.retry_after_s == 3

    run(scenario)


def test_personal_data_keeps_a_request_on_the_device_and_refuses_a_pinned_cloud() -> None:
    async def scenario() -> None:
        service, tiers = _service(policies={"personal_data": "device_only"})
        for tier in ("device",):
            tiers[tier].fail_with(TierUnavailable("device down"))
        secret = "Mail the contract to li.wei@example.com"
        with pytest.raises(NoTierAvailable) as caught:  # the device failed: nothing else may see it
            await service.complete(_chat(secret), None)
        assert set(caught.value.excluded) == {"edge", "cloud"}
        assert not tiers["edge"].received and not tiers["cloud"].received
        with pytest.raises(PolicyRefused, match="personal data"):
            await service.complete(_chat(secret, model="cloud"), None)
        tiers["device"].fail_with(None)
        plan = await service.plan(_chat(secret), None)
        assert plan.order == ["device"] and plan.policy.pii_kinds == {"email"}

    run(scenario)


def test_pinned_tier_ignores_health_but_not_capability() -> None:
    async def scenario() -> None:
        service, tiers = _service({"device": {"capabilities": {"tools": False}}})
        service.state.health["edge"].record_failure("down", immediately=True)
        done = await service.complete(_chat(model="edge"), None)  # pinned: tried although marked down
        assert done.trace.tier is tiers["edge"] and done.trace.report()["router"] == "pinned"
        tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
        with pytest.raises(InvalidRequest, match="tools") as caught:
            await service.complete(_chat(model="device", tools=tools), None)
        assert caught.value.code == "unsupported_capability"
        service.state.health["edge"].record_failure("down again", immediately=True)
        routed = await service.plan(_chat(tools=tools), None)
        assert "device" in routed.excluded and routed.order[0] == "cloud"  # auto skips it; edge is down

    run(scenario)


def test_unknown_model_is_404() -> None:
    async def scenario() -> None:
        service, _ = _service()
        with pytest.raises(ModelNotFound):
            await service.complete(_chat(model="gpt-17"), None)

    run(scenario)


def test_charging_adds_the_served_tiers_cost_to_the_key() -> None:
    async def scenario() -> None:
        service, tiers = _service()
        tiers["device"].fail_with(TierUnavailable("down"))
        done = await service.complete(_chat(), "key-1")
        expected = (1000 * 1.0 + 100 * 2.0) / 1e6  # edge's prices, the scripted usage
        assert done.trace.cost_usd == pytest.approx(expected)
        assert service.state.ledger.spent("key-1") == pytest.approx(expected)
        assert done.trace.headers()[COST_HEADER] == f"{expected:.8g}"

    run(scenario)


def test_budget_spent_is_429_and_free_tiers_still_serve() -> None:
    async def scenario() -> None:
        service, tiers = _service(policies={"daily_budget_usd": 0.001})
        service.state.ledger.charge("key-1", 0.001)
        done = await service.complete(_chat(), "key-1")  # the device costs nothing: still allowed
        assert done.trace.tier is tiers["device"]
        with pytest.raises(RateLimited) as caught:
            await service.complete(_chat(model="cloud"), "key-1")
        assert caught.value.code == "daily_budget_exceeded"

    run(scenario)


def test_stream_commits_to_its_tier_charges_at_the_end_and_frees_the_slot() -> None:
    async def scenario() -> None:
        service, _ = _service()
        stream = await service.stream(_chat(stream=True, stream_options={"include_usage": True}), "k")
        chunks = [c async for c in stream.chunks()]
        await stream.aclose()
        assert {c["id"] for c in chunks} == {stream.same["id"]} and {c["model"] for c in chunks} == {"device-model"}
        assert chunks[0]["tierwise"]["tier"] == "device"
        assert chunks[-1]["usage"]["completion_tokens"] == 100 and chunks[-1]["tierwise"]["cost_usd"] == 0.0
        assert service.state.health["device"].in_flight == 0

    run(scenario)


def test_stream_broken_after_the_first_chunk_is_raised_not_replayed() -> None:
    async def scenario() -> None:
        service, tiers = _service()
        tiers["device"].fail_with(TierStreamBroken("device died"), after=1)
        stream = await service.stream(_chat(stream=True), None)
        received = []
        with pytest.raises(TierStreamBroken):
            async for chunk in stream.chunks():
                received.append(chunk)
        await stream.aclose()
        assert len(received) == 1 and not tiers["edge"].received
        assert service.state.health["device"].in_flight == 0

    run(scenario)


def test_abandoned_stream_frees_its_tier() -> None:
    async def scenario() -> None:
        service, _ = _service()
        stream = await service.stream(_chat(stream=True), None)
        await stream.aclose()  # the client left before reading anything
        await stream.aclose()  # idempotent
        assert service.state.health["device"].in_flight == 0
        assert service.state.health["device"].in_flight == 0

    run(scenario)


def _cascade(tmp_path: Path, *, p_good: float) -> Path:
    n = len(FEATURE_NAMES)
    bias = float(np.log(p_good / (1 - p_good)))  # zero weights: every answer gets this P(good)
    check = CascadeCheck("device-model", np.zeros(n), np.ones(n), np.zeros(n), bias, threshold=0.5)
    return check.save(tmp_path / "cascade.json")


def test_cascade_escalates_a_doubtful_answer_and_charges_both_calls(tmp_path: Path) -> None:
    async def scenario() -> None:
        service, tiers = _service(router={"cascade": {"model": str(_cascade(tmp_path, p_good=0.1)),
                                                       "check": ["device"]}})
        done = await service.complete(_chat(), "k")
        assert done.body["choices"][0]["message"]["content"] == "answer from cloud"
        trace = done.trace
        assert trace.escalated_from == "device" and trace.tier is tiers["cloud"]
        report = trace.report()
        assert report["cascade"]["escalated_to"] == "cloud" and "escalated to 'cloud'" in report["reasons"][-1]
        assert trace.cost_usd == pytest.approx((1000 * 10.0 + 100 * 30.0) / 1e6)  # device's call was free
        assert trace.headers()["x-tierwise-escalated-from"] == "device"

    run(scenario)


def test_cascade_keeps_a_good_answer_and_a_failed_escalation_keeps_the_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        good, _ = _service(router={"cascade": {"model": str(_cascade(tmp_path, p_good=0.9)), "check": ["device"]}})
        kept = await good.complete(_chat(), None)
        assert kept.trace.tier.name == "device" and kept.trace.report()["cascade"]["escalated_to"] is None
        doubtful, tiers = _service(router={"cascade": {"model": str(_cascade(tmp_path, p_good=0.1)),
                                                        "check": ["device"]}})
        tiers["cloud"].fail_with(TierUnavailable("cloud down"))
        tiers["edge"].fail_with(TierUnavailable("edge down"))
        first = await doubtful.complete(_chat(), None)
        assert first.body["choices"][0]["message"]["content"] == "answer from device"
        assert "escalation to 'cloud' failed" in first.trace.report()["cascade"]["error"]

    run(scenario)


def test_the_cascade_escalates_an_answer_its_model_doubted(tmp_path: Path) -> None:
    """The device tier's token confidence is one of the check's features: the same answer is kept when the model
    was sure of it and escalated when it was not."""
    n = len(FEATURE_NAMES)
    weights = np.zeros(n)
    weights[FEATURE_NAMES.index("mean_token_p")] = 10.0
    path = CascadeCheck("device-model", np.zeros(n), np.ones(n), weights, -5.0, threshold=0.5).save(
        tmp_path / "cascade.json")

    async def scenario() -> None:
        service, tiers = _service(router={"cascade": {"model": str(path), "check": ["device"]}})
        tiers["device"].answer_confidence = AnswerConfidence(
            mean_logprob=-0.05, min_logprob=-0.3, mean_entropy=0.2, tokens=12)
        sure = await service.complete(_chat(), None)
        assert sure.trace.tier.name == "device" and sure.trace.escalation.p_good > 0.9
        tiers["device"].answer_confidence = AnswerConfidence(
            mean_logprob=-2.5, min_logprob=-6.0, mean_entropy=3.0, tokens=12)
        unsure = await service.complete(_chat(), None)
        assert unsure.trace.escalated_from == "device" and unsure.trace.tier.name == "cloud"

    run(scenario)


def test_every_routed_request_is_in_the_decision_log(tmp_path: Path) -> None:
    log_path = tmp_path / "decisions.sqlite"

    async def scenario() -> None:
        service, tiers = _service(router={"log": {"path": str(log_path), "keep_text": True}},
                                  policies={"personal_data": "device_only"})
        log = service.state.decision_log
        assert log is not None
        log.start()
        tiers["device"].fail_with(TierUnavailable("down"))
        await service.complete(_chat("What is 2 + 2?"), "key-1")  # failed over to edge
        tiers["device"].fail_with(None)
        stream = await service.stream(_chat("Tell me more", stream=True), "key-1")
        _ = [c async for c in stream.chunks()]
        await stream.aclose()
        await service.complete(_chat("Mail li.wei@example.com the plan"), None)  # personal data: device only
        await log.aclose()

    run(scenario)
    records = store.read_records(store.connect(log_path))
    assert [r.tier for r in records] == ["edge", "device", "device"]
    first, streamed, private = records
    assert first.status == "ok" and first.router == "cheapest-healthy" and first.key_hash not in (None, "key-1")
    assert first.cost_usd == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6) and first.completion_tokens == 100
    assert first.answer == "answer from edge" and "failed over to 'edge'" in first.reasons
    assert streamed.status == "ok" and streamed.answer == "answer from device" and streamed.ttft_ms is not None
    assert private.device_only and private.prompt is None and private.answer is None  # its text stays out
    assert set(private.excluded) == {"edge", "cloud"}


def _router_file(tmp_path: Path, tolerance: float) -> Path:
    file = RouterFile(
        tiers=[TierSpec("device", "small", "device"), TierSpec("cloud", "big", "cloud", 10.0, 30.0)],
        featurizer=FeaturizerSettings(embedding="none"),
        predictor={"name": "logistic", "hyper_parameters": {"l2": 10.0}},
        predictor_arrays={"W": np.zeros((10, 2)), "mean": np.zeros(9), "std": np.ones(9)},
        tolerance=tolerance, target_cloud_share=0.2, heldout_margins=np.linspace(-1, 1, 11, dtype=np.float32),
    )
    return file.save(tmp_path / "router.json")


def test_a_retrained_router_file_decides_without_a_restart_and_says_its_version(tmp_path: Path) -> None:
    path = _router_file(tmp_path, 0.1)
    first_version = file_version(path)

    async def scenario() -> None:
        service, _ = _service(router={"model": str(path)})
        plan = await service.plan(_chat(), None)
        assert plan.router_version == first_version and plan.choice.router == "learned"
        _router_file(tmp_path, 0.3)  # retrained: a new file in its place
        assert service.state.router_reloader is not None and service.state.router_reloader.load()
        done = await service.complete(_chat(), None)
        assert done.trace.report()["router_version"] == file_version(path) != first_version

    run(scenario)

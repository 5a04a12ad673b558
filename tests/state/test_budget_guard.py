"""Budget reservations in one gateway: concurrent requests cannot all spend the last of a budget, and a request
that ends without an answer gives its reservation back."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import openai_tier
from tierwise.gateway.request_scope import RequestScope
from tierwise.routing.budget import BudgetLedger
from tierwise.state.budget_guard import BudgetGuard, ReservingLedger

PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}  # the stub's 7 + 5 tokens: 0.012 USD an answer
BODY = {"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_the_largest_amount_that_fits_is_reserved_and_the_policy_sees_what_was_committed_before():
    inner = BudgetLedger()
    guard, ledger = BudgetGuard(inner), ReservingLedger(inner)
    inner.charge("k", 0.6)

    async def scenario() -> None:
        first, second = RequestScope(), RequestScope()
        held = await guard.reserve(first, "k", [0.5, 0.3, 0.0], budget_usd=1.0)
        assert held.usd == 0.3 and held.committed_usd == 0.6
        other = await guard.reserve(second, "k", [0.5, 0.3], budget_usd=1.0)
        assert other.usd == 0.0 and other.committed_usd == pytest.approx(0.9)  # nothing fits now
        guard.release(first)
        guard.release(first)  # once only
        assert (await guard.reserve(RequestScope(), "k", [0.3], budget_usd=1.0)).usd == 0.3
        from tierwise.gateway.request_scope import SCOPE

        SCOPE.set(second)
        assert ledger.spent("k") == pytest.approx(0.9)  # inside the request: what was committed when it reserved
        assert ledger.spent("other") == 0.0

    asyncio.run(scenario())


def test_concurrent_requests_never_spend_more_than_the_budget(stub_backend, run_gateway):
    url, behavior = stub_backend
    behavior.header_delay_s = 0.5  # every request is in flight at once
    budget = 0.05  # ~0.018 USD expected per request: two reservations fit at once
    url = run_gateway({"tiers": [openai_tier("cloud", url, location="cloud", cost=PRICE)],
                       "policies": {"daily_budget_usd": budget}})
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{url}/v1/chat/completions", json=BODY, timeout=10),
                                range(10)))
    served = [a for a in answers if a.status_code == 200]
    assert {a.status_code for a in answers} == {200, 429}
    assert all(a.json()["error"]["code"] == "daily_budget_exceeded" for a in answers if a.status_code == 429)
    assert 0.012 * len(served) <= budget  # without reservations all ten are served (0.12 USD)


def test_a_request_that_fails_gives_its_reservation_back(stub_backend, run_gateway):
    url, behavior = stub_backend
    gateway = run_gateway({"tiers": [openai_tier("cloud", url, location="cloud", cost=PRICE)],
                           "gateway": {"failure_threshold": 100},
                           "policies": {"daily_budget_usd": 0.03}})  # one reservation at a time
    behavior.mode = "error_status"
    for _ in range(3):
        assert httpx.post(f"{gateway}/v1/chat/completions", json=BODY, timeout=10).status_code not in (200, 429)
    behavior.mode = "ok"
    assert httpx.post(f"{gateway}/v1/chat/completions", json=BODY, timeout=10).status_code == 200

"""The sliding-window counter: what it admits, when it says to come back, and how a settlement corrects it."""

from __future__ import annotations

import pytest

from tierwise.routing.settings import RateLimit
from tierwise.state.sliding_window import WINDOW_S, Counts, LocalWindows, check, retry_after_s

T0 = 1_000_000 * WINDOW_S  # the start of a window


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_requests_past_the_limit_are_refused_until_the_window_slides():
    clock = Clock(T0 + 10)
    windows = LocalWindows(clock=clock)
    limit = RateLimit(requests_per_minute=3)
    for _ in range(3):
        assert windows.admit("k", limit, 1)[1] is None
    refusal = windows.admit("k", limit, 1)[1]
    assert refusal is not None and refusal.limit == "requests" and refusal.allowed == 3
    assert refusal.retry_after_s == pytest.approx(WINDOW_S - 10 + WINDOW_S / 3)
    assert windows.admit("other", limit, 1)[1] is None  # each key has its own counts


def test_no_double_burst_across_a_window_boundary():
    clock = Clock(T0 + WINDOW_S - 0.5)
    windows = LocalWindows(clock=clock)
    limit = RateLimit(requests_per_minute=10)
    assert all(windows.admit("k", limit, 1)[1] is None for _ in range(10))
    clock.now = T0 + WINDOW_S + 0.5  # a new fixed window, but the last minute still holds ~10 requests
    assert windows.admit("k", limit, 1)[1] is not None
    clock.now = T0 + WINDOW_S + WINDOW_S / 2  # half of the previous window still counts: 5 of 10
    admitted = sum(windows.admit("k", limit, 1)[1] is None for _ in range(10))
    assert admitted == 5


@pytest.mark.parametrize(("allowed", "cost", "before", "now", "elapsed"), [
    (100, 10, 99, 0, 5.0),    # the previous window must fade
    (100, 10, 40, 95, 20.0),  # this window is full: wait for the next one, then for this one to fade
    (100, 100, 0, 1, 59.0),
    (1000, 300, 900, 600, 1.0),
])
def test_retry_after_is_the_earliest_moment_the_request_fits(allowed, cost, before, now, elapsed):
    limit = RateLimit(tokens_per_minute=allowed)
    refusal = check(limit, cost, Counts(tokens=before), Counts(tokens=now), elapsed)
    assert refusal is not None
    wait = retry_after_s(allowed, cost, before, now, elapsed, WINDOW_S)
    assert wait == refusal.retry_after_s and wait is not None and wait > 0

    def fits_after(seconds: float) -> bool:
        at = elapsed + seconds
        if at >= 2 * WINDOW_S:
            return True
        if at < WINDOW_S:
            return check(limit, cost, Counts(tokens=before), Counts(tokens=now), at) is None
        return check(limit, cost, Counts(tokens=now), Counts(), at - WINDOW_S) is None

    assert fits_after(wait + 1e-6)
    assert not fits_after(max(0.0, wait - 0.5))


def test_a_request_over_the_token_limit_by_itself_never_fits():
    refusal = check(RateLimit(tokens_per_minute=100), 101, Counts(), Counts(), 0.0)
    assert refusal is not None and refusal.retry_after_s is None


def test_settling_gives_back_what_the_estimate_overcounted():
    windows = LocalWindows(clock=Clock(T0 + 1))
    limit = RateLimit(tokens_per_minute=1000)
    window, _ = windows.admit("k", limit, 600)
    assert windows.admit("k", limit, 600)[1] is not None  # 1200 estimated: over
    windows.settle("k", window, -550)  # it used 50
    assert windows.admit("k", limit, 600)[1] is None
    windows.settle("k", window, -10_000)
    assert windows.counts("k", window).tokens == 0  # never below zero


def test_keys_gone_quiet_are_forgotten():
    clock = Clock(T0 + 1)
    windows = LocalWindows(clock=clock)
    windows.admit("old", RateLimit(requests_per_minute=5), 1)
    clock.now += 3 * WINDOW_S
    windows.admit("new", RateLimit(requests_per_minute=5), 1)
    assert set(windows._counts) == {"new"}

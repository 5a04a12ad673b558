"""Fixtures of the shared-state tests: a redis-server of the test's own, and two stub backends."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.gateway.redis_replicas import RedisServer, running_redis
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def backends() -> Iterator[dict[str, tuple[str, StubBehavior]]]:
    """Two stub backends, shared by every replica."""
    with contextlib.ExitStack() as stack:
        found = {}
        for name in ("edge", "cloud"):
            behavior = StubBehavior()
            found[name] = (stack.enter_context(serve_in_thread(create_stub_app(behavior))) + "/v1", behavior)
        yield found

"""A client that leaves before the first chunk frees its tier at once (stub backend, one slot)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import openai_tier

BODY = {"model": "edge", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_gone_before_the_first_chunk_frees_the_only_slot(stub_backend, run_gateway, stream):
    base, behavior = stub_backend
    url = run_gateway({"tiers": [openai_tier("edge", base, max_concurrent=1, read_timeout_s=30)]})
    behavior.header_delay_s = 3.0  # the backend takes 3 s to start answering
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", json={**BODY, "stream": stream}, timeout=0.5)
    behavior.header_delay_s = 0.0
    # Had the abandoned request kept the tier's only slot, this one would wait ~2.5 s for it.
    response = httpx.post(f"{url}/v1/chat/completions", json={**BODY, "stream": stream}, timeout=1.5)
    assert response.status_code == 200
    assert len(behavior.received) == 2

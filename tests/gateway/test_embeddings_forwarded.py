"""`/v1/embeddings` forwarded to tiers that embed, with the stock openai SDK: the stub backend (whose vectors say
which text they embed), another tierwise gateway (MiniLM behind real HTTP), and a llama.cpp server that pools
nothing; personal data stays off tiers outside the private locations."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import openai
import pytest

from tests.conftest import llama_tier, needs_llama_cpp, openai_tier, sdk
from tierwise.testing.servers import free_port, start_llama_server, stop_process, wait_until_ready
from tierwise.testing.stub_backend import stub_vector

TEXTS = ["How do I reset my password?", "The tide comes in twice a day."]


@pytest.fixture
def gateway(stub_backend, run_gateway):
    base, behavior = stub_backend
    tiers = [openai_tier("edge", base),  # chats, does not embed
             openai_tier("cloud", base, location="cloud", embedding_model="text-embed-stub",
                         cost={"input_per_mtok": 100.0})]
    return run_gateway({"tiers": tiers, "policies": {"personal_data": "device_and_edge"}}), behavior


def test_auto_forwards_to_the_tier_that_embeds_and_charges_it(gateway):
    url, behavior = gateway
    reply = sdk(url).embeddings.with_raw_response.create(model="auto", input=TEXTS)  # the SDK asks for base64
    body = reply.parse()
    assert reply.headers["x-tierwise-tier"] == "cloud" and body.model == "text-embed-stub"
    # float32 on the way back to the SDK's base64 decoding: equal to the stub's vectors up to float32 rounding
    assert np.allclose([d.embedding for d in body.data], [stub_vector(t, 8) for t in TEXTS], atol=1e-6)
    assert body.usage.prompt_tokens == sum(len(t.split()) for t in TEXTS)
    assert body.model_extra["tierwise"]["cost_usd"] == pytest.approx(body.usage.prompt_tokens * 100 / 1e6)
    sent = behavior.received[-1]
    assert sent == {"model": "text-embed-stub", "input": TEXTS, "encoding_format": "float"}


def test_dimensions_are_passed_on_and_a_pinned_tier_is_used(gateway):
    url, behavior = gateway
    reply = sdk(url).embeddings.create(model="cloud", input="hello", dimensions=5, encoding_format="float")
    assert reply.data[0].embedding == pytest.approx(stub_vector("hello", 5))
    assert behavior.received[-1]["dimensions"] == 5


def test_a_tier_that_does_not_embed_is_refused_by_name(gateway):
    url, _ = gateway
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(url).embeddings.create(model="edge", input="hello")
    assert caught.value.code == "unsupported_capability"
    with pytest.raises(openai.NotFoundError):
        sdk(url).embeddings.create(model="no-such-tier", input="hello")


def test_personal_data_is_never_forwarded_to_a_cloud_tier(gateway):
    url, behavior = gateway
    with pytest.raises(openai.PermissionDeniedError):
        sdk(url).embeddings.create(model="cloud", input=["call me on +44 20 7946 0958", "hello"])
    assert not behavior.received


def test_personal_data_with_auto_is_embedded_on_the_gateways_machine(gateway):
    pytest.importorskip("tokenizers")
    url, behavior = gateway
    reply = sdk(url).embeddings.create(model="auto", input="mail jane.doe@example.com")
    assert reply.model == "all-minilm-l6-v2" and len(reply.data[0].embedding) == 384
    assert not behavior.received


def test_a_failing_tier_falls_back_to_the_local_model_for_auto_only(gateway):
    pytest.importorskip("tokenizers")
    url, behavior = gateway
    behavior.mode, behavior.status = "error_status", 503
    local = sdk(url).embeddings.create(model="auto", input="hello")
    assert local.model == "all-minilm-l6-v2"
    assert any("failed" in why for why in local.model_extra["tierwise"]["reasons"])
    with pytest.raises(openai.UnprocessableEntityError):  # a 5xx from a tier whose probe passes: as for chat
        sdk(url).embeddings.create(model="cloud", input="hello")


@pytest.mark.slow
def test_forwarded_to_another_gateway_the_vectors_are_its_minilm_vectors(run_gateway, stub_backend):
    pytest.importorskip("tokenizers")
    base, _ = stub_backend
    upstream = run_gateway({"tiers": [openai_tier("edge", base)]})
    front = run_gateway({"tiers": [openai_tier("remote", f"{upstream}/v1", embedding_model="all-minilm-l6-v2")]})
    forwarded = sdk(front).embeddings.create(model="remote", input=TEXTS)
    direct = sdk(upstream).embeddings.create(model="all-minilm-l6-v2", input=TEXTS)
    assert np.allclose([d.embedding for d in forwarded.data], [d.embedding for d in direct.data], atol=1e-6)
    assert forwarded.usage.prompt_tokens == direct.usage.prompt_tokens


@pytest.mark.slow
def test_a_llama_cpp_server_that_pools_nothing_is_a_clear_upstream_error(run_gateway, tiny_gguf):
    needs_llama_cpp()
    port = free_port()
    process = start_llama_server(str(tiny_gguf), port=port, extra_args=["--embedding", "true"])
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/v1/models", timeout_s=60, process=process)
        url = run_gateway({"tiers": [openai_tier("edge", f"http://127.0.0.1:{port}/v1", dialect="llama_cpp",
                                                 embedding_model="tiny")]})
        with pytest.raises(openai.APIStatusError) as caught:
            sdk(url).embeddings.create(model="edge", input="hello world")
        assert caught.value.status_code == 502 and "per token" in caught.value.message
    finally:
        stop_process(process)


@pytest.mark.slow
def test_a_device_tier_that_embeds_serves_auto_even_with_personal_data(run_gateway, stub_backend, tiny_gguf):
    needs_llama_cpp()
    base, behavior = stub_backend
    url = run_gateway({"tiers": [llama_tier("device", tiny_gguf, embeddings=True),
                                 openai_tier("cloud", base, location="cloud", embedding_model="text-embed-stub")]})
    reply = sdk(url).embeddings.with_raw_response.create(model="auto", input=["mail jane.doe@example.com"])
    assert reply.headers["x-tierwise-tier"] == "device"  # the free tier first; and the private one
    assert reply.parse().model == "tiny-llama" and len(reply.parse().data[0].embedding) > 0
    assert not behavior.received


def test_embeddings_hold_a_concurrency_slot_of_the_tier_like_chat(stub_backend, run_gateway):
    base, behavior = stub_backend
    behavior.token_delay_s = 0.5  # each embedding takes half a second
    tiers = [openai_tier("cloud", base, location="cloud", embedding_model="text-embed-stub", max_concurrent=1,
                         max_queue=0)]
    url = run_gateway({"tiers": tiers})

    def embed(text: str) -> object:
        try:
            return sdk(url).embeddings.create(model="cloud", input=text).data[0].embedding
        except openai.APIStatusError as err:
            return err

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(embed, ["one", "two"])
    busy = [r for r in (first, second) if isinstance(r, openai.APIStatusError)]
    assert len(busy) == 1 and busy[0].status_code == 503 and "busy" in busy[0].message  # one slot, no queue
    assert len(behavior.received) == 1  # the second never reached the backend
    # the slot was given back: the next one is served
    assert sdk(url).embeddings.create(model="cloud", input="three").data[0].embedding == pytest.approx(
        stub_vector("three", 8), abs=1e-6)

"""`/v1/embeddings` with the stock openai SDK: MiniLM on the gateway's machine, the SDK's own base64 default."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from tests.conftest import openai_tier, sdk

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(stub_backend, run_gateway):
    pytest.importorskip("tokenizers")
    pytest.importorskip("safetensors")
    base, _ = stub_backend
    return run_gateway({"tiers": [openai_tier("edge", base)]})


def test_the_sdk_gets_unit_vectors_that_put_similar_texts_close(gateway):
    texts = ["How do I reset my password?", "I forgot my password and cannot log in.", "The tide comes in twice a day."]
    reply = sdk(gateway).embeddings.create(model="auto", input=texts)  # the SDK asks for base64 and decodes it
    vectors = np.array([d.embedding for d in reply.data])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert reply.model == "all-minilm-l6-v2" and reply.usage.prompt_tokens > 10
    floats = sdk(gateway).embeddings.create(model="all-minilm-l6-v2", input=texts[0], encoding_format="float")
    assert np.allclose(floats.data[0].embedding, vectors[0], atol=1e-5)


@pytest.mark.parametrize(("fields", "error"), [
    ({"model": "edge", "input": "x"}, openai.BadRequestError),  # a tier that does not embed
    ({"model": "auto", "input": [[1, 2, 3]]}, openai.BadRequestError),  # token arrays: not served
    ({"model": "auto", "input": ""}, openai.BadRequestError),
    ({"model": "auto", "input": "x", "dimensions": 128}, openai.BadRequestError),
    ({"model": "auto", "input": ["x"] * 257}, openai.BadRequestError),
])
def test_what_cannot_be_served_is_a_clear_client_error(gateway, fields, error):
    with pytest.raises(error):
        sdk(gateway).embeddings.create(**fields)

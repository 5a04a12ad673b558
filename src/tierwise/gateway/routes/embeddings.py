"""`POST /v1/embeddings`: all-MiniLM-L6-v2 (384 dimensions), run on the gateway's own machine.

The model is the router's local one (numpy, from the `router` extra's files): an embedding request never leaves
the device, so the personal-data policy has nothing to refuse. Inputs are strings (token arrays are refused with a
400), at most `MAX_INPUTS` per request, each truncated to `MAX_TOKENS` word pieces as sentence-transformers does.
Not served: forwarding to an HTTP tier's embedding model, `dimensions` other than 384.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tierwise.errors import EmbeddingModelMissing, EmbeddingsUnavailable, InvalidRequest, ModelNotFound
from tierwise.gateway.body import parse_body
from tierwise.gateway.disconnect import cancel_on_disconnect
from tierwise.routing.minilm import DIM

EMBEDDING_MODEL = "all-minilm-l6-v2"
MAX_INPUTS = 256
MAX_TOKENS = 256
router = APIRouter()


class EmbeddingRequest(BaseModel):
    """`POST /v1/embeddings` body (unknown fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] = Field(description="one text or a list of texts")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts or len(texts) > MAX_INPUTS:
            raise InvalidRequest(f"input: give 1 to {MAX_INPUTS} texts, not {len(texts)}", param="input")
        if any(not t for t in texts):
            raise InvalidRequest("input: texts must not be empty", param="input")
        return texts


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> JSONResponse:
    request.app.state.tierwise.auth.key_of(request)
    body = await parse_body(request, EmbeddingRequest)
    if body.model not in {"auto", EMBEDDING_MODEL}:
        raise ModelNotFound(f"model {body.model!r} does not embed; use {EMBEDDING_MODEL!r} or 'auto'", param="model")
    if body.dimensions not in (None, DIM):
        raise InvalidRequest(f"dimensions: {EMBEDDING_MODEL} has {DIM}, not {body.dimensions}", param="dimensions")
    texts = body.texts()
    vectors, tokens = await cancel_on_disconnect(request, asyncio.to_thread(_encode, texts))
    data = [{"object": "embedding", "index": i, "embedding": _format(v, body.encoding_format)}
            for i, v in enumerate(vectors)]
    return JSONResponse({"object": "list", "data": data, "model": EMBEDDING_MODEL,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def _encode(texts: list[str]) -> tuple[np.ndarray, int]:
    from tierwise.routing.embed import shared_encoder  # numpy model code: only when embeddings are asked for

    try:
        encoder = shared_encoder(MAX_TOKENS)
    except EmbeddingModelMissing as err:
        raise EmbeddingsUnavailable(f"embeddings are not available here: {err}") from None
    return encoder.encode(texts), sum(len(ids) for ids in encoder.token_ids(texts))


def _format(vector: np.ndarray, encoding: str) -> Any:
    if encoding == "base64":  # what the openai SDK asks for by default: little-endian float32, base64
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]

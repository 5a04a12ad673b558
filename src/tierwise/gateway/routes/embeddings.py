"""`POST /v1/embeddings`: forwarded to a tier that embeds (an HTTP tier with `embedding_model`), else
all-MiniLM-L6-v2 (384 dimensions) on the gateway's own machine.

`model`: `auto` (the cheapest healthy tier that embeds and may see the texts, else the local model, also when
those tiers fail), a tier's name (that tier only: 400 `unsupported_capability` if it does not embed), or
`all-minilm-l6-v2` (the local model). Texts with personal data are never forwarded to a tier outside the
`personal_data` setting's locations (403 when pinned to one; `auto` keeps them local); over the key's daily budget
only tiers that cost nothing are used. A forwarded request is charged as its tier's input tokens.

The local model is the router's (numpy, from the `router` extra's files). Inputs are strings (token arrays are
refused with a 400), at most `MAX_INPUTS` per request; locally each is truncated to `MAX_TOKENS` word pieces as
sentence-transformers does, and `dimensions` other than 384 are refused.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tierwise.errors import (
    EmbeddingModelMissing,
    EmbeddingsUnavailable,
    InvalidRequest,
    ModelNotFound,
    TierBusy,
    TierRequestFailed,
    TierUnavailable,
    TierwiseError,
)
from tierwise.gateway.auth import api_key
from tierwise.gateway.body import parse_body
from tierwise.gateway.disconnect import cancel_on_disconnect
from tierwise.gateway.service import scan_large_text
from tierwise.gateway.state import GatewayState
from tierwise.routing.minilm import DIM
from tierwise.routing.policy import apply_policies
from tierwise.routing.router import RouteRequest
from tierwise.tiers.base import Tier

EMBEDDING_MODEL = "all-minilm-l6-v2"
MAX_INPUTS = 256
MAX_TOKENS = 256
log = logging.getLogger("tierwise.gateway")
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
async def embeddings(request: Request, key: str | None = Depends(api_key)) -> JSONResponse:
    state: GatewayState = request.app.state.tierwise
    body = await parse_body(request, EmbeddingRequest)
    texts = body.texts()
    candidates, reasons = await _tiers_for(state, body, texts, key)
    vectors, tokens, tier, cost = await cancel_on_disconnect(
        request, _embed(state, body, texts, candidates, reasons, key))
    data = [{"object": "embedding", "index": i, "embedding": _format(v, body.encoding_format)}
            for i, v in enumerate(vectors)]
    report: dict[str, Any] = {"tier": tier.name if tier else None, "reasons": reasons}
    headers = {}
    if tier is not None:
        report["cost_usd"] = cost
        headers["x-tierwise-tier"] = tier.name
    model = tier.embedding_model if tier is not None else EMBEDDING_MODEL
    return JSONResponse({"object": "list", "data": data, "model": model, "tierwise": report,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, headers=headers)


async def _tiers_for(state: GatewayState, body: EmbeddingRequest, texts: list[str], api_key: str | None
                     ) -> tuple[list[Tier], list[str]]:
    """The tiers to try in order (none: the local model), and why. The tiers that embed go through the same hard
    policies as chat (personal data, health, budget); a pinned tier is refused by those that bind pinned requests."""
    if body.model == EMBEDDING_MODEL:
        return [], [f"the request names {EMBEDDING_MODEL!r}, embedded on the gateway's machine"]
    pinned = body.model != "auto"
    if pinned:
        if body.model not in state.tiers:
            known = ", ".join(["auto", EMBEDDING_MODEL, *(n for n, t in state.tiers.items() if t.embedding_model)])
            raise ModelNotFound(f"model {body.model!r} does not exist; choose one of: {known}", param="model")
        if not state.tiers[body.model].embedding_model:
            raise InvalidRequest(f"tier {body.model!r} does not embed (no embedding_model); choose another tier or "
                                 "model='auto'", param="model", code="unsupported_capability")
    views = [v for v in state.tier_views() if state.tiers[v.name].embedding_model]
    if not views:
        return [], ["no tier embeds: embedded on the gateway's machine"]
    text = "\n".join(texts)
    policies = state.settings.policies
    request = RouteRequest(prompt=text, conversation=text, api_key=api_key,
                           pii_kinds=await scan_large_text(text, policies))
    outcome = apply_policies(request, views, policies, spent_today_usd=state.ledger.spent(api_key))
    if pinned:
        if (refusal := outcome.pinned_refusal(body.model)) is not None:
            raise refusal
        tiers = [state.tiers[body.model]]  # health does not overrule a pinned tier
    else:
        tiers = sorted((state.tiers[v.name] for v in outcome.allowed), key=lambda t: t.cost.input_per_mtok)
    reasons = [f"{name}: {why}" for name, why in outcome.excluded.items()]
    if not tiers:
        return [], [*reasons, "no tier that embeds may serve: embedded on the gateway's machine"]
    return tiers, [*reasons, f"forwarded to {tiers[0].name!r}, which embeds with {tiers[0].embedding_model!r}"]


async def _embed(state: GatewayState, body: EmbeddingRequest, texts: list[str], tiers: list[Tier],
                 reasons: list[str], api_key: str | None) -> tuple[Any, int, Tier | None, float]:
    """(vectors, prompt tokens, the tier that embedded them or None for the local model, cost)."""
    for tier in tiers:
        try:
            async with state.dispatcher.holding_slot(tier.name):  # bounded like chat: max_concurrent, max_queue
                vectors, tokens = await tier.embed(texts, dimensions=body.dimensions)
        except TierUnavailable as err:  # the tier's trouble: the next one, or the local model for `auto`
            if not isinstance(err, TierRequestFailed | TierBusy):  # as in dispatch: not a fault of the tier's
                state.health[tier.name].record_failure(err.message)
            reasons.append(f"{tier.name!r} failed: {err.message}")
            if body.model != "auto":
                raise
            continue
        except TierwiseError:
            raise  # the request's fault (a 4xx upstream), or a malformed answer: not retried elsewhere
        state.health[tier.name].record_success()
        cost = tier.cost_usd(tokens, 0)
        state.ledger.charge(api_key, cost)
        return vectors, tokens, tier, cost
    if body.dimensions not in (None, DIM):
        raise InvalidRequest(f"dimensions: {EMBEDDING_MODEL} has {DIM}, not {body.dimensions}", param="dimensions")
    local, tokens = await asyncio.to_thread(_encode, texts)
    return local, tokens, None, 0.0


def _encode(texts: list[str]) -> tuple[np.ndarray, int]:
    from tierwise.routing.embed import shared_encoder  # numpy model code: only when embeddings are asked for

    try:
        encoder = shared_encoder(MAX_TOKENS)
    except EmbeddingModelMissing as err:
        raise EmbeddingsUnavailable(f"embeddings are not available here: {err}") from None
    return encoder.encode(texts), sum(len(ids) for ids in encoder.token_ids(texts))


def _format(vector: np.ndarray | list[float], encoding: str) -> Any:
    if encoding == "base64":  # what the openai SDK asks for by default: little-endian float32, base64
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]

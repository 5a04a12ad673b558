"""Server-sent events, as the OpenAI APIs frame them."""

from __future__ import annotations

import json
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def dumps(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON. orjson: this is the per-token path of every stream, and several times faster than
    `json.dumps`; what orjson refuses (an integer over 64 bits from a backend) falls back to `json`."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sse_json(payload: dict[str, Any]) -> bytes:
    """One `data:` event."""
    return b"data: " + dumps(payload) + b"\n\n"


def sse_event(kind: str, payload: dict[str, Any]) -> bytes:
    """One named event (`event: <kind>`), as the Responses API sends them."""
    return b"event: " + kind.encode() + b"\ndata: " + dumps(payload) + b"\n\n"

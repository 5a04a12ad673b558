"""How answers are written: JSON bodies and server-sent events, encoded with `json_codec` (orjson)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from tierwise.json_codec import dumps

DONE = b"data: [DONE]\n\n"


class JsonBody(JSONResponse):
    """A JSON response encoded by orjson (Starlette's `JSONResponse` uses the standard library)."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def sse_json(payload: dict[str, Any]) -> bytes:
    """One `data:` event."""
    return b"data: " + dumps(payload) + b"\n\n"


def sse_event(kind: str, payload: dict[str, Any]) -> bytes:
    """One named event (`event: <kind>`), as the Responses API sends them."""
    return b"event: " + kind.encode() + b"\ndata: " + dumps(payload) + b"\n\n"

"""One id per request, end to end: the client's `x-request-id` (or a new one) is echoed on every response, sent on
to HTTP backends, and named in the `tierwise` report, so one request can be followed through every log.

Usage: `app.add_middleware(RequestIdMiddleware)`; anywhere below it, `tierwise.request_context.current_request_id()`.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tierwise.request_context import REQUEST_ID

HEADER = "x-request-id"
# What a client may choose: short and printable, so it can be logged and sent on as a header unchanged.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class RequestIdMiddleware:
    """ASGI middleware: take a valid `x-request-id` from the client or make one, and echo it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = dict(scope.get("headers") or []).get(HEADER.encode(), b"").decode("latin-1")
        request_id = presented if _ACCEPTED.fullmatch(presented) else str(uuid.uuid4())
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

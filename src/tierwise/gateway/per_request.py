"""What every HTTP request gets on its way in, in one middleware (one layer per request, not one per concern):

- **its id**: the client's `x-request-id` (or a new one), echoed on every response, sent on to HTTP backends and
  named in the `tierwise` report, so one request can be followed through every log
  (`tierwise.request_context.current_request_id()`);
- **its `RequestScope`**: what it holds in the shared state (rate-limit admission, budget reservation), in a
  ContextVar so tasks the request spawns see the same one (`gateway.request_scope.current_scope()`), handed to
  `GatewayState.end_request` once the response is sent or the request failed.

Usage: `app.add_middleware(PerRequestMiddleware)`, added last (outermost), so even refusals carry the id.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tierwise.gateway.request_scope import SCOPE, RequestScope
from tierwise.request_context import REQUEST_ID

HEADER = "x-request-id"
# What a client may choose: short and printable, so it can be logged and sent on as a header unchanged.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class PerRequestMiddleware:
    """ASGI middleware: a valid `x-request-id` from the client or a new one, echoed on the response; a fresh
    `RequestScope`, released when the request is over."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = dict(scope.get("headers") or []).get(HEADER.encode(), b"").decode("latin-1")
        request_id = presented if _ACCEPTED.fullmatch(presented) else str(uuid.uuid4())
        id_token = REQUEST_ID.set(request_id)
        held = RequestScope()
        scope_token = SCOPE.set(held)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            state = getattr(scope["app"].state, "tierwise", None)
            if state is not None:
                state.end_request(held)  # still inside the request's context: its id is in the logs
            SCOPE.reset(scope_token)
            REQUEST_ID.reset(id_token)

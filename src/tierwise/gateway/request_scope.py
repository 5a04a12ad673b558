"""What the gateway's shared state holds for one request while it is served: its rate-limit admission and its
budget reservation, so the tier's usage can settle them and the end of the request can release what is left.

`RequestScopeMiddleware` gives each HTTP request a fresh `RequestScope` (a mutable holder in a ContextVar, so
tasks the request spawns see the same one) and, once the response is sent or the request failed, hands it to
`GatewayState.end_request`. Usage: `app.add_middleware(RequestScopeMiddleware)`; below it, `current_scope()`.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from tierwise.state.budget_guard import Reservation
    from tierwise.state.rate_limits import Admission


@dataclass
class RequestScope:
    """One request's holdings in the shared state."""

    admission: Admission | None = None  # counted against the key's rate limits
    reservation: Reservation | None = None  # part of the key's budget held for this request


SCOPE: ContextVar[RequestScope | None] = ContextVar("tierwise_request_scope", default=None)


def current_scope() -> RequestScope | None:
    """The scope of the request being served in this context (None outside a request)."""
    return SCOPE.get()


class RequestScopeMiddleware:
    """ASGI middleware: one `RequestScope` per HTTP request, released when the request is over."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held = RequestScope()
        token = SCOPE.set(held)
        try:
            await self.app(scope, receive, send)
        finally:
            SCOPE.reset(token)
            state = getattr(scope["app"].state, "tierwise", None)
            if state is not None:
                state.end_request(held)

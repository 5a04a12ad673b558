"""What the gateway's shared state holds for one request while it is served: its rate-limit admission and its
budget reservation, so the tier's usage can settle them and the end of the request can release what is left.

`gateway/per_request.PerRequestMiddleware` gives each HTTP request a fresh `RequestScope` (a mutable holder in a
ContextVar, so tasks the request spawns see the same one) and, once the response is sent or the request failed,
hands it to `GatewayState.end_request`. Below it: `current_scope()`.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

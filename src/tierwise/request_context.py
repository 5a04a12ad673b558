"""What the code serving a request may know about it without being handed it: its id (set by the gateway's
`PerRequestMiddleware`, read by HTTP tiers to send it on). Usage: `current_request_id()`."""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("tierwise_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context (None outside a request)."""
    return REQUEST_ID.get()

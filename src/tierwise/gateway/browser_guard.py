"""Keep web pages from using a gateway they can reach: a Host allowlist (DNS rebinding) and JSON-only API posts
(a cross-site form post cannot send `application/json` without a CORS preflight, which is never granted).

Without API keys the gateway trusts whoever can connect, so by default only loopback host names are accepted;
with keys, any host (the keys protect it). Usage: `app.add_middleware(BrowserGuard, allowed_hosts={...})`.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from tierwise.protocol import error_body

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_JSON_TYPES = (b"application/json",)


def default_allowed_hosts(*, keyed: bool, listen_host: str) -> frozenset[str] | None:
    """None (any host) with keys; else the loopback names and the host the gateway listens on."""
    if keyed:
        return None
    extra = {listen_host.strip("[]")} if listen_host not in {"0.0.0.0", "::", ""} else set()
    return LOOPBACK_HOSTS | extra


def _host_name(header: bytes) -> str:
    host = header.decode("latin-1").strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class BrowserGuard:
    """ASGI middleware: 421 for a Host outside the allowlist, 415 for an API POST whose body is not JSON."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: frozenset[str] | None) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.allowed_hosts is not None and _host_name(headers.get(b"host", b"")) not in self.allowed_hosts:
            await _reject(send, 421, "this gateway does not serve that host name (gateway.allowed_hosts)",
                          "host_not_allowed")
            return
        content_type = headers.get(b"content-type")
        if (scope["method"] == "POST" and content_type is not None
                and not content_type.split(b";")[0].strip().lower().startswith(_JSON_TYPES)):
            await _reject(send, 415, "request bodies must be JSON (Content-Type: application/json)",
                          "unsupported_media_type")
            return
        await self.app(scope, receive, send)


async def _reject(send: Send, status: int, message: str, code: str) -> None:
    body = json.dumps(error_body(message, error_type="invalid_request_error", code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

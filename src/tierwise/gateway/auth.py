"""Bearer API keys, compared in constant time and never logged. Routes take the caller's key as a FastAPI
dependency: `key: str | None = Depends(api_key)`."""

from __future__ import annotations

import hmac

from fastapi import Request

from tierwise.errors import AuthenticationFailed


class ApiKeyAuth:
    """Checks `Authorization: Bearer <key>` against the configured keys; no keys configured = open."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys if k]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def accepts(self, request: Request) -> bool:
        """Would `key_of` let this request through (always, with auth off)?"""
        try:
            self.key_of(request)
        except AuthenticationFailed:
            return False
        return True

    def key_of(self, request: Request) -> str | None:
        """The caller's key if it is valid (None when auth is off); raises AuthenticationFailed otherwise."""
        if not self._keys:
            return None
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'")
        candidate = presented.strip().encode()
        # Compare against every key, without stopping early, so timing says nothing about which key is close.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise AuthenticationFailed("invalid API key")
        return candidate.decode()


async def api_key(request: Request) -> str | None:
    """The dependency: the caller's valid key (None with auth off); a missing or wrong key is a 401. Async: FastAPI
    runs a plain `def` dependency in a worker thread, which costs more than the check itself."""
    auth: ApiKeyAuth = request.app.state.tierwise.auth
    return auth.key_of(request)

"""The HTTP client of the HTTP tiers: one aiohttp session per tier, behind the few calls the tier makes.

aiohttp, not httpx: on the gateway's hot path the client is most of the gateway's own CPU time, and aiohttp (its
HTTP parser in C) costs a sixth of httpx's CPU per non-streaming request and a third per 32-chunk stream here
(bench/RESULTS.md, "HTTP client"). What the tier needs is small — a streamed POST, a GET with a deadline, reading
the body as it arrives — and aiohttp's exceptions are translated here, once, into three kinds
(`errors.UpstreamConnectFailed`, `UpstreamTimedOut`, `UpstreamHTTPFailed`), so the tier's failure accounting does
not depend on the client library.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp

from tierwise.errors import UpstreamConnectFailed, UpstreamHTTPFailed, UpstreamTimedOut

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy


def _translate(err: BaseException) -> Exception:
    """aiohttp's exception as one of the three kinds the tier tells apart."""
    text = f"{type(err).__name__}: {err}".rstrip(": ")
    connect_failed = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.ServerDisconnectedError,
                      ConnectionResetError)
    if isinstance(err, connect_failed):
        return UpstreamConnectFailed(text)  # nothing came back: a retry cannot duplicate output
    if isinstance(err, asyncio.TimeoutError):  # aiohttp's socket timeouts are asyncio.TimeoutError subclasses
        return UpstreamTimedOut(text)
    return UpstreamHTTPFailed(text)


class UpstreamResponse:
    """The status, headers and body of one response; the body is read as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status

    @property
    def reason_phrase(self) -> str:
        return self._response.reason or ""

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._response.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body in the pieces the socket delivers them (never more than one read buffer at a time)."""
        stream = self._response.content
        while True:
            try:
                data = await stream.readany()
            except (TimeoutError, aiohttp.ClientError, ConnectionError) as err:
                raise _translate(err) from err
            if not data:
                return
            yield data

    async def aread(self, limit: int = 1 << 20) -> bytes:
        """At most `limit` bytes of the body (an error body is only ever read for its message)."""
        parts, size = [], 0
        async for data in self.aiter_bytes():
            parts.append(data)
            size += len(data)
            if size >= limit:
                break
        return b"".join(parts)[:limit]


class UpstreamClient:
    """Connections to one server (`base_url`), opened in `start()` (inside the running event loop)."""

    def __init__(
        self, base_url: str, *, headers: dict[str, str], connect_timeout_s: float, read_timeout_s: float,
        max_connections: int,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._headers = headers
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            # no total deadline here (a long answer is bounded by the tier's max_answer_s); per socket operation:
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s,
                                          sock_read=self._read_timeout_s),
            connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
            auto_decompress=True,
            trust_env=False,  # a proxy from the environment must not see what the tiers are sent
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"HTTP client for {self.base_url} used before start()")
        return self._session

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, content: bytes, headers: dict[str, str]
    ) -> AsyncIterator[UpstreamResponse]:
        """Send the request; the response's body is read inside the block; leaving the block frees the
        connection (kept for reuse when the body was read to its end)."""
        try:
            response = await self.session.request(method, self.base_url + path, data=content, headers=headers)
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as err:
            raise _translate(err) from err
        try:
            yield UpstreamResponse(response)
        finally:
            response.release()

    async def get(self, path: str, *, timeout_s: float) -> int:
        """The status of a GET (the body is read and dropped), within `timeout_s` in all."""
        try:
            async with self.session.get(self.base_url + path,
                                        timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                await response.read()
                return response.status
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as err:
            raise _translate(err) from err

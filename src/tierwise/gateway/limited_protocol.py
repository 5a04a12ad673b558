"""Bounds on what a client may hold open before the app sees a request: head size, head and body time, connections.

uvicorn reads a request head of any size and waits for it (and for a stalled body) forever, so a few slow or huge
requests exhaust memory or file descriptors before authentication runs. `protocol_class(limits)` returns uvicorn's
httptools protocol with those bounds (`connection_limits.ConnectionLimits`) enforced in the connection itself:

- a head (request line and headers) over `max_header_bytes` or `max_headers` → 431, then close;
- a head not complete within `header_timeout_s` of its first byte (or of the connection opening) → 408 and close;
- a body silent for `body_timeout_s` while the client owes bytes → 408 and close, and the app sees a disconnect;
- a new connection beyond `max_connections`, or beyond `max_connections_per_client` from one peer address,
  → 503 and close at once, while the open ones keep being served.

Responses are never timed: a stream may last as long as the app likes. Idle keep-alive stays uvicorn's
`timeout_keep_alive`.

Usage: uvicorn.run(app, http=protocol_class(ConnectionLimits(header_timeout_s=5)), timeout_keep_alive=30)
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.server import ServerState

from tierwise.errors import HeadTooLarge
from tierwise.gateway.connection_limits import ClientConnections, ConnectionLimits
from tierwise.protocol import error_body

__all__ = ["LimitedHttpToolsProtocol", "protocol_class"]

log = logging.getLogger("tierwise.gateway")

# After a 431 the client is usually still sending its head; reading and discarding it for a moment lets the client
# read the answer (closing on unread data sends a reset, which can destroy the 431 before the client reads it).
_LINGER_S = 2.0


def _error_response(
    status: int, message: str, *, error_type: str, code: str, headers: list[tuple[bytes, bytes]]
) -> bytes:
    body = json.dumps(error_body(message, error_type=error_type, code=code)).encode()
    parts = [STATUS_LINE[status]]
    for name, value in headers:
        parts += [name, b": ", value, b"\r\n"]
    parts += [b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body), body]
    return b"".join(parts)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `limits` enforced; get one bound to your limits from `protocol_class`.

    This class itself carries the defaults, so `--http tierwise.gateway.connection_limits:LimitedHttpToolsProtocol`
    works where uvicorn needs an import string (several workers).
    """

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    # One ClientConnections per server (a ServerState each), for as long as that server lives.
    counts_by_server: ClassVar[WeakKeyDictionary[ServerState, ClientConnections]] = WeakKeyDictionary()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        counts = self.counts_by_server.get(server_state)
        if counts is None:
            counts = self.counts_by_server[server_state] = ClientConnections()
        self.client_connections = counts
        self._counted_as: str | None = None  # the address this connection is counted under
        self._refused = False
        self._ignore_input = False  # refused, or discarding what follows a 431
        self._reading_head = False  # between the first byte of a request and its last header
        self._heads_begun = 0
        self._head_bytes = 0  # URL and complete headers of the current head
        self._partial_head_bytes = 0  # bytes received while the current head stayed incomplete
        self._header_count = 0
        self._awaiting_body = False  # headers complete, body not yet
        self._body_seen_at: float | None = None  # None: measure silence from the next check
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    # Connection lifetime

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limits = self.limits
        peer = get_remote_addr(transport)
        over_total = limits.max_connections is not None and len(self.connections) >= limits.max_connections
        per_client = limits.max_connections_per_client
        if over_total or (peer is not None and not self.client_connections.add(peer[0], limit=per_client)):
            self._refuse(transport, peer)
            return
        self._counted_as = peer[0] if peer is not None else None
        super().connection_made(transport)
        # The first head's clock starts now: a connection that never sends a byte is not kept either.
        self._head_timer = self.loop.call_later(limits.header_timeout_s, self._on_head_timeout)

    def _refuse(self, transport: asyncio.Transport, peer: tuple[str, int] | None) -> None:
        self.transport = transport
        self._refused = self._ignore_input = True
        if self.client_connections.note_refusal(self.loop.time()):
            log.warning(
                "refusing connections (%d refused so far): %d open, %d from %s; limits %s total, %s per client",
                self.client_connections.refused, len(self.connections),
                self.client_connections.open_from(peer[0]) if peer else 0, peer[0] if peer else "?",
                self.limits.max_connections, self.limits.max_connections_per_client,
            )
        transport.write(_error_response(
            503, "too many open connections; retry later", error_type="server_error", code="too_many_connections",
            headers=self.server_state.default_headers,
        ))
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:  # nothing was set up or counted
            return
        self._release()
        super().connection_lost(exc)

    def _release(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._linger_timer = None
        if self._counted_as is not None:
            self.client_connections.remove(self._counted_as)
            self._counted_as = None

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes over the transport (and uvicorn's connection set); these bounds end here.
        self._release()
        self._awaiting_body = False
        super().handle_websocket_upgrade()

    # Input

    def data_received(self, data: bytes) -> None:
        if self._ignore_input:
            return
        self._unset_keepalive_if_required()
        head_was_open, heads_before = self._reading_head, self._heads_begun
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._reject_head()
            else:
                self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        self._after_feed(len(data), head_was_open and heads_before == self._heads_begun)

    def _after_feed(self, size: int, same_head_still_open: bool) -> None:
        if self._reading_head:
            if same_head_still_open:
                # All of this chunk belongs to a head httptools is still buffering (a header value in pieces).
                self._partial_head_bytes += size
                if self._partial_head_bytes > self.limits.max_header_bytes:
                    self._reject_head()
                    return
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._on_head_timeout)
        elif self._awaiting_body:
            self._body_seen_at = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._check_body_progress)
        elif self._head_timer is None and self.timeout_keep_alive_task is None and self._idle():
            # Bytes that start no request (bare CRLFs) cancelled uvicorn's keep-alive timer: bound them as a head.
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._on_head_timeout)

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._heads_begun += 1
        self._head_bytes = self._partial_head_bytes = self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self.limits.max_header_bytes:
            raise HeadTooLarge
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Also called for chunked-body trailers: they count against the same budget.
        self._head_bytes += len(name) + len(value) + 4
        self._header_count += 1
        if self._head_bytes > self.limits.max_header_bytes or self._header_count > self.limits.max_headers:
            raise HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._awaiting_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # The body timer is left to lapse rather than cancelled: a keep-alive connection posting often reuses it.
        self._awaiting_body = False
        super().on_message_complete()

    # Enforcement

    def _reject_head(self) -> None:
        log.debug("request head from %s over %d bytes or %d headers: 431",
                  self.client, self.limits.max_header_bytes, self.limits.max_headers)
        self._fail(431, "request head too large", code="request_header_fields_too_large", linger=True)

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if not self._idle():
            # A pipelined head trickles in while a response still goes out: let that one finish, then close.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
        elif self._reading_head:
            log.debug("request head from %s incomplete after %s s: 408", self.client, self.limits.header_timeout_s)
            self._fail(408, "request head not received in time", code="request_timeout", linger=False)
        else:
            self.transport.close()

    def _check_body_progress(self) -> None:
        self._body_timer = None
        if not self._awaiting_body or self.cycle is None or self.transport.is_closing():
            return
        timeout = self.limits.body_timeout_s
        wait = timeout
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            self._body_seen_at = None  # the app holds things up, not the client
        elif self._body_seen_at is None:
            self._body_seen_at = self.loop.time()
        else:
            silent_for = self.loop.time() - self._body_seen_at
            if silent_for >= timeout:
                log.debug("request body from %s silent for %.1f s: 408", self.client, silent_for)
                self._fail(408, "request body not received in time", code="request_timeout", linger=False)
                return
            wait = timeout - silent_for
        self._body_timer = self.loop.call_later(wait, self._check_body_progress)

    def _fail(self, status: int, message: str, *, code: str, linger: bool) -> None:
        """Answer `status` and close; a request in flight sees a disconnect. No answer where one has begun (it would
        corrupt it), nor for a body still owed after its request was answered."""
        self._ignore_input = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() returns http.disconnect; its sends are dropped
            cycle.keep_alive = False
            cycle.message_event.set()
        if cycle is not None and cycle.response_started and (not cycle.response_complete or not self._reading_head):
            self.transport.close()
            return
        self.transport.write(_error_response(
            status, message, error_type="invalid_request_error", code=code, headers=self.server_state.default_headers,
        ))
        if not linger:
            self.transport.close()
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()  # keep reading (and discarding) so the client can finish sending and read
        self._linger_timer = self.loop.call_later(min(_LINGER_S, self.limits.header_timeout_s), self.transport.close)


def protocol_class(limits: ConnectionLimits) -> type[LimitedHttpToolsProtocol]:
    """uvicorn's httptools protocol bound to `limits`, with its own per-server connection counts.

    Usage: uvicorn.Config(app, http=protocol_class(ConnectionLimits()), timeout_keep_alive=30)
    """
    bound_limits = limits

    class BoundLimitedHttpToolsProtocol(LimitedHttpToolsProtocol):
        limits = bound_limits
        counts_by_server: ClassVar[WeakKeyDictionary[ServerState, ClientConnections]] = WeakKeyDictionary()

    return BoundLimitedHttpToolsProtocol

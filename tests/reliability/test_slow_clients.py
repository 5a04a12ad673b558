"""Clients that attack the connection before any request reaches the app: huge or endless heads, slowloris, stalled
bodies, connection floods. A real uvicorn on 127.0.0.1 with `protocol_class(limits)`, raw sockets for the attacks,
small limits so every test ends in seconds; and normal traffic (long streams, large or slow bodies) that must pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tierwise.gateway.connection_limits import ClientConnections, ConnectionLimits, fd_budget_problem
from tierwise.gateway.limited_protocol import protocol_class
from tierwise.testing.servers import free_port

pytestmark = pytest.mark.slow  # real servers on 127.0.0.1, up to a few seconds each

LIMITS = ConnectionLimits(header_timeout_s=1.0, body_timeout_s=1.0, max_header_bytes=16 * 1024, max_headers=100)


@dataclass
class AppRecord:
    """What the app's handlers saw, written from the server thread."""

    outcomes: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)


def make_app(record: AppRecord) -> Starlette:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def stream(request: Request) -> Response:
        async def pieces() -> AsyncIterator[bytes]:
            for i in range(6):
                yield f"piece {i}\n".encode()
                await asyncio.sleep(0.5)

        return StreamingResponse(pieces(), media_type="text/plain")

    async def read_late(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("delay", "2")))
        return await echo(request)

    async def recorded(request: Request) -> Response:
        try:
            await request.body()
            record.outcomes.append("complete")
        except ClientDisconnect:
            record.outcomes.append("disconnected")
        finally:
            record.ended.set()
        return PlainTextResponse("done")

    async def websocket(ws: WebSocket) -> None:
        await ws.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_bytes()

    return Starlette(routes=[
        Route("/ok", ok), Route("/echo", echo, methods=["POST"]), Route("/stream", stream),
        Route("/read-late", read_late, methods=["POST"]), Route("/recorded", recorded, methods=["POST"]),
        WebSocketRoute("/ws", websocket),
    ])


@contextlib.contextmanager
def serve(limits: ConnectionLimits = LIMITS, record: AppRecord | None = None) -> Iterator[int]:
    """uvicorn with the limited protocol in a thread; yields its port on 127.0.0.1."""
    port = free_port()
    config = uvicorn.Config(
        make_app(record or AppRecord()), host="127.0.0.1", port=port, http=protocol_class(limits), loop="asyncio",
        lifespan="off", log_level="critical", timeout_keep_alive=30, timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "server did not shut down (a handler left hanging?)"


def connect(port: int, *, timeout_s: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, *, timeout_s: float = 5.0) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    sock.settimeout(timeout_s)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket, *, timeout_s: float = 5.0) -> bytes:
    """One response with a Content-Length (all this app sends on raw sockets), leaving the connection open."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    length = lengths[0] if lengths else 0
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def status_of(response: bytes) -> int | None:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Samples this process's RSS (the server runs in it) every 2 ms; yields [peak growth in bytes] when done."""
    baseline, peak, result = rss_bytes(), [0], [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        result[0] = max(peak[0], rss_bytes()) - baseline


def send_ignoring_close(sock: socket.socket, data: bytes) -> None:
    """Send like an attacker who does not wait: stop quietly once the server has closed."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


# The limits themselves


def test_limits_reject_values_that_bound_nothing_and_name_the_field():
    for bad in ({"header_timeout_s": 0}, {"max_headers": 1.5}, {"max_connections": True}, {"body_timeout_s": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ConnectionLimits(**bad)  # type: ignore[arg-type]
    assert ConnectionLimits(max_connections=None, max_connections_per_client=None).max_connections is None


def test_client_connections_count_per_address_up_to_the_limit():
    counts = ClientConnections()
    assert [counts.add("10.0.0.1", limit=2) for _ in range(3)] == [True, True, False]
    assert counts.add("10.0.0.2", limit=2) and counts.add("10.0.0.1", limit=None)
    counts.remove("10.0.0.1")
    counts.remove("10.0.0.2")
    assert (counts.open_from("10.0.0.1"), counts.open_from("10.0.0.2")) == (2, 0)


def test_fd_budget_problem_flags_a_connection_cap_the_open_file_limit_cannot_hold(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    problem = fd_budget_problem(ConnectionLimits(max_connections=1000), backlog=2048)
    assert problem is not None and "1024" in problem and "backlog 2048" in problem
    assert fd_budget_problem(ConnectionLimits(max_connections=800), backlog=64) is None
    assert "unset" in (fd_budget_problem(ConnectionLimits(max_connections=None), backlog=64) or "")


# Heads too large


@pytest.mark.parametrize("header_mib", [1, 16])
def test_a_huge_header_gets_431_and_is_not_buffered(header_mib):
    head = b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (header_mib << 20) + b"\r\n\r\n"
    with serve() as port, connect(port) as sock:
        with peak_rss_growth() as growth:
            send_ignoring_close(sock, head)
            response = read_until_closed(sock)
        assert status_of(response) == 431, response[:200]
        assert b'"code": "request_header_fields_too_large"' in response
    print(f"RSS growth for a {header_mib} MiB header: {growth[0] / 2**20:.2f} MiB")
    assert growth[0] < 4 << 20, f"RSS grew by {growth[0] / 2**20:.1f} MiB"


def test_too_many_headers_get_431_while_a_full_but_allowed_head_passes():
    def head(count: int) -> bytes:
        return b"GET /ok HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(count)) + b"\r\n"

    with serve() as port:
        with connect(port) as sock:
            sock.sendall(head(200))
            assert status_of(read_until_closed(sock)) == 431
        with connect(port) as sock:
            sock.sendall(head(LIMITS.max_headers - 1))  # plus Host: exactly at the limit
            assert status_of(read_response(sock)) == 200


def test_a_head_of_many_headers_sent_in_one_piece_counts_its_bytes():
    header = b"X-Pad: " + b"p" * 1000 + b"\r\n"
    with serve() as port:
        with connect(port) as sock:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n" + header * 20 + b"\r\n")  # 20 kB of 16 KiB allowed
            assert status_of(read_until_closed(sock)) == 431
        with connect(port) as sock:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n" + header * 15 + b"\r\n")  # 15 kB
            assert status_of(read_response(sock)) == 200


# Slow heads


def drip(
    drippers: list[socket.socket], silent: list[socket.socket], *, byte_every_s: float, until_s: float
) -> list[float]:
    """Send each dripper one more byte of a never-ending head every `byte_every_s`, send the silent ones nothing;
    returns the seconds after which the server closed each connection it closed within `until_s`."""
    start = time.monotonic()
    open_socks = {sock: sock in drippers for sock in drippers + silent}
    closed_after = []
    for sock in open_socks:
        sock.setblocking(False)
    while open_socks and time.monotonic() - start < until_s:
        for sock, dripping in list(open_socks.items()):
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable and not sock.recv(65536):
                    raise ConnectionResetError
                if dripping:
                    sock.send(b"a")
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:  # reset, broken pipe or end of stream: the server let go
                closed_after.append(time.monotonic() - start)
                del open_socks[sock]
        time.sleep(byte_every_s)
    return closed_after


def test_slowloris_connections_are_closed_within_the_header_timeout_while_others_are_served():
    with serve() as port:
        drippers = [connect(port) for _ in range(50)]
        silent = [connect(port) for _ in range(10)]  # connect and never send a byte
        try:
            for sock in drippers:
                sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            assert httpx.get(f"http://127.0.0.1:{port}/ok", timeout=5).text == "ok"
            closed_after = drip(drippers, silent, byte_every_s=0.2, until_s=LIMITS.header_timeout_s + 1.5)
        finally:
            for sock in drippers + silent:
                sock.close()
    assert len(closed_after) == 60, f"{60 - len(closed_after)} of 60 connections still open"
    assert max(closed_after) <= LIMITS.header_timeout_s + 1.0, max(closed_after)


def test_bare_line_breaks_after_a_response_do_not_keep_a_connection_forever():
    # Stock uvicorn cancels its keep-alive timer on any bytes and never re-arms it when they start no request.
    with serve() as port, connect(port) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_response(sock)) == 200
        sock.sendall(b"\r\n")
        start = time.monotonic()
        assert read_until_closed(sock, timeout_s=LIMITS.header_timeout_s + 2) in (b"", b"ok")
        assert time.monotonic() - start <= LIMITS.header_timeout_s + 1.0


# Slow bodies


def test_a_stalled_body_gets_408_and_the_handler_sees_a_disconnect():
    record = AppRecord()
    with serve(record=record) as port, connect(port) as sock:
        sock.sendall(b"POST /recorded HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"b" * 10)
        start = time.monotonic()
        response = read_until_closed(sock, timeout_s=LIMITS.body_timeout_s + 3)
        waited = time.monotonic() - start
        assert status_of(response) == 408, response
        assert waited <= LIMITS.body_timeout_s + 1.0, waited
        assert record.ended.wait(1.0), "the handler is still waiting for the body"
    assert record.outcomes == ["disconnected"]


def test_a_slow_but_steady_body_is_not_cut_off():
    body = b"c" * 1000
    with serve() as port, connect(port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        for i in range(10):  # 3 s in all, never silent for the 1 s body timeout
            time.sleep(0.3)
            sock.sendall(body[i * 100:(i + 1) * 100])
        response = read_response(sock)
    assert status_of(response) == 200, response
    assert hashlib.sha256(body).hexdigest().encode() in response


def test_an_app_slow_to_read_a_large_body_is_not_taken_for_a_slow_client():
    # The app reads after 2 s: meanwhile uvicorn stops reading (flow control), so the client cannot send.
    body = os.urandom(1 << 20)
    with serve() as port:
        response = httpx.post(f"http://127.0.0.1:{port}/read-late?delay=2", content=body, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_a_client_waiting_for_100_continue_is_not_taken_for_a_slow_client():
    with serve() as port, connect(port) as sock:
        sock.sendall(b"POST /read-late?delay=2 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 ")  # sent when the app starts reading, 2 s later
        sock.sendall(b"hello")
        assert status_of(read_response(sock)) == 200


# Normal traffic


def test_a_stream_longer_than_every_timeout_completes():
    with serve() as port:
        start = time.monotonic()
        with httpx.stream("GET", f"http://127.0.0.1:{port}/stream", timeout=10) as response:
            lines = list(response.iter_lines())
    assert lines == [f"piece {i}" for i in range(6)]
    assert time.monotonic() - start >= 2.5


def test_large_bodies_sent_promptly_and_keep_alive_requests_pass():
    body = os.urandom(4 << 20)
    with serve() as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for _ in range(3):  # on one kept-alive connection
            answer = client.post("/echo", content=body).json()
            assert answer == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        assert all(client.get("/ok").text == "ok" for _ in range(50))


def test_a_websocket_upgrade_leaves_the_connection_counts_balanced():
    handshake = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with serve(ConnectionLimits(header_timeout_s=5, max_connections_per_client=2)) as port:
        for _ in range(3):
            with connect(port) as sock:
                sock.sendall(handshake)
                assert sock.recv(65536).startswith(b"HTTP/1.1 101 ")
        time.sleep(0.2)
        with connect(port) as first, connect(port) as second:  # both fit: the upgraded ones were released
            for sock in (first, second):
                sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
                assert status_of(read_response(sock)) == 200


# Connection floods


@pytest.mark.parametrize("limit", ["max_connections", "max_connections_per_client"])
def test_connections_beyond_the_limit_are_refused_while_open_ones_are_served(limit):
    limits = ConnectionLimits(header_timeout_s=10, **{"max_connections": None, limit: 4})  # type: ignore[arg-type]
    with serve(limits) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        assert client.get("/ok").text == "ok"  # 1 of 4: a kept-alive connection
        idle = [connect(port) for _ in range(3)]
        try:
            for _ in range(3):
                with connect(port) as refused:
                    start = time.monotonic()
                    assert status_of(read_until_closed(refused, timeout_s=2)) == 503
                    assert time.monotonic() - start < 1.0
            assert client.get("/ok").text == "ok"  # the open connection is still served
        finally:
            for sock in idle:
                sock.close()
        status, deadline = None, time.monotonic() + 2
        while status != 200 and time.monotonic() < deadline:  # new connections are accepted once the idle ones go
            time.sleep(0.05)
            with connect(port) as sock:
                sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                status = status_of(read_until_closed(sock))
        assert status == 200

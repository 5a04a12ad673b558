"""A free TCP port on 127.0.0.1, for a server tierwise starts itself (the managed llama.cpp server, test servers).

The port is free when asked for; a process that binds it later can lose a race with another one, which the
caller's startup check (a health probe with a deadline) then reports."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

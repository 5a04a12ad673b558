"""What one client connection may cost before its request reaches the app: the limits, the per-client counts,
and whether the process has file descriptors enough for them. `limited_protocol.py` enforces them in uvicorn's
httptools protocol (see there for what each limit answers with).

Usage: uvicorn.run(app, http=protocol_class(ConnectionLimits(header_timeout_s=5)), timeout_keep_alive=30)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["ClientConnections", "ConnectionLimits", "fd_budget_problem"]

_REFUSAL_WARNING_EVERY_S = 10.0


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """What one client connection may cost before and while its request arrives.

    `body_timeout_s` is the longest *silence* while a request body is owed (time in which the app, not the client,
    holds things up, such as unread buffered body or a pending `100 Continue`, does not count); a body that keeps
    arriving, however slowly, is not cut off. `max_header_bytes` counts the URL and every `name: value` line.
    `None` disables a connection cap (for `max_connections_per_client`, needed behind a proxy: every connection
    then comes from the proxy's address).

    Usage: ConnectionLimits(header_timeout_s=5, max_connections_per_client=None)
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_connections: int | None = 1000
    max_connections_per_client: int | None = 64

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None and field.name.startswith("max_connections"):
                continue
            kinds = (int, float) if field.name.endswith("_s") else (int,)
            if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value < math.inf:
                what = "number of seconds" if field.name.endswith("_s") else "integer"
                raise ValueError(f"connection limit {field.name} must be a positive {what}, not {value!r}")


class ClientConnections:
    """Open connections per client address on one server: the shared count `max_connections_per_client` caps."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self.refused = 0
        self._warned_at = -math.inf

    def add(self, client: str, *, limit: int | None) -> bool:
        """Count one more connection from `client`, unless it already has `limit`; says whether it was counted."""
        count = self._open.get(client, 0)
        if limit is not None and count >= limit:
            return False
        self._open[client] = count + 1
        return True

    def remove(self, client: str) -> None:
        count = self._open.pop(client, 0) - 1
        if count > 0:
            self._open[client] = count

    def open_from(self, client: str) -> int:
        return self._open.get(client, 0)

    def note_refusal(self, now: float) -> bool:
        """Count a refused connection; true when it is time to log a warning again (a flood logs once in a while)."""
        self.refused += 1
        if now - self._warned_at < _REFUSAL_WARNING_EVERY_S:
            return False
        self._warned_at = now
        return True


def fd_budget_problem(limits: ConnectionLimits, *, backlog: int, reserve: int = 64) -> str | None:
    """Why this process may run out of file descriptors before `max_connections` refuses anyone; None if it won't.

    asyncio accepts up to `backlog` connections per pass of the event loop before any protocol sees them, and a
    refused connection's descriptor is freed a pass later: the cap holds only while max_connections + 2 × backlog
    + `reserve` (listening sockets, upstream connections, files) fits the open-file limit. Past it accept() fails
    with EMFILE, which Python 3.11's asyncio logs and retries in a storm while new clients wait.

    Usage: if (problem := fd_budget_problem(limits, backlog=2048)): log.warning(problem)
    """
    import resource  # Unix only, like the limits it checks

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limits.max_connections is None:
        return f"max_connections is unset: clients can open connections until the open-file limit ({soft}) is hit"
    needed = limits.max_connections + 2 * backlog + reserve
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return None
    return (
        f"max_connections {limits.max_connections} + 2 × backlog {backlog} + {reserve} spare = {needed} file "
        f"descriptors exceeds the open-file limit {soft} (ulimit -n): raise it, or lower max_connections or backlog"
    )

"""A streamed answer committed to one tier: `ChatStream` (the chunks, as the client gets them) and
`ServedStream` (the HTTP response that sends them and frees the tier however the response ends)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from tierwise.errors import TierwiseError
from tierwise.gateway.decision import RequestTrace
from tierwise.gateway.dispatch import Served
from tierwise.gateway.encoding import DONE, sse_json
from tierwise.protocol import error_body, new_completion_id
from tierwise.tiers.base import Chunk

log = logging.getLogger("tierwise.gateway")
CLOSE_TIMEOUT_S = 10.0


class ChatStream:
    """The chunks of one tier's answer as the client gets them: one `id` and `model` on all of them, the report
    on the first, and — on the last — what the request cost (known only when the tier is done).

    The chunk that finishes the answer is held back (as a rule it carries no text of its own) and goes out last
    with the cost, or before the usage chunk when the client asked for one. `chunks()` raises the tier's
    `TierwiseError` when the answer breaks off; the caller turns it into its protocol's error event.
    `aclose()` frees the tier and charges a broken or abandoned answer for what it used; idempotent."""

    def __init__(
        self, served: Served, trace: RequestTrace, *, wants_usage_chunk: bool,
        charge: Callable[[dict[str, Any]], None],
        finish: Callable[[str, str | None], None] = lambda status, text: None, keep_text: bool = False,
    ) -> None:
        self.served = served
        self.trace = trace
        self.wants_usage_chunk = wants_usage_chunk
        self._charge = charge
        self._charged = False
        self._finish: Callable[[str, str | None], None] | None = finish  # (status, answer text): called once
        self.status = "abandoned"  # until the stream ends: "ok", or "broken" when the tier failed mid-answer
        self._pieces: list[str] | None = [] if keep_text else None  # the answer's text, for the decision log
        self.same = {"id": new_completion_id(), "model": served.tier.model_name}

    def charge_once(self) -> None:
        if not self._charged and self.served.usage:
            self._charged = True
            self._charge(self.served.usage)

    async def chunks(self) -> AsyncIterator[Chunk]:
        same = self.same
        first = self.served.first
        first.update(same)
        first["tierwise"] = self.trace.report()
        self._keep(first)
        yield first
        finishing: Chunk | None = None
        usage_chunk: Chunk | None = None
        try:
            async for chunk in self.served.rest:
                choices = chunk.get("choices")
                if not choices:  # the usage chunk, a tier's last
                    usage_chunk = chunk
                    continue
                chunk.update(same)  # the tier's own dict: changed in place, not copied, on this per-token path
                if self._pieces is not None:
                    self._keep(chunk)
                if finishing is not None:
                    yield finishing
                    finishing = None
                if any(c.get("finish_reason") for c in choices):
                    finishing = chunk
                    continue
                yield chunk
        except BaseException as err:
            self.status = "broken" if isinstance(err, Exception) else "abandoned"
            raise
        self.status = "ok"
        self.charge_once()
        summary: dict[str, Any] = {"request_id": self.trace.request_id}
        if self.trace.cost_usd is not None:
            summary["cost_usd"] = self.trace.cost_usd
        if usage_chunk is not None and self.wants_usage_chunk:
            if finishing is not None:
                yield finishing
            yield {**usage_chunk, **same, "tierwise": summary}
        elif finishing is not None:
            finishing["tierwise"] = summary
            yield finishing

    def _keep(self, chunk: Chunk) -> None:
        if self._pieces is not None:
            self._pieces += [c["delta"]["content"] for c in chunk.get("choices") or []
                             if isinstance((c.get("delta") or {}).get("content"), str)]

    async def aclose(self) -> None:
        # A client that went away cancels the sender; the tier's stream must still be closed (its slot and model
        # freed), so the close is shielded from that cancellation, and bounded.
        with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            await self.served.aclose()
        self.charge_once()
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish(self.status, None if self._pieces is None else "".join(self._pieces))


async def sse_body(stream: ChatStream, reshape: Callable[[Chunk], Chunk] | None = None) -> AsyncIterator[bytes]:
    """The stream as server-sent events, each chunk `reshape`d first (a text completion's chunk shape); a tier
    that breaks off mid-answer ends it with an OpenAI error event, then `[DONE]`."""
    try:
        async for chunk in stream.chunks():
            yield sse_json(reshape(chunk) if reshape is not None else chunk)
    except TierwiseError as err:
        yield sse_json(error_body(err.message, error_type=err.error_type, code=err.code))
    except Exception:
        log.exception("stream from tier %s failed", stream.served.tier.name)
        yield sse_json(error_body("internal error in tierwise while streaming", error_type="server_error"))
    finally:
        await stream.aclose()
    yield DONE


class ServedStream(StreamingResponse):
    """A streamed answer that frees its tier however the response ends, even if its body was never started
    (a client gone before the first byte: the event generator then never runs its own cleanup).

    A client that stops reading makes writes wait for ever once the socket buffers are full, and its request
    would hold the tier's slot; a write that waits longer than `write_timeout_s` ends the response instead."""

    def __init__(
        self, stream: ChatStream, content: AsyncIterator[bytes], *, write_timeout_s: float, **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self.stream = stream
        self.write_timeout_s = write_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One watchdog per stream, not a timeout per write: arming and disarming a timer around each of a stream's
        # hundreds of writes costs more than the write itself; this costs a clock read per write.
        loop = asyncio.get_running_loop()
        writing_since: float | None = None

        async def watched_send(message: Message) -> None:
            nonlocal writing_since
            writing_since = loop.time()
            await send(message)
            writing_since = None

        async def watchdog(scope_: anyio.CancelScope) -> None:
            while True:
                await asyncio.sleep(self.write_timeout_s / 4)
                if writing_since is not None and loop.time() - writing_since > self.write_timeout_s:
                    log.warning("client of tier %s stopped reading for %g s: stream ended",
                                self.stream.served.tier.name, self.write_timeout_s)
                    scope_.cancel()
                    return

        try:
            with anyio.CancelScope() as sending:
                dog = asyncio.create_task(watchdog(sending))
                try:
                    await super().__call__(scope, receive, watched_send)
                finally:
                    dog.cancel()
        finally:
            await self.stream.aclose()

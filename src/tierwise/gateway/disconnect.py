"""Cancel a request's work when its client goes away before the answer is sent.

A streamed answer notices a lost client at its next write; a non-streamed one sends nothing until it is done, so
without a listener it would generate to the end for nobody (vLLM's `with_cancellation` does the same). Usage::

    return await cancel_on_disconnect(request, _complete(...))
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import Request

from tierwise.errors import ClientClosed

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    """Returns once the client has disconnected (the body was read already, so only that message can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; if the client disconnects first, cancel it (every resource it holds is freed on the way out)
    and raise `ClientClosed` (answered with 499, which nobody reads but logs and metrics show)."""
    task = asyncio.ensure_future(work)
    listener = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, listener}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this handler itself was cancelled (shutdown): take the work down with it
        task.cancel()
        raise
    finally:
        listener.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)  # wait until its cleanup has run
    raise ClientClosed("the client closed the connection")

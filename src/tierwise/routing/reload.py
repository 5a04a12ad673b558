"""Hot reload of the router file: the gateway picks up a retrained router without a restart.

`RouterReloader` holds the router built from the file and its version (`file_version`: a hash of the content).
Every `check_every_s` its task looks at the file's mtime and size, off the event loop; when they changed it
loads and builds the new router in a thread, then swaps it in with one assignment, so a request that called
`current()` keeps the router it got. A file that fails to load (half-written, wrong format) is logged and the
old router keeps serving. Usage::

    reloader = reloader_for(settings.router)   # or RouterReloader("router.json", build=LearnedRouter.from_path)
    await reloader.start()                  # loads now; raises if the first load fails
    router, version = reloader.current()    # per request; version goes into the decision log
    await reloader.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from tierwise.routing.router import Router
from tierwise.routing.router_file import file_version
from tierwise.routing.settings import RouterSettings

log = logging.getLogger("tierwise.routing")


def _learned(path: Path) -> Router:
    from tierwise.routing.learned import LearnedRouter

    return LearnedRouter.from_path(path)


def reloader_for(settings: RouterSettings) -> RouterReloader:
    """The reloader the gateway builds from its `router:` settings (which must name a router file): the
    learned router at the configured cloud share and embedding cache, checked every `reload_every_s`."""
    from tierwise.routing.learned import LearnedRouter

    if settings.model is None:
        raise ValueError("router.model names no router file to watch")

    def build(path: Path) -> Router:
        return LearnedRouter.from_path(path, target_cloud_share=settings.target_cloud_share,
                                       cache_dir=settings.embedding_cache_dir)

    return RouterReloader(settings.model, build=build, check_every_s=settings.reload_every_s)


class RouterReloader:
    """The current router from a router file, reloaded when the file changes."""

    def __init__(self, path: str | Path, *, build: Callable[[Path], Router] = _learned,
                 check_every_s: float = 5.0) -> None:
        if check_every_s <= 0:
            raise ValueError("check_every_s must be > 0")
        self.path = Path(path)
        self.build = build
        self.check_every_s = check_every_s
        self._current: tuple[Router, str] | None = None
        self._stamp: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0

    def _file_stamp(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_size

    def load(self) -> bool:
        """Load the file if it changed since the last load (blocking: call it from a thread); True if swapped."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        version = file_version(self.path)
        if self._current is not None and version == self._current[1]:
            self._stamp = stamp
            return False
        router = self.build(self.path)
        self._current, self._stamp = (router, version), stamp
        self.reloads += 1
        return True

    def current(self) -> tuple[Router, str]:
        """(router, version) serving now; raises RuntimeError before the first load."""
        if self._current is None:
            raise RuntimeError("RouterReloader.current() before start()")
        return self._current

    async def start(self) -> None:
        """Load the file now (errors propagate: a gateway must not start without its router), then watch it."""
        await asyncio.to_thread(self.load)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_every_s)
            try:
                if await asyncio.to_thread(self.load):
                    log.info("router file %s reloaded: version %s", self.path, self._current and self._current[1])
            except Exception as err:  # keep serving with the old router; the next check tries again
                log.error("router file %s changed but did not load (old router kept): %s", self.path, err)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

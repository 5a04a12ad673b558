"""The parent's handle on a device-tier worker process (tiers/llama_worker.py): start it, send it requests, read its
replies, notice when it ends.

This module owns `WorkerProcess` (one process, its pipe and the thread that reads it), `Job` (one request's
replies), `Exited` (the process has ended, and how) and `WorkerFailed` (it never became ready). The messages on
the pipe are defined beside the worker, which does not import this module.

Workers start with multiprocessing's "spawn" (a fresh interpreter; forking a process that runs an event loop and
threads is unsafe), which imports the main module again: a script that starts the tier needs the usual
`if __name__ == "__main__":` guard. Usage, in the parent::

    worker = WorkerProcess(settings, name="tierwise-device", loop=loop, on_idle=..., on_exit=...)
    await asyncio.to_thread(worker.launch); await worker.ready
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tierwise.errors import WorkerFailed
from tierwise.tiers.llama_worker import (
    Cancel,
    Close,
    Done,
    Failed,
    Generate,
    Piece,
    Ready,
    WorkerSettings,
    serve,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

log = logging.getLogger("tierwise.tiers")

_EXIT_WAIT_S = 5.0  # how long a worker whose pipe closed may take to end before it is killed


@dataclass(frozen=True)
class Exited:
    """Posted by the parent's reader thread when the worker's pipe closes: the process has ended."""

    exitcode: int | None

    def describe(self) -> str:
        if self.exitcode is None:
            return "exit status unknown"
        if self.exitcode < 0:
            try:
                return f"killed by {signal.Signals(-self.exitcode).name}"
            except ValueError:
                return f"killed by signal {-self.exitcode}"
        return f"exit code {self.exitcode}"


@dataclass
class Job:
    """One request on one worker: its replies arrive in `replies`, ending with `Done`, `Failed` or `Exited`."""

    request_id: int
    replies: asyncio.Queue[Piece | Done | Failed | Exited]


class WorkerProcess:
    """The parent's handle on one worker process; a thread reads the pipe and hands replies to the event loop.

    `on_idle` runs when a request ends (the worker can take the next), `on_exit` when the process has ended."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        name: str,
        loop: asyncio.AbstractEventLoop,
        on_idle: Callable[[WorkerProcess], None],
        on_exit: Callable[[WorkerProcess, Exited], None],
    ) -> None:
        self.settings = settings
        self.name = name
        self.ready: asyncio.Future[Ready] = loop.create_future()
        self.job: Job | None = None
        self.exited: Exited | None = None
        self._loop = loop
        self._on_idle = on_idle
        self._on_exit = on_exit
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self._killed = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def launch(self) -> None:
        """Start the process and its reader thread (blocks for the fork/exec: call it from a thread)."""
        # spawn, not fork: the parent runs an event loop and threads, which a forked child would inherit half-way.
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=serve, args=(child_conn, self.settings), name=self.name, daemon=True)
        self._process.start()
        child_conn.close()  # else the parent keeps the pipe open and never sees the worker's end of it
        if self._killed:  # kill() came while the process was starting
            self._process.kill()
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-reader", daemon=True)
        self._reader.start()

    def begin(self, request_id: int, arguments: dict[str, Any], chat_handler: str | None, *,
              kind: Literal["chat", "text", "embed"] = "chat") -> Job:
        self.job = Job(request_id, asyncio.Queue())
        self._send(Generate(request_id, arguments, chat_handler, kind=kind))
        return self.job

    def cancel(self, job: Job) -> None:
        """Stop `job` if it is still running. Synchronous, so it works from a cancelled task's `finally`."""
        if self.job is job:
            self._send(Cancel(job.request_id))

    def kill(self) -> None:
        """Kill the process now, or as soon as `launch` has started it. Does not block."""
        self._killed = True
        if self._process is not None and self._process.pid is not None:
            self._process.kill()

    def stop(self, timeout_s: float) -> None:
        """Ask the worker to exit; kill it if it has not within `timeout_s`. Blocks: call it from a thread."""
        self._send(Close())
        if self._process is not None:
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout_s)
        if self._reader is not None:
            self._reader.join(timeout_s)
        if self._conn is not None:
            self._conn.close()

    def _send(self, message: Generate | Cancel | Close) -> None:
        with contextlib.suppress(OSError):  # the worker is gone; the reader thread reports how
            if self._conn is not None:
                self._conn.send(message)

    def _read(self) -> None:
        assert self._conn is not None and self._process is not None
        try:
            while True:
                self._post(self._conn.recv())
        except (EOFError, OSError):
            pass
        except Exception:  # an unreadable reply: the pipe can no longer be trusted
            log.exception("worker %s sent an unreadable reply; killing it", self.name)
            self._process.kill()
        self._process.join(_EXIT_WAIT_S)  # the pipe closes as the process ends: this wait is short
        if self._process.is_alive():  # it closed the pipe but lingers: it cannot serve any more
            self._process.kill()
            self._process.join()
        self._post(Exited(self._process.exitcode))

    def _post(self, message: object) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits for this worker any more
            self._loop.call_soon_threadsafe(self._deliver, message)

    def _deliver(self, message: object) -> None:
        if isinstance(message, Ready):
            if not self.ready.done():
                self.ready.set_result(message)
        elif isinstance(message, Failed) and message.request_id is None:
            if not self.ready.done():
                self.ready.set_exception(WorkerFailed(message.message))
        elif isinstance(message, Exited):
            self.exited = message
            if not self.ready.done():
                self.ready.set_exception(WorkerFailed(f"the worker died while loading ({message.describe()})"))
            job, self.job = self.job, None
            if job is not None:
                job.replies.put_nowait(message)
            self._on_exit(self, message)
        elif isinstance(message, Piece | Done | Failed) and self.job and message.request_id == self.job.request_id:
            self.job.replies.put_nowait(message)
            if not isinstance(message, Piece):
                self.job = None
                self._on_idle(self)

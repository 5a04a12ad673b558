"""The decision log: `append` a `DecisionRecord` from the event loop without waiting for the disk.

Records go into a bounded queue that one writer thread drains, inserting up to `batch_size` rows per
transaction; when the queue is full (the disk cannot keep up) a record is dropped and counted in `dropped`,
never waited for. The writer also applies retention every `prune_every_s` (see `store.prune`). Usage::

    log = DecisionLog(DecisionLogSettings(path="traffic.sqlite", keep_text=True))
    log.start()                              # opens the file, starts the writer thread
    log.append(record)                       # ~µs: a queue put
    await log.aclose()                       # flushes what is queued, then closes
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import queue
import sqlite3
import threading
import time

from tierwise.errors import ConfigError
from tierwise.traffic import store
from tierwise.traffic.record import DecisionRecord
from tierwise.traffic.settings import DecisionLogSettings

log = logging.getLogger("tierwise.traffic")
_STOP = object()


class DecisionLog:
    """Append-only, bounded log of routed requests in SQLite, written by one background thread."""

    def __init__(self, settings: DecisionLogSettings) -> None:
        self.settings = settings
        self._queue: queue.Queue[object] = queue.Queue(maxsize=settings.queue_size)
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()  # set by close(): the writer stops gathering and writes at once
        self._salt = b""
        self.written = 0  # rows inserted (by the writer thread)
        self.dropped = 0  # records refused because the queue was full or the log closed (event-loop side)
        self.lost = 0  # records the writer could not insert (a disk error; logged)

    def start(self) -> None:
        """Open (or create) the file and start the writer; ConfigError when the file cannot be opened."""
        try:
            conn = store.connect(self.settings.path)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(f"router.log.path {self.settings.path}: cannot open the decision log: {err}") from None
        self._salt = store.salt(conn)
        self._closing.clear()
        self._thread = threading.Thread(target=self._write_loop, args=(conn,), name="tierwise-decision-log",
                                        daemon=True)
        self._thread.start()

    def hash_key(self, api_key: str | None) -> str | None:
        """The API key's HMAC-SHA256 under this log's salt (16 hex digits): stable per log, not reversible."""
        if api_key is None:
            return None
        return hmac.new(self._salt, api_key.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def keeps_text(self, record: DecisionRecord) -> bool:
        """Whether this record's prompt and answer may be stored (config, and the personal-data rule)."""
        on_device = self.settings.location == "device"
        return self.settings.keep_text and (on_device or not record.device_only)

    def append(self, record: DecisionRecord) -> bool:
        """Queue `record` for writing; False (and `dropped` + 1) when the queue is full or the log is closed."""
        if self._thread is None:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, stop the writer and close the file. Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._closing.set()
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:  # the writer is stuck (a dead disk): give up on what is queued
            log.error("decision log %s: writer did not drain; %d records not written", self.settings.path,
                      self._queue.qsize())
            return
        thread.join(timeout_s)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        last_prune = time.monotonic()
        stopping = False
        try:
            while not stopping:
                batch = [self._queue.get()]
                if batch[0] is not _STOP:
                    # let a batch gather: one wake-up of this thread and one transaction per interval, not per
                    # request (each wake-up takes the GIL from the event loop; each commit costs tens of µs)
                    self._closing.wait(self.settings.flush_interval_s)
                while len(batch) < self.settings.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = any(item is _STOP for item in batch)
                rows = [store.row_of(r, keep_text=self.keeps_text(r)) for r in batch if isinstance(r, DecisionRecord)]
                self._write(conn, rows)
                if time.monotonic() - last_prune >= self.settings.prune_every_s:
                    self._prune(conn)
                    last_prune = time.monotonic()
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
        try:
            store.insert_rows(conn, rows)
            self.written += len(rows)
        except sqlite3.Error as err:  # a full disk must not stop serving: the batch is lost, and said so
            self.lost += len(rows)
            log.error("decision log %s: %d records lost: %s", self.settings.path, len(rows), err)

    def _prune(self, conn: sqlite3.Connection) -> None:
        try:
            store.prune(conn, max_bytes=int(self.settings.max_mb * 1024 * 1024),
                        max_age_s=self.settings.max_age_days * 86400.0)
        except sqlite3.Error as err:
            log.error("decision log %s: retention failed: %s", self.settings.path, err)

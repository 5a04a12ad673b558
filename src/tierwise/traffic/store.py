"""The decision log's SQLite file: schema, batched inserts, retention, and reading records back.

Rows are only ever inserted (append-only) and deleted oldest first by retention: past `max_age_days`, and while
the pages in use exceed `max_mb` (the oldest tenth of the requests at a time). The file is created with
``auto_vacuum=INCREMENTAL``, so pages freed by retention are handed back to the file system, not only reused.
Each log has its own random salt (table `meta`), the key of the HMAC that hashes API keys.
Usage: ``conn = connect(path); insert_records(conn, rows); prune(conn, max_bytes=…, max_age_s=…)``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.traffic.record import DecisionRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, time REAL NOT NULL, key_hash TEXT, tier TEXT NOT NULL,
    model TEXT NOT NULL, router TEXT NOT NULL, router_version TEXT, status TEXT NOT NULL, latency_ms REAL,
    ttft_ms REAL, prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd REAL, cascade TEXT,
    cascade_p_good REAL, escalated_to TEXT, mean_logprob REAL, min_logprob REAL, mean_entropy REAL,
    logprob_tokens INTEGER, device_only INTEGER NOT NULL, decision TEXT NOT NULL, prompt TEXT, answer TEXT);
CREATE INDEX IF NOT EXISTS requests_time ON requests (time);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, time REAL NOT NULL, query TEXT NOT NULL, model TEXT NOT NULL,
    score REAL NOT NULL, judge TEXT NOT NULL, kind TEXT NOT NULL, response TEXT);
CREATE INDEX IF NOT EXISTS labels_time ON labels (time);
"""
_COLUMNS = (
    "request_id", "time", "key_hash", "tier", "model", "router", "router_version", "status", "latency_ms",
    "ttft_ms", "prompt_tokens", "completion_tokens", "cost_usd", "cascade", "cascade_p_good", "escalated_to",
    "mean_logprob", "min_logprob", "mean_entropy", "logprob_tokens", "device_only", "decision", "prompt", "answer",
)
_INSERT = f"INSERT INTO requests ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) a log file; WAL, so readers (`tierwise label`) never block the writer."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(p, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect on a new file, before any table
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(_SCHEMA)
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (secrets.token_hex(16),))
    return conn


def salt(conn: sqlite3.Connection) -> bytes:
    return bytes.fromhex(conn.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0])


def row_of(record: DecisionRecord, *, keep_text: bool) -> tuple[Any, ...]:
    """The values `_INSERT` takes for `record`; text only with `keep_text` (the caller applied the policy)."""
    conf = record.confidence
    decision = {"reasons": record.reasons, "allowed": record.allowed, "excluded": record.excluded,
                "predicted_quality": record.predicted_quality}
    return (
        record.request_id, record.time, record.key_hash, record.tier, record.model, record.router,
        record.router_version, record.status, record.latency_ms, record.ttft_ms, record.prompt_tokens,
        record.completion_tokens, record.cost_usd, record.cascade, record.cascade_p_good, record.escalated_to,
        conf.mean_logprob if conf else None, conf.min_logprob if conf else None,
        conf.mean_entropy if conf else None, conf.tokens if conf else None, int(record.device_only),
        json.dumps(decision, separators=(",", ":")),
        record.prompt if keep_text else None, record.answer if keep_text else None,
    )


def insert_rows(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """One transaction for the whole batch: one fsync-free WAL append instead of one per request."""
    with conn:
        conn.executemany(_INSERT, rows)


def used_bytes(conn: sqlite3.Connection) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(pages * conn.execute("PRAGMA page_size").fetchone()[0])


def prune(conn: sqlite3.Connection, *, max_bytes: int, max_age_s: float, now: float | None = None) -> int:
    """Delete requests and labels older than `max_age_s`, then the oldest requests while over `max_bytes`.
    Returns the number of requests deleted."""
    cutoff = (time.time() if now is None else now) - max_age_s
    with conn:
        deleted = conn.execute("DELETE FROM requests WHERE time < ?", (cutoff,)).rowcount
        conn.execute("DELETE FROM labels WHERE time < ?", (cutoff,))
    while used_bytes(conn) > max_bytes:
        count = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        if count == 0:
            break
        with conn:
            deleted += conn.execute(
                "DELETE FROM requests WHERE id IN (SELECT id FROM requests ORDER BY id LIMIT ?)", (max(count // 10, 1),)
            ).rowcount
    conn.executescript("PRAGMA incremental_vacuum;")  # run to completion: execute() steps it once (one page)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return deleted


def read_records(conn: sqlite3.Connection, *, since: float | None = None) -> list[DecisionRecord]:
    """Every request logged (at or after `since`), oldest first."""
    cur = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM requests WHERE time >= ? ORDER BY id", (since or 0.0,)
    )
    return [_record(dict(zip(_COLUMNS, row, strict=True))) for row in cur]


def _record(row: dict[str, Any]) -> DecisionRecord:
    decision = json.loads(row.pop("decision"))
    conf_values = [row.pop(k) for k in ("mean_logprob", "min_logprob", "mean_entropy", "logprob_tokens")]
    confidence = None if conf_values[0] is None else AnswerConfidence(*conf_values)
    row["device_only"] = bool(row["device_only"])
    return DecisionRecord(**row, **decision, confidence=confidence)


def insert_labels(conn: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
    keys = ("request_id", "time", "query", "model", "score", "judge", "kind", "response")
    with conn:
        conn.executemany(f"INSERT INTO labels ({', '.join(keys)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [tuple(r.get(k) for k in keys) for r in rows])


def read_labels(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every label row, oldest first, as generic outcome rows (`query, model, score, …`)."""
    keys = ("request_id", "time", "query", "model", "score", "judge", "kind", "response")
    cur = conn.execute(f"SELECT {', '.join(keys)} FROM labels ORDER BY id")
    return [dict(zip(keys, row, strict=True)) for row in cur]

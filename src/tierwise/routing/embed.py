"""Local, offline text embeddings (MiniLM in numpy) behind one small interface, cached by text hash.

`embedder_for(mode)` picks an embedder by name from `EMBEDDERS`; `EmbeddingCache` keeps vectors in memory and,
given a directory, in a SQLite file there (default directory: `~/.cache/tierwise/embeddings`, or
`$TIERWISE_CACHE_DIR/embeddings`), so training on the same data twice embeds it once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from tierwise.routing.minilm import DIM, MiniLmEncoder


class Embedder(Protocol):
    """Texts → (n, dim) float32 rows; `key` names the model and settings (part of the cache key)."""

    key: str
    dim: int

    def __call__(self, texts: list[str]) -> np.ndarray: ...


@functools.lru_cache(maxsize=4)
def shared_encoder(max_tokens: int) -> MiniLmEncoder:
    """One loaded MiniLM per process and truncation length (loading reads 90 MB of weights)."""
    return MiniLmEncoder.load(max_tokens=max_tokens)


class StaticMiniLm:
    """Mean of MiniLM's word-piece input vectors: topic-level similarity in well under a millisecond."""

    dim = DIM

    def __init__(self, *, max_tokens: int) -> None:
        self.key = f"minilm-static-{max_tokens}"
        self.max_tokens = max_tokens

    def __call__(self, texts: list[str]) -> np.ndarray:
        return shared_encoder(self.max_tokens).static_embeddings(texts)


class ContextualMiniLm:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, unit norm), truncated to `max_tokens`."""

    dim = DIM

    def __init__(self, *, max_tokens: int) -> None:
        self.key = f"minilm-{max_tokens}"
        self.max_tokens = max_tokens

    def __call__(self, texts: list[str]) -> np.ndarray:
        return shared_encoder(self.max_tokens).encode(texts)


class NoEmbedding:
    """No embedding at all (cheap features only): for tests and as a baseline."""

    dim = 0
    key = "none"

    def __init__(self, *, max_tokens: int) -> None:
        del max_tokens

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), 0), dtype=np.float32)


EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "static": StaticMiniLm,
    "contextual": ContextualMiniLm,
    "none": NoEmbedding,
}


def embedder_for(mode: str, *, max_tokens: int) -> Embedder:
    """The embedder registered as `mode`; the error lists the valid names."""
    if mode not in EMBEDDERS:
        raise KeyError(f"unknown embedding {mode!r}; valid: {', '.join(EMBEDDERS)}")
    return EMBEDDERS[mode](max_tokens=max_tokens)


def default_cache_dir() -> Path:
    """`$TIERWISE_CACHE_DIR/embeddings` if set, else `~/.cache/tierwise/embeddings`."""
    root = os.environ.get("TIERWISE_CACHE_DIR")
    return Path(root) / "embeddings" if root else Path.home() / ".cache" / "tierwise" / "embeddings"


class EmbeddingCache:
    """Embeddings by sha256(embedder key + text): in memory, and in `<directory>/embeddings.sqlite` if given."""

    def __init__(self, directory: str | Path | None, *, max_memory_items: int = 100_000) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.max_memory_items = max_memory_items
        self._memory: dict[str, np.ndarray] = {}

    def _db(self) -> sqlite3.Connection | None:
        if self.directory is None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.directory / "embeddings.sqlite")
        db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")
        return db

    def get_or_compute(self, embedder: Embedder, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Rows for `texts`, computing (in batches of 64) only those not cached yet."""
        keys = [hashlib.sha256(f"{embedder.key}\0{t}".encode()).hexdigest() for t in texts]
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        missing = []
        for i, k in enumerate(keys):
            if k in self._memory:
                out[i] = self._memory[k]
            else:
                missing.append(i)
        db = self._db() if missing else None
        try:
            if db is not None:
                missing = self._read_disk(db, keys, missing, out)
            for start in _progress(range(0, len(missing), 64), len(missing), progress):
                idx = missing[start : start + 64]
                vecs = np.asarray(embedder([texts[i] for i in idx]), dtype=np.float32)
                out[idx] = vecs
                for i, v in zip(idx, vecs, strict=True):
                    self._remember(keys[i], v)
                if db is not None:
                    rows = [(keys[i], v.tobytes()) for i, v in zip(idx, vecs, strict=True)]
                    db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", rows)
                    db.commit()
        finally:
            if db is not None:
                db.close()
        return out

    def _read_disk(self, db: sqlite3.Connection, keys: list[str], missing: list[int], out: np.ndarray) -> list[int]:
        still = []
        for i in missing:
            row = db.execute("SELECT vec FROM emb WHERE key = ?", (keys[i],)).fetchone()
            if row is None:
                still.append(i)
            else:
                out[i] = np.frombuffer(row[0], dtype=np.float32)
                self._remember(keys[i], out[i].copy())
        return still

    def _remember(self, key: str, vec: np.ndarray) -> None:
        if len(self._memory) >= self.max_memory_items:
            self._memory.pop(next(iter(self._memory)))  # oldest first: a bounded memory
        self._memory[key] = vec


def _progress(steps: range, total: int, show: bool) -> range:
    if not show or total < 256:
        return steps
    from rich.progress import track  # lazy: only the CLI asks for a progress bar

    return track(steps, description=f"embedding {total} texts", total=len(steps))  # type: ignore[return-value]

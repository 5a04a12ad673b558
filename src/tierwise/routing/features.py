"""Query text → feature matrix: a local sentence embedding plus cheap surface features.

Cheap features (fixed transforms, each roughly in [0, 1], so they need no fitted state): length in characters
and words (log), share of digits, math symbols, code markers, line breaks, ASCII letters, CJK characters and
other non-ASCII characters (a rough language/script signal). They are multiplied by `cheap_weight` so they do
not swamp cosine similarity in the kNN predictor. Usage::

    feat = Featurizer(FeaturizerSettings(embedding="static"))
    X = feat.transform(["what is 2+2?", "résumé in 中文"])   # (2, 384 + 9)
"""

from __future__ import annotations

import math
import re
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tierwise.routing.embed import EmbeddingCache, embedder_for

CHEAP_FEATURES = (
    "log_chars",
    "log_words",
    "digits",
    "math",
    "code",
    "lines",
    "ascii_letters",
    "cjk",
    "other_non_ascii",
)
_CODE = re.compile(r"```|\bdef |\bclass |\bimport |#include|=>|\breturn\b|[{};]\s*$", re.MULTILINE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_MATH = re.compile(r"[+\-*/=^<>%√∑∫π]")


class FeaturizerSettings(BaseModel):
    """How queries become features; stored in the router file so serving featurizes exactly like training.

    `embedding`: ``static`` (mean of MiniLM's word-piece vectors: < 1 ms), ``contextual`` (the full MiniLM
    forward pass: 30-300 ms per query on two cores), or ``none`` (cheap features only).
    """

    model_config = ConfigDict(extra="forbid")

    embedding: Literal["static", "contextual", "none"] = "static"
    max_tokens: int = Field(default=256, ge=8, le=512)
    cheap_weight: float = Field(default=0.2, ge=0.0)


def cheap_features(text: str) -> np.ndarray:
    """The surface features of one text, in `CHEAP_FEATURES` order."""
    n = max(len(text), 1)
    words = len(text.split())
    return np.array(
        [
            math.log1p(len(text)) / 10.0,
            math.log1p(words) / 8.0,
            sum(c.isdigit() for c in text) / n,
            len(_MATH.findall(text)) / n * 5.0,
            min(len(_CODE.findall(text)) / 5.0, 1.0),
            min(text.count("\n") / 20.0, 1.0),
            sum(c.isascii() and c.isalpha() for c in text) / n,
            len(_CJK.findall(text)) / n,
            sum(not c.isascii() for c in text) / n - len(_CJK.findall(text)) / n,
        ],
        dtype=np.float32,
    )


class Featurizer:
    """Turns texts into features; embeddings are cached by text hash (memory, and disk if a cache is given)."""

    def __init__(self, settings: FeaturizerSettings | None = None, *, cache: EmbeddingCache | None = None) -> None:
        self.settings = settings or FeaturizerSettings()
        self.cache = cache or EmbeddingCache(None)
        self._embed = embedder_for(self.settings.embedding, max_tokens=self.settings.max_tokens)

    @property
    def dim(self) -> int:
        return self._embed.dim + len(CHEAP_FEATURES)

    def embed(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """The embedding part alone, (n, embed dim), via the cache."""
        return self.cache.get_or_compute(self._embed, texts, progress=progress)

    def transform(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Features for `texts`: (n, embed dim + len(CHEAP_FEATURES)) float32."""
        cheap = np.stack([cheap_features(t) for t in texts]) if texts else np.zeros((0, len(CHEAP_FEATURES)))
        emb = self.embed(texts, progress=progress)
        return np.hstack([emb, self.settings.cheap_weight * cheap]).astype(np.float32)

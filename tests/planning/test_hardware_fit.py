from __future__ import annotations

import numpy as np
import pytest

from tierwise.planning.catalog import Catalog
from tierwise.planning.hardware_fit import (
    HardwareCoefficients,
    HardwareFitModel,
    fit_hardware,
    published_step_table,
)
from tierwise.planning.profile import DecodePoint, FittedStepModel, PrefillPoint, Profile, profile_error

TRUE = HardwareCoefficients(
    prefill_overhead_ms=4.0,
    decode_overhead_ms=2.5,
    ms_per_gb=0.4,
    prefill_ms_per_tflop=1.6,
    decode_ms_per_tflop=3.0,
    ms_per_comm_gb=0.0,
)


def _table(model: HardwareFitModel, name: str) -> Profile:
    pre = [PrefillPoint(batch=1, prompt_len=n, ms=model.prefill_ms(n, sq_tokens=n * n)) for n in (128, 512, 2048, 8192)]
    dec = [DecodePoint(batch=b, context=c, ms=model.decode_ms(b, b * c)) for b in (1, 16, 64, 256) for c in (512, 4096)]
    return Profile(gpu="h100", model=name, prefill=pre, decode=dec)


def test_a_fit_on_one_model_predicts_another_on_the_same_gpu(cat: Catalog) -> None:
    bf16 = cat.quant("bf16")
    a, b = cat.model("llama-3.1-8b"), cat.model("qwen2.5-1.5b")
    measured_a = _table(HardwareFitModel(TRUE, a, bf16), a.name)
    measured_b = _table(HardwareFitModel(TRUE, b, bf16), b.name)
    coef = fit_hardware(measured_a, a, bf16)
    assert profile_error(measured_b, HardwareFitModel(coef, b, bf16)).median_all < 1e-6
    # DistServe's per-model coefficients carry nothing over: the 1.5B model is not the 8B one
    assert profile_error(measured_b, FittedStepModel.from_profile(measured_a)).median_all > 0.5


def test_published_fits_opt_13b_predicts_opt_66b(cat: Catalog) -> None:
    bf16 = cat.quant("bf16")
    for tp in (2, 4):
        train, test = published_step_table("opt-13b", tp), published_step_table("opt-66b", tp)
        coef = fit_hardware(train, cat.model("opt-13b"), bf16)
        assert profile_error(train, HardwareFitModel(coef, cat.model("opt-13b"), bf16, tp=tp)).median_all < 0.02
        cross = profile_error(test, HardwareFitModel(coef, cat.model("opt-66b"), bf16, tp=tp)).median_all
        naive = profile_error(test, FittedStepModel.from_profile(train)).median_all
        assert cross < 0.25 and cross < naive / 2
        assert 1000 < (coef.effective_bandwidth_gbs or 0) < tp * 2039  # below the A100s' peak, not absurd


def test_coefficients_are_never_negative_and_errors_name_what_is_missing(cat: Catalog) -> None:
    rng = np.random.default_rng(0)
    a, bf16 = cat.model("llama-3.1-8b"), cat.quant("bf16")
    noisy = _table(HardwareFitModel(TRUE, a, bf16), a.name)
    noisy = noisy.model_copy(
        update={"decode": [d.model_copy(update={"ms": d.ms * (1 + 0.05 * rng.normal())}) for d in noisy.decode]}
    )
    coef = fit_hardware(noisy, a, bf16)
    assert min(vars(coef).values()) >= 0
    with pytest.raises(ValueError, match="at least 6"):
        fit_hardware(noisy.model_copy(update={"decode": noisy.decode[:1], "prefill": noisy.prefill[:2]}), a, bf16)
    with pytest.raises(KeyError, match="opt-13b TP2"):
        published_step_table("opt-13b", 8)

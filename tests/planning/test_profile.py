from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tierwise.planning.catalog import Catalog
from tierwise.planning.perf_model import RooflineModel
from tierwise.planning.profile import DecodePoint, FittedStepModel, PrefillPoint, Profile, profile_error


def _synthetic(noise: float = 0.0) -> Profile:
    """A profile whose times follow DistServe's forms exactly (OPT-13B A100 prefill coefficients)."""
    rng = np.random.default_rng(0)
    pre = [
        PrefillPoint(batch=1, prompt_len=n, ms=(16.46 + 0.0926 * n + 6.47e-6 * n * n) * (1 + noise * rng.normal()))
        for n in (128, 512, 1024, 2048, 4096)
    ]
    dec = [
        DecodePoint(batch=b, context=c, ms=(12.0 + 0.05 * b + 1e-4 * b * c) * (1 + noise * rng.normal()))
        for b in (1, 8, 32)
        for c in (512, 2048)
    ]
    return Profile(gpu="a100", model="llama-3.1-8b", prefill=pre, decode=dec)


def test_fit_recovers_coefficients() -> None:
    fit = FittedStepModel.from_profile(_synthetic())
    assert fit.prefill_coef == pytest.approx([16.46, 0.0926, 6.47e-6], rel=1e-6)
    assert fit.decode_coef == pytest.approx([12.0, 0.05, 1e-4], rel=1e-6)
    assert profile_error(_synthetic(), fit).median_all < 1e-9


def test_error_of_a_model_against_a_profile(cat: Catalog) -> None:
    prof = _synthetic(noise=0.05)
    err = profile_error(prof, FittedStepModel.from_profile(prof))
    assert 0.005 < err.median_all < 0.1  # the noise is the error
    roofline = RooflineModel.for_gpu(cat.model("llama-3.1-8b"), cat.gpu("a100"), quant=cat.quant("bf16"), cat=cat)
    scaled = prof.model_copy(
        update={
            "decode": [
                d.model_copy(update={"ms": 2 * roofline.decode_ms(d.batch, d.batch * d.context)}) for d in prof.decode
            ]
        }
    )
    assert profile_error(scaled, roofline).summary()["decode_median"] == pytest.approx(0.5)


def test_profile_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    _synthetic().dump(path)
    assert '"schema": "tierwise-profile/1"' in path.read_text()
    assert Profile.load(path) == _synthetic()


def test_too_few_points_to_fit() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        FittedStepModel.from_profile(Profile(gpu="h100", model="x", prefill=_synthetic().prefill[:2]))

"""A step model fitted per GPU rather than per model, so a profile of one model predicts another.

DistServe's fitted forms (`profile.FittedStepModel`) have coefficients per (model, GPU): they cannot say anything
about a model that was not profiled. Here the features come from the architecture — bytes a step reads and FLOPs
it computes (`RooflineModel.decode_work` / `prefill_work`) — so the least-squares coefficients are properties of
the GPU and its engine: a per-step overhead per phase, milliseconds per GB moved (1 / effective bandwidth) and per
TFLOP (1 / effective compute rate) per phase — small-batch decode GEMMs reach a lower share of the peak than
prefill's large ones:

    step ms = overhead[phase] + ms_per_gb · GB + ms_per_tflop[phase] · TFLOP + ms_per_comm_gb · all-reduce GB
                                                                                (coefficients ≥ 0)

The all-reduce volume (2 per layer, bf16 activations, ring) is zero at TP 1; the TP degree is the profile's: fit
and predict at one. A per-layer launch cost would be a natural feature too, but one model's table cannot tell it
from the per-step overhead (its depth is fixed), so it is left out: a deeper model's extra launches are the
error that remains.

Fit on one model's measured table, predict a second model on the same GPU.
Usage: `coef = fit_hardware(profile, arch, quant)`; `HardwareFitModel(coef, other_arch, quant, tp=profile.tp)`
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields
from importlib import resources

import numpy as np
import yaml

from tierwise.planning.catalog import ModelArch, Quantization
from tierwise.planning.perf_model import Hardware, RooflineModel
from tierwise.planning.profile import DecodePoint, PrefillPoint, Profile

# Work is hardware-free, but RooflineModel wants a machine to exist; this one is never asked for a time.
_NO_HARDWARE = Hardware(name="work-only", bandwidth_gbs=1.0, decode_eff=1.0)


@dataclass(frozen=True)
class HardwareCoefficients:
    """What a fit learned about a GPU (+ engine): overheads (ms), ms per GB read, ms per TFLOP by phase."""

    prefill_overhead_ms: float
    decode_overhead_ms: float
    ms_per_gb: float
    prefill_ms_per_tflop: float
    decode_ms_per_tflop: float
    ms_per_comm_gb: float

    @property
    def effective_bandwidth_gbs(self) -> float | None:
        return 1000 / self.ms_per_gb if self.ms_per_gb > 0 else None


def _work(arch: ModelArch, quant: Quantization, kv_bits: float) -> RooflineModel:
    return RooflineModel(arch, _NO_HARDWARE, quant=quant, kv_bits=kv_bits)


def _features(arch: ModelArch, tp: int, tokens: int, gb: float, tflops: float, *, prefill: bool) -> list[float]:
    comm_gb = 0.0 if tp == 1 else 2 * arch.layers * 2 * (tp - 1) / tp * tokens * arch.hidden * 2 / 1e9
    return [
        1.0 if prefill else 0.0,
        0.0 if prefill else 1.0,
        gb,
        tflops if prefill else 0.0,
        0.0 if prefill else tflops,
        comm_gb,
    ]


def _nnls(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with non-negative coefficients, by trying every subset of columns (there are six)."""
    n = design.shape[1]
    best, best_err = np.zeros(n), float(np.sum(y**2))
    for k in range(1, n + 1):
        for cols in itertools.combinations(range(n), k):
            coef, *_ = np.linalg.lstsq(design[:, cols], y, rcond=None)
            if (coef < 0).any():
                continue
            err = float(np.sum((design[:, cols] @ coef - y) ** 2))
            if err < best_err:
                best, best_err = np.zeros(n), err
                best[list(cols)] = coef
    return best


def fit_hardware(
    profile: Profile, arch: ModelArch, quant: Quantization, *, kv_bits: float = 16
) -> HardwareCoefficients:
    """Fit the GPU's coefficients to a measured profile of `arch` (relative least squares: every point counts)."""
    if len(profile.prefill) + len(profile.decode) < 6 or not profile.prefill or not profile.decode:
        raise ValueError("a profile needs prefill and decode points, at least 6 in all, to fit 6 coefficients")
    work = _work(arch, quant, kv_bits)
    rows, ms = [], []
    for p in profile.prefill:
        tokens = p.batch * p.prompt_len
        gb, flops = work.prefill_work(tokens, p.batch * p.prompt_len**2)
        rows.append(_features(arch, profile.tp, tokens, gb / 1e9, flops / 1e12, prefill=True))
        ms.append(p.ms)
    for d in profile.decode:
        gb, flops = work.decode_work(d.batch, d.batch * d.context)
        rows.append(_features(arch, profile.tp, d.batch, gb / 1e9, flops / 1e12, prefill=False))
        ms.append(d.ms)
    y = np.asarray(ms)
    # divide each row by its time so a 2 ms decode step weighs as much as a 2 s prefill
    coef = _nnls(np.asarray(rows) / y[:, None], np.ones_like(y))
    return HardwareCoefficients(*(float(c) for c in coef))


class HardwareFitModel:
    """Step times of any architecture on the fitted GPU (a `StepModel`)."""

    def __init__(
        self, coef: HardwareCoefficients, arch: ModelArch, quant: Quantization, *, kv_bits: float = 16, tp: int = 1
    ) -> None:
        self.coef, self.arch, self.tp, self._work = coef, arch, tp, _work(arch, quant, kv_bits)
        self._coef = np.array([getattr(coef, f.name) for f in fields(coef)])

    def prefill_ms(self, tokens: int, *, sq_tokens: int, batch: int = 1) -> float:
        gb, flops = self._work.prefill_work(tokens, sq_tokens)
        return float(self._coef @ _features(self.arch, self.tp, tokens, gb / 1e9, flops / 1e12, prefill=True))

    def decode_ms(self, batch: int, context_sum: int) -> float:
        gb, flops = self._work.decode_work(batch, context_sum)
        return float(self._coef @ _features(self.arch, self.tp, batch, gb / 1e9, flops / 1e12, prefill=False))


# The grid a published fit is evaluated on: inside what DistServe profiled (prompts ≤ 2048, small batches).
_PREFILL_LENS = (128, 256, 512, 1024, 2048)
_DECODE_GRID = tuple((b, c) for b in (1, 8, 32, 64) for c in (256, 1024, 2048))


def published_step_table(model: str, tp: int) -> Profile:
    """A step-time table from a published fit in `catalog/step_fits.yaml` (DistServe's A100 profiles)."""
    text = resources.files("tierwise.planning").joinpath("catalog", "step_fits.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    try:
        fit = data["fits"][model][tp]
    except KeyError:
        known = ", ".join(f"{m} TP{t}" for m, tps in data["fits"].items() for t in tps)
        raise KeyError(f"no published step fit for {model} TP{tp}; known: {known}") from None
    (pa, pb, pc), (da, db, dc) = fit["prefill"], fit["decode"]
    return Profile(
        gpu=data["gpu"],
        model=model,
        tp=tp,
        method={"source": data["source"], "note": "evaluated from the published fitted forms"},
        prefill=[PrefillPoint(batch=1, prompt_len=n, ms=pa + pb * n + pc * n * n) for n in _PREFILL_LENS],
        decode=[DecodePoint(batch=b, context=c, ms=da + db * b * c + dc * b) for b, c in _DECODE_GRID],
    )

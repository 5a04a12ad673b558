"""Measured step-time profiles: the JSON schema, a step model fitted to one, and the error of the roofline.

A profile overrides the roofline defaults for its (GPU, model, TP): `FittedStepModel.from_profile(p)` fits
DistServe's step forms by least squares — prefill ms = a + b·Σt + c·Σt², decode ms = a + b·batch + c·Σcontext.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tierwise.planning.perf_model import StepModel

SCHEMA = "tierwise-profile/1"


class PrefillPoint(BaseModel):
    """One measured prefill step: `batch` sequences of `prompt_len` tokens each."""

    model_config = ConfigDict(extra="forbid")
    batch: int = Field(ge=1)
    prompt_len: int = Field(ge=1)
    ms: float = Field(gt=0)


class DecodePoint(BaseModel):
    """One measured decode step: `batch` sequences, each attending over `context` cached tokens."""

    model_config = ConfigDict(extra="forbid")
    batch: int = Field(ge=1)
    context: int = Field(ge=1)
    ms: float = Field(gt=0)


class Profile(BaseModel):
    """Measured step times of one model architecture on one GPU type (see docs/planning.md)."""

    model_config = ConfigDict(extra="forbid")
    schema_: str = Field(SCHEMA, alias="schema")
    gpu: str  # catalog GPU name, e.g. "h100"
    device_name: str = ""  # what the driver reported, e.g. "NVIDIA H100 80GB HBM3"
    model: str  # catalog model name
    dtype: str = "bfloat16"
    quant: str = "bf16"  # catalog quantization the measurement corresponds to
    tp: int = 1
    method: dict[str, Any] = Field(default_factory=dict)  # how it was measured (compile mode, repeats, versions)
    prefill: list[PrefillPoint] = Field(default_factory=list)
    decode: list[DecodePoint] = Field(default_factory=list)

    def dump(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(by_alias=True), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Profile:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def _fit(columns: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    design = np.column_stack([np.ones_like(y), *columns])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef


class FittedStepModel:
    """A step model fitted to a measured profile (DistServe's forms); used instead of the roofline."""

    def __init__(self, prefill_coef: np.ndarray, decode_coef: np.ndarray) -> None:
        self.prefill_coef, self.decode_coef = prefill_coef, decode_coef

    @classmethod
    def from_profile(cls, profile: Profile) -> FittedStepModel:
        if len(profile.prefill) < 3 or len(profile.decode) < 3:
            raise ValueError("a profile needs at least 3 prefill and 3 decode points to fit")
        p_tok = np.array([p.batch * p.prompt_len for p in profile.prefill], dtype=float)
        p_sq = np.array([p.batch * p.prompt_len**2 for p in profile.prefill], dtype=float)
        d_b = np.array([d.batch for d in profile.decode], dtype=float)
        d_ctx = np.array([d.batch * d.context for d in profile.decode], dtype=float)
        return cls(
            _fit([p_tok, p_sq], np.array([p.ms for p in profile.prefill])),
            _fit([d_b, d_ctx], np.array([d.ms for d in profile.decode])),
        )

    def prefill_ms(self, tokens: int, *, sq_tokens: int, batch: int = 1) -> float:
        a, b, c = self.prefill_coef
        return max(float(a + b * tokens + c * sq_tokens), 1e-3)

    def decode_ms(self, batch: int, context_sum: int) -> float:
        a, b, c = self.decode_coef
        return max(float(a + b * batch + c * context_sum), 1e-3)


class ProfileError(BaseModel):
    """How far a step model is from a measured profile: absolute relative errors per point."""

    model_config = ConfigDict(extra="forbid")
    prefill: list[float]
    decode: list[float]
    rows: list[dict[str, Any]]

    @property
    def median_all(self) -> float:
        return float(np.median(self.prefill + self.decode))

    def summary(self) -> dict[str, float]:
        def stats(xs: list[float]) -> tuple[float, float]:
            return (float(np.median(xs)), float(np.max(xs))) if xs else (float("nan"), float("nan"))

        (pm, px), (dm, dx) = stats(self.prefill), stats(self.decode)
        return {
            "prefill_median": pm,
            "prefill_max": px,
            "decode_median": dm,
            "decode_max": dx,
            "all_median": self.median_all,
        }


def profile_error(profile: Profile, model: StepModel) -> ProfileError:
    """Relative error |predicted − measured| / measured of `model` at every point of `profile`."""
    rows: list[dict[str, Any]] = []
    pre: list[float] = []
    dec: list[float] = []
    for p in profile.prefill:
        pred = model.prefill_ms(p.batch * p.prompt_len, sq_tokens=p.batch * p.prompt_len**2, batch=p.batch)
        pre.append(abs(pred - p.ms) / p.ms)
        rows.append(
            {
                "phase": "prefill",
                "batch": p.batch,
                "length": p.prompt_len,
                "measured_ms": p.ms,
                "predicted_ms": pred,
                "error": pre[-1],
            }
        )
    for d in profile.decode:
        pred = model.decode_ms(d.batch, d.batch * d.context)
        dec.append(abs(pred - d.ms) / d.ms)
        rows.append(
            {
                "phase": "decode",
                "batch": d.batch,
                "length": d.context,
                "measured_ms": d.ms,
                "predicted_ms": pred,
                "error": dec[-1],
            }
        )
    return ProfileError(prefill=pre, decode=dec, rows=rows)

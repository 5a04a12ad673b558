"""Workload description and seeded samplers: token-length distributions and (diurnal) Poisson arrivals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

SECONDS_PER_DAY = 86_400.0


class TokenDist(BaseModel):
    """A token-count distribution: `lognormal` (mean, cv) or `fixed` (mean), clipped to [min, max]."""

    model_config = ConfigDict(extra="forbid")
    dist: str = "lognormal"
    mean: float = Field(gt=0)
    cv: float = Field(1.0, ge=0)
    min: int = Field(1, ge=1)
    max: int = Field(32_768, ge=1)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        try:
            sampler = _SAMPLERS[self.dist]
        except KeyError:
            raise ValueError(f"unknown distribution {self.dist!r}; known: {', '.join(_SAMPLERS)}") from None
        return np.clip(np.rint(sampler(self, n, rng)), self.min, self.max).astype(np.int64)


def _lognormal(d: TokenDist, n: int, rng: np.random.Generator) -> np.ndarray:
    sigma2 = np.log1p(d.cv**2)
    return rng.lognormal(np.log(d.mean) - sigma2 / 2, np.sqrt(sigma2), n)


def _fixed(d: TokenDist, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.full(n, d.mean)


_SAMPLERS: dict[str, Callable[[TokenDist, int, np.random.Generator], np.ndarray]] = {
    "lognormal": _lognormal,
    "fixed": _fixed,
}


class Workload(BaseModel):
    """The fleet's demand: devices, requests per device per day, diurnal peak/mean ratio, token lengths."""

    model_config = ConfigDict(extra="forbid")
    devices: int = Field(gt=0)
    requests_per_device_per_day: float = Field(gt=0)
    peak_factor: float = Field(2.0, ge=1.0, le=2.0)  # peak-hour rate / daily mean rate (cosine day: ≤ 2)
    prompt_tokens: TokenDist = TokenDist(mean=800, cv=1.0, max=8192)
    output_tokens: TokenDist = TokenDist(mean=400, cv=1.0, max=4096)

    def mean_rate(self, cloud_share: float) -> float:
        """Mean cloud request rate (requests per second) over the day."""
        return self.devices * self.requests_per_device_per_day * cloud_share / SECONDS_PER_DAY

    def peak_rate(self, cloud_share: float) -> float:
        return self.mean_rate(cloud_share) * self.peak_factor


def poisson_arrivals(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` arrival times (s) of a Poisson process with `rate` requests per second."""
    return np.cumsum(rng.exponential(1.0 / rate, n))


def diurnal_arrivals(
    mean_rate: float,
    *,
    peak_factor: float,
    rng: np.random.Generator,
    duration: float = SECONDS_PER_DAY,
    peak_at: float = 20 * 3600.0,
) -> np.ndarray:
    """Arrival times over a day whose rate follows a cosine: mean `mean_rate`, maximum `peak_factor`×mean.

    Drawn by thinning a Poisson process at the peak rate (Lewis & Shedler), so it is exact and seeded.
    """
    peak = mean_rate * peak_factor
    n = rng.poisson(peak * duration)
    t = np.sort(rng.uniform(0.0, duration, n))
    rate = mean_rate * (1 + (peak_factor - 1) * np.cos(2 * np.pi * (t - peak_at) / SECONDS_PER_DAY))
    return t[rng.uniform(0.0, peak, n) < rate]

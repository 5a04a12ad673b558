"""Published serving measurements (`catalog/measurements.yaml`): operating points with their conditions.

Each point is one published run — MLPerf Inference results, vLLM's performance dashboard, NVIDIA NIM's benchmark
tables — with the engine, GPU, TP degree, precision, request lengths, load (arrival rate, closed-loop concurrency
or a fixed batch) and the measured throughput and latencies, all with the file or page they come from.
Usage: `points = load_measurements().points; points[0].measured.tokens_per_s`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierwise.planning.workload import TokenDist

Scenario = Literal["offline", "server", "batch", "closed_loop"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dataset(_Strict):
    """A benchmark's request lengths: the output mean comes from each run (tokens/s ÷ samples/s)."""

    source: str
    prompt: TokenDist
    output: dict[str, float | str]  # TokenDist fields but `mean`, which each point supplies
    assumptions: list[str] = []


class Measured(_Strict):
    """What the source reports. Throughputs are for the whole system (all `gpus`), latencies in ms."""

    samples_per_s: float | None = None
    tokens_per_s: float | None = None  # output tokens per second
    ttft_ms_mean: float | None = None
    ttft_ms_p99: float | None = None
    tpot_ms_mean: float | None = None  # time per output token after the first (NIM: inter-token latency)
    tpot_ms_p99: float | None = None
    latency_ms: float | None = None  # batch runs: the whole batch's end-to-end latency


class Constraint(_Strict):
    """A server scenario's latency constraint (MLPerf: p99 TTFT and p99 of per-request TPOT)."""

    ttft_ms: float = Field(gt=0)
    tpot_ms: float = Field(gt=0)
    quantile: float = Field(0.99, gt=0, lt=1)


class OperatingPoint(_Strict):
    """One published run and everything needed to replay it."""

    id: str
    source: str
    config: str
    engine: str  # engine class the calibration groups by: tensorrt-llm, vllm, nim
    system: str
    gpu: str
    gpus: int = Field(ge=1)
    tp: int = Field(ge=1)
    model: str
    quant: str
    kv_bits: float
    scenario: Scenario
    dataset: str | None = None
    prompt: TokenDist | None = None
    output: TokenDist | None = None
    batch: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1)
    max_batch: int = Field(ge=1)
    max_prefill_tokens: int = Field(ge=1)
    slo: Constraint | None = None
    measured: Measured
    assumptions: list[str] = []
    calibrate: bool = True  # False: shown, but neither fitted nor counted as held out (a condition is unmodelled)

    @model_validator(mode="after")
    def _scenario_has_its_load(self) -> OperatingPoint:
        loads = {
            "server": self.slo and self.measured.samples_per_s,
            "batch": self.batch,
            "closed_loop": self.concurrency,
        }
        if self.scenario in loads and not loads[self.scenario]:
            raise ValueError(
                f"{self.id}: a {self.scenario} point needs its load (slo and samples_per_s, batch, concurrency)"
            )
        if self.dataset is None and (self.prompt is None or self.output is None):
            raise ValueError(f"{self.id}: give a dataset or both prompt and output lengths")
        return self

    @property
    def replicas(self) -> int:
        return self.gpus // self.tp

    @property
    def measured_throughput(self) -> float:
        """System output tokens/s the source reports (a batch run's from its latency)."""
        m = self.measured
        if m.tokens_per_s is not None:
            return m.tokens_per_s
        if m.latency_ms is not None and self.batch and self.output:
            return self.batch * self.output.mean / (m.latency_ms / 1000) * self.replicas
        raise ValueError(f"{self.id}: no throughput figure")


class Measurements(_Strict):
    datasets: dict[str, Dataset]
    points: list[OperatingPoint]

    def lengths(self, point: OperatingPoint) -> tuple[TokenDist, TokenDist]:
        """(prompt, output) length distributions for a point; a dataset's output mean is the run's own [d]."""
        if point.dataset is None:
            assert point.prompt is not None and point.output is not None
            return point.prompt, point.output
        ds = self.datasets[point.dataset]
        m = point.measured
        if not (m.tokens_per_s and m.samples_per_s):
            raise ValueError(f"{point.id}: a dataset point needs tokens_per_s and samples_per_s for its output mean")
        output = TokenDist.model_validate({**ds.output, "mean": m.tokens_per_s / m.samples_per_s})
        return ds.prompt, output

    def assumptions(self, point: OperatingPoint) -> list[str]:
        ds = self.datasets[point.dataset].assumptions if point.dataset else []
        return [*ds, *point.assumptions]


@cache
def load_measurements() -> Measurements:
    """The shipped published measurements (cached: immutable)."""
    text = resources.files("tierwise.planning").joinpath("catalog", "measurements.yaml").read_text(encoding="utf-8")
    data = Measurements.model_validate(yaml.safe_load(text))
    unknown = {p.dataset for p in data.points if p.dataset and p.dataset not in data.datasets}
    if unknown:
        raise ValueError(f"measurements.yaml: unknown datasets {sorted(unknown)}")
    return data

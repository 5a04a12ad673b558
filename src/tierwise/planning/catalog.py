"""The catalog: GPUs, device classes, model architectures and quantizations, each number with its source.

Usage: `cat = load_catalog(); cat.gpu("h100").bandwidth_tbs`. Data lives in `catalog/*.yaml` in the package.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

Source = str | dict[str, str]


class _Sourced(BaseModel):
    """A catalog entry whose numbers each carry a source (one string for all, or a map with `default`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    source: Source

    def source_of(self, field: str) -> str | None:
        """The source of one numeric field, or None when the entry does not give one."""
        if isinstance(self.source, str):
            return self.source
        return self.source.get(field) or self.source.get("default")

    def numeric_fields(self) -> dict[str, float]:
        """The entry's numbers (non-null ints and floats, booleans excluded)."""
        return {k: v for k, v in self.model_dump().items() if isinstance(v, int | float) and not isinstance(v, bool)}


class GPU(_Sourced):
    """A datacenter GPU: dense peak TFLOPS, memory (GB), bandwidth (TB/s), TDP (W), link (GB/s per direction)."""

    label: str
    bf16_tflops: float
    fp8_tflops: float | None
    memory_gb: float
    bandwidth_tbs: float
    tdp_w: float
    interconnect: str
    interconnect_gbs: float

    def tflops(self, compute: str) -> float:
        """Peak TFLOPS for a compute type (fp8 falls back to bf16 on GPUs without FP8 tensor cores)."""
        if compute == "fp8" and self.fp8_tflops:
            return self.fp8_tflops
        return self.bf16_tflops


class Device(_Sourced):
    """A device class: RAM (GB) and memory bandwidth (GB/s), and the family its efficiency comes from."""

    label: str
    family: str
    ram_gb: float
    bandwidth_gbs: float


class Family(BaseModel):
    """Decode bandwidth efficiency shared by every device of a family."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    decode_bandwidth: float
    source: str


class GPUEfficiency(BaseModel):
    """Efficiency factors shared by all datacenter GPUs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    decode_bandwidth: float
    prefill_compute: float
    step_overhead_ms: float
    allreduce_latency_us: float
    source: dict[str, str]


class ModelArch(_Sourced):
    """A transformer architecture: sizes in billions of parameters, shapes from the model's config."""

    arch: str
    params_b: float
    active_params_b: float | None = None
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int | None
    vocab: int
    context: int
    tied_embeddings: bool
    experts: int | None = None
    experts_per_token: int | None = None
    kv_dim_override: int | None = None
    outcome_name: str | None = None

    @property
    def embedding_params(self) -> float:
        """Parameters in the embedding and output head tables (one table when tied)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def head_params(self) -> float:
        """Parameters read once per decoded token by the output head."""
        return float(self.vocab * self.hidden)

    @property
    def kv_elems_per_token(self) -> int:
        """KV-cache elements stored per token, all layers."""
        per_layer = self.kv_dim_override or 2 * self.kv_heads * self.head_dim
        return per_layer * self.layers


class Quantization(_Sourced):
    """Bits per weight for the body and the embedding/head, and the tensor-core type prefill runs on."""

    weight_bits: float
    head_bits: float
    compute: str


class Catalog(BaseModel):
    """Every catalog table, looked up by name; errors list the valid names."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    gpus: dict[str, GPU]
    gpu_efficiency: GPUEfficiency
    devices: dict[str, Device]
    families: dict[str, Family]
    models: dict[str, ModelArch]
    quantizations: dict[str, Quantization]

    def gpu(self, name: str) -> GPU:
        return _lookup(self.gpus, name, "GPU")

    def device(self, name: str) -> Device:
        return _lookup(self.devices, name, "device")

    def family(self, name: str) -> Family:
        return _lookup(self.families, name, "device family")

    def model(self, name: str) -> ModelArch:
        return _lookup(self.models, name, "model")

    def quant(self, name: str) -> Quantization:
        return _lookup(self.quantizations, name, "quantization")


def _lookup(table: dict[str, Any], name: str, what: str) -> Any:
    try:
        return table[name.lower()]
    except KeyError:
        raise KeyError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}") from None


def _read(name: str) -> dict[str, Any]:
    text = resources.files("tierwise.planning").joinpath("catalog", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@cache
def load_catalog() -> Catalog:
    """Read the shipped catalog (cached: it is immutable)."""
    gpus, devices, models = _read("gpus.yaml"), _read("devices.yaml"), _read("models.yaml")
    return Catalog(
        gpus={g["name"]: GPU(**g) for g in gpus["gpus"]},
        gpu_efficiency=GPUEfficiency(**gpus["efficiency"]),
        devices={d["name"]: Device(**d) for d in devices["devices"]},
        families={k: Family(**v) for k, v in devices["families"].items()},
        models={m["name"]: ModelArch(**m) for m in models["models"]},
        quantizations={q["name"]: Quantization(**q) for q in models["quantizations"]},
    )

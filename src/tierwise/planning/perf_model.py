"""Step-time model: prefill is compute-bound, decode is memory-bound (a roofline with efficiency factors).

Usage:
    pm = RooflineModel.for_gpu(cat.model("llama-3.1-8b"), cat.gpu("h100"), quant=cat.quant("bf16"))
    pm.decode_ms(batch=16, context_sum=16 * 1024); pm.prefill_ms(tokens=2048, sq_tokens=2048**2)

Every step model (this one, or one fitted to a measured profile) answers the same two questions, so the
simulator does not care which it gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from tierwise.planning.catalog import GPU, Catalog, Device, GPUEfficiency, ModelArch, Quantization


class StepModel(Protocol):
    """Time of one engine step, in milliseconds."""

    def prefill_ms(self, tokens: int, *, sq_tokens: int, batch: int = 1) -> float:
        """A prefill step over `tokens` prompt tokens in `batch` sequences (`sq_tokens` = Σ length²)."""
        ...

    def decode_ms(self, batch: int, context_sum: int) -> float:
        """A decode step producing one token for each of `batch` sequences holding `context_sum` tokens."""
        ...


@dataclass(frozen=True)
class DecodeLines:
    """A decode step time as two lines in the context, per batch size, for a simulator to evaluate inline.

    `decode_ms(batch, ctx) = max(weight_ms[batch] + kv_ms·ctx, flop_ms·batch + attn_ms·ctx) + fixed_ms +
    comm_ms·batch`, in exactly that order of operations (`ms`), so an inlined copy gives the same floats.
    """

    weight_ms: list[float]  # indexed by batch size, 0 … max_batch
    kv_ms: float
    flop_ms: float
    attn_ms: float
    fixed_ms: float
    comm_ms: float

    def ms(self, batch: int, context_sum: int) -> float:
        mem = self.weight_ms[batch] + self.kv_ms * context_sum
        compute = self.flop_ms * batch + self.attn_ms * context_sum
        return max(mem, compute) + self.fixed_ms + self.comm_ms * batch


@dataclass(frozen=True)
class Hardware:
    """What the roofline needs to know about the machine one replica (TP group member) runs on."""

    name: str
    bandwidth_gbs: float
    decode_eff: float
    tflops: float | None = None  # peak for the quantization's compute type; None where prefill is not modelled
    prefill_eff: float = 1.0
    overhead_ms: float = 0.0
    link_gbs: float = 0.0
    allreduce_us: float = 0.0


def gpu_hardware(gpu: GPU, cat: Catalog, *, compute: str = "bf16", efficiency: GPUEfficiency | None = None) -> Hardware:
    """A datacenter GPU with the catalog's shared efficiency factors, or `efficiency` (e.g. calibrated ones)."""
    eff = efficiency or cat.gpu_efficiency
    return Hardware(
        name=gpu.name,
        bandwidth_gbs=gpu.bandwidth_tbs * 1000,
        decode_eff=eff.decode_bandwidth,
        tflops=gpu.tflops(compute),
        prefill_eff=eff.prefill_compute,
        overhead_ms=eff.step_overhead_ms,
        link_gbs=gpu.interconnect_gbs,
        allreduce_us=eff.allreduce_latency_us,
    )


def device_hardware(device: Device, cat: Catalog, *, bandwidth_gbs: float | None = None) -> Hardware:
    """A device class with its family's decode efficiency (prefill is not modelled on devices)."""
    family = cat.family(device.family)
    return Hardware(
        name=device.name,
        bandwidth_gbs=bandwidth_gbs or device.bandwidth_gbs,
        decode_eff=family.decode_bandwidth,
    )


class RooflineModel:
    """Roofline step times for one model × quantization × hardware × tensor-parallel degree."""

    def __init__(
        self, model: ModelArch, hw: Hardware, *, quant: Quantization, kv_bits: float = 16, tp: int = 1
    ) -> None:
        self.model, self.hw, self.quant, self.kv_bits, self.tp = model, hw, quant, kv_bits, tp
        body_total = model.params_b * 1e9 - model.embedding_params
        active = (model.active_params_b or model.params_b) * 1e9
        self._body_total = body_total
        self._body_active = active - model.embedding_params
        self._active = active
        self._weight_ms_cache: dict[int, float] = {}

    @classmethod
    def for_gpu(
        cls,
        model: ModelArch,
        gpu: GPU,
        *,
        quant: Quantization,
        cat: Catalog,
        kv_bits: float = 16,
        tp: int = 1,
        efficiency: GPUEfficiency | None = None,
    ) -> RooflineModel:
        hw = gpu_hardware(gpu, cat, compute=quant.compute, efficiency=efficiency)
        return cls(model, hw, quant=quant, kv_bits=kv_bits, tp=tp)

    # -- memory ---------------------------------------------------------------------------------------
    @property
    def weight_bytes(self) -> float:
        """Bytes of all weights (the whole replica, before splitting over TP ranks)."""
        return (self._body_total * self.quant.weight_bits + self.model.embedding_params * self.quant.head_bits) / 8

    @property
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes per cached token (the whole replica)."""
        return self.model.kv_elems_per_token * self.kv_bits / 8

    def _body_read_params(self, tokens: int) -> float:
        """Body parameters read in a step over `tokens` tokens: MoE experts are touched at random."""
        m = self.model
        if not m.experts or not m.experts_per_token:
            return self._body_total
        per_expert = (self._body_total - self._body_active) / (m.experts - m.experts_per_token)
        dense = self._body_active - m.experts_per_token * per_expert
        touched = m.experts * (1 - (1 - m.experts_per_token / m.experts) ** max(tokens, 1))
        return dense + touched * per_expert

    def _weight_read_bytes(self, tokens: int) -> float:
        body = self._body_read_params(tokens) * self.quant.weight_bits
        return (body + self.model.head_params * self.quant.head_bits) / 8

    # -- work of one step (whole replica): what the model moves and computes, whatever the hardware ------
    def decode_work(self, batch: int, context_sum: int) -> tuple[float, float]:
        """(bytes read, FLOPs) of a decode step: the features a per-GPU fit (hardware_fit) is linear in."""
        m = self.model
        nbytes = self._weight_read_bytes(batch) + self.kv_bytes_per_token * context_sum
        return nbytes, 2 * self._active * batch + 4 * m.layers * m.heads * m.head_dim * context_sum

    def prefill_work(self, tokens: int, sq_tokens: int) -> tuple[float, float]:
        """(bytes read, FLOPs) of a prefill step over `tokens` prompt tokens (Σ length² = `sq_tokens`)."""
        m = self.model
        flops = 2 * self._active * tokens + 2 * m.layers * m.heads * m.head_dim * sq_tokens
        return self._weight_read_bytes(tokens), flops

    # -- time -----------------------------------------------------------------------------------------
    def _allreduce_ms(self, tokens: int) -> float:
        if self.tp == 1:
            return 0.0
        msg = 2 * (self.tp - 1) / self.tp * tokens * self.model.hidden * 2  # bf16 activations, ring
        per_call = self.hw.allreduce_us / 1000 + msg / (self.hw.link_gbs * 1e9) * 1000
        return 2 * self.model.layers * per_call  # one after attention, one after the MLP

    def _mem_ms(self, nbytes: float) -> float:
        return nbytes / self.tp / (self.hw.decode_eff * self.hw.bandwidth_gbs * 1e9) * 1000

    def _compute_ms(self, flops: float) -> float:
        if self.hw.tflops is None:
            return 0.0
        return flops / self.tp / (self.hw.prefill_eff * self.hw.tflops * 1e12) * 1000

    def decode_ms(self, batch: int, context_sum: int) -> float:
        # Linear in (batch, context_sum) but for the MoE weight term: coefficients are precomputed once.
        # The simulator inlines the same expression from `decode_lines` (a call per engine step costs too much).
        c = self._decode_coef
        mem = self._weight_ms(batch) + c[0] * context_sum
        compute = c[1] * batch + c[2] * context_sum
        return max(mem, compute) + c[3] + c[4] * batch

    def decode_lines(self, max_batch: int) -> DecodeLines:
        """`decode_ms` as tables for batches up to `max_batch`: the simulator's hot loop inlines them."""
        return DecodeLines([self._weight_ms(b) for b in range(max_batch + 1)], *self._decode_coef)

    def _weight_ms(self, tokens: int) -> float:
        """Time to read the weights a step over `tokens` tokens touches (memoised: prefill and decode ask often)."""
        ms = self._weight_ms_cache.get(tokens)
        if ms is None:
            ms = self._weight_ms_cache[tokens] = self._mem_ms(self._weight_read_bytes(tokens))
        return ms

    @cached_property
    def _decode_coef(self) -> tuple[float, float, float, float, float]:
        m = self.model
        ar0 = self._allreduce_ms(0)
        return (
            self._mem_ms(self.kv_bytes_per_token),
            self._compute_ms(2 * self._active),
            self._compute_ms(4 * m.layers * m.heads * m.head_dim),
            ar0 + self.hw.overhead_ms,
            self._allreduce_ms(1) - ar0,
        )

    def prefill_ms(self, tokens: int, *, sq_tokens: int, batch: int = 1) -> float:
        if self.hw.tflops is None:
            raise ValueError(f"prefill is not modelled on {self.hw.name} (no compute figure in the catalog)")
        m = self.model
        flops = 2 * self._active * tokens + 2 * m.layers * m.heads * m.head_dim * sq_tokens
        step = max(self._compute_ms(flops), self._weight_ms(tokens))
        return step + self._allreduce_ms(tokens) + self.hw.overhead_ms

    def decode_tokens_per_s(self, *, context: int = 512) -> float:
        """Single-stream decode speed at a given context length."""
        return 1000 / self.decode_ms(1, context)

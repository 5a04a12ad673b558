from __future__ import annotations

import pytest

from tierwise.planning.catalog import Catalog
from tierwise.planning.perf_model import RooflineModel, device_hardware

# (device, model, quantization, published decode tok/s): hardware.md, with the source of each figure there.
PUBLISHED = [
    ("snapdragon-8-gen-3", "llama-3.2-1b", "q4_g32", 50.2),  # ExecuTorch, OnePlus 12
    ("a17-pro", "afm-on-device", "palette-3.7", 30.0),  # Apple ML research blog 2024
]


@pytest.mark.parametrize(("device", "model", "quant", "published"), PUBLISHED)
def test_device_decode_within_30_percent_of_published(
    cat: Catalog, device: str, model: str, quant: str, published: float
) -> None:
    # one efficiency per device family (the catalog's `phone` factor), nothing tuned per case
    pm = RooflineModel(cat.model(model), device_hardware(cat.device(device), cat), quant=cat.quant(quant))
    assert pm.decode_tokens_per_s(context=128) == pytest.approx(published, rel=0.30)


def test_other_phone_figures_same_family_factor(cat: Catalog) -> None:
    hw = device_hardware(cat.device("snapdragon-8-gen-3"), cat)
    for model, published in (("llama-3.2-3b", 19.7), ("llama-3.1-8b", 10.85)):
        pm = RooflineModel(cat.model(model), hw, quant=cat.quant("q4_g32"))
        assert pm.decode_tokens_per_s(context=128) == pytest.approx(published, rel=0.30)


def _h100(cat: Catalog, model: str = "llama-3.1-8b", *, tp: int = 1, quant: str = "bf16") -> RooflineModel:
    return RooflineModel.for_gpu(cat.model(model), cat.gpu("h100"), quant=cat.quant(quant), cat=cat, tp=tp)


def test_decode_is_memory_bound_and_grows_with_context(cat: Catalog) -> None:
    pm = _h100(cat)
    floor_ms = pm.weight_bytes / (cat.gpu("h100").bandwidth_tbs * 1e12) * 1000
    assert floor_ms < pm.decode_ms(1, 1024) < 2 * floor_ms
    assert pm.decode_ms(32, 32 * 4096) > pm.decode_ms(32, 32 * 1024) > pm.decode_ms(1, 1024)
    # batching is nearly free while memory-bound: 8 sequences cost far less than 8 steps
    assert pm.decode_ms(8, 8 * 512) < 1.5 * pm.decode_ms(1, 512)


def test_prefill_is_compute_bound_for_long_prompts(cat: Catalog) -> None:
    pm = _h100(cat)
    t1, t2 = (pm.prefill_ms(n, sq_tokens=n * n) for n in (4096, 8192))
    assert 2.0 < t2 / t1 < 2.6  # linear in tokens plus the quadratic attention term
    assert pm.prefill_ms(16, sq_tokens=256) == pytest.approx(pm.decode_ms(1, 0), rel=0.2)  # weight-read floor


def test_quantization_and_tp_cut_step_time(cat: Catalog) -> None:
    assert _h100(cat, quant="fp8").decode_ms(1, 512) < 0.6 * _h100(cat).decode_ms(1, 512)
    big = _h100(cat, "llama-3.1-70b", tp=4)
    assert big.decode_ms(1, 512) < 0.35 * _h100(cat, "llama-3.1-70b").decode_ms(1, 512)


def test_moe_reads_more_experts_as_batch_grows(cat: Catalog) -> None:
    pm = _h100(cat, "mixtral-8x7b")
    active_gb = 12.9e9 * 2 / 1e9
    assert pm._weight_read_bytes(1) / 1e9 == pytest.approx(active_gb, rel=0.05)
    assert pm._weight_read_bytes(64) == pytest.approx(pm.weight_bytes, rel=0.01)


def test_devices_do_not_model_prefill(cat: Catalog) -> None:
    pm = RooflineModel(
        cat.model("llama-3.2-1b"), device_hardware(cat.device("raspberry-pi-5"), cat), quant=cat.quant("q4_k_m")
    )
    with pytest.raises(ValueError, match="prefill"):
        pm.prefill_ms(10, sq_tokens=100)


@pytest.mark.parametrize(("model", "tp"), [("llama-3.1-8b", 1), ("llama-3.1-70b", 4), ("mixtral-8x7b", 2)])
def test_decode_lines_give_decode_ms_exactly(cat: Catalog, model: str, tp: int) -> None:
    # the simulator inlines DecodeLines.ms; it must be the same floats as decode_ms, not merely close
    pm = _h100(cat, model, tp=tp)
    lines = pm.decode_lines(64)
    assert len(lines.weight_ms) == 65
    for batch in (1, 2, 7, 33, 64):
        for context_sum in (batch, batch * 300, batch * 4096, batch * 30_000):
            assert lines.ms(batch, context_sum) == pm.decode_ms(batch, context_sum)
    if model == "mixtral-8x7b":  # MoE: a larger batch touches more experts, so reads more weights
        assert lines.weight_ms[64] > lines.weight_ms[1]

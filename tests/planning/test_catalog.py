from __future__ import annotations

import pytest

from tierwise.planning.catalog import Catalog

REQUIRED_GPUS = {"a100", "h100", "h800", "h20", "h200", "b200", "l20", "l40s", "rtx-pro-6000"}


def test_required_gpus_and_reasoning_models_present(cat: Catalog) -> None:
    assert set(cat.gpus) >= REQUIRED_GPUS
    assert {"mimo-7b", "deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b"} <= set(cat.models)
    assert {"raspberry-pi-5", "jetson-agx-orin", "snapdragon-8-gen-3", "a17-pro"} <= set(cat.devices)


def test_every_number_has_a_source(cat: Catalog) -> None:
    entries = [*cat.gpus.values(), *cat.devices.values(), *cat.models.values(), *cat.quantizations.values()]
    missing = [(e.name, f) for e in entries for f in e.numeric_fields() if not e.source_of(f)]
    assert missing == []
    assert all(f.source for f in cat.families.values())
    assert set(cat.gpu_efficiency.source) >= {"decode_bandwidth", "prefill_compute", "step_overhead_ms"}


def test_h20_trades_compute_for_bandwidth(cat: Catalog) -> None:
    h20, h100 = cat.gpu("h20"), cat.gpu("h100")
    assert h20.bf16_tflops < 0.2 * h100.bf16_tflops
    assert h20.bandwidth_tbs > h100.bandwidth_tbs
    assert cat.gpu("a100").tflops("fp8") == cat.gpu("a100").bf16_tflops  # no FP8 tensor cores


def test_model_shapes_match_parameter_counts(cat: Catalog) -> None:
    # non-embedding params of a dense Llama from its shapes ≈ the catalog's total minus embeddings
    m = cat.model("llama-3.1-8b")
    attn = m.hidden * (m.heads * m.head_dim) * 2 + m.hidden * (m.kv_heads * m.head_dim) * 2
    mlp = 3 * m.hidden * (m.intermediate or 0)
    body = m.layers * (attn + mlp)
    assert body == pytest.approx(m.params_b * 1e9 - m.embedding_params, rel=0.01)
    assert m.kv_elems_per_token == 2 * 8 * 128 * 32


def test_lookup_error_lists_names(cat: Catalog) -> None:
    with pytest.raises(KeyError, match="h100"):
        cat.gpu("h1000")

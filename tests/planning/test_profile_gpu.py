from __future__ import annotations

import pytest

from tierwise.planning.catalog import Catalog
from tierwise.planning.profile_gpu import ProfileGrid, detect_gpu, profile_model


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA H20", "h20"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx-pro-6000"),
    ],
)
def test_detect_gpu(name: str, expected: str) -> None:
    assert detect_gpu(name) == expected


def test_hf_config_has_catalog_shapes(cat: Catalog) -> None:
    pytest.importorskip("transformers")
    from tierwise.planning.profile_gpu import hf_config

    cfg = hf_config(cat.model("deepseek-r1-distill-qwen-1.5b"))
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_key_value_heads, cfg.head_dim) == (28, 1536, 2, 128)
    with pytest.raises(ValueError, match="buildable"):
        hf_config(cat.model("deepseek-coder-v2"))


@pytest.mark.slow
def test_cpu_profile_of_a_tiny_architecture(cat: Catalog) -> None:
    """The profiler's whole code path (build from config, prefill, StaticCache decode) on the CPU."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    tiny = cat.model("qwen2.5-1.5b").model_copy(
        update={"hidden": 64, "heads": 4, "kv_heads": 2, "head_dim": 16, "intermediate": 128, "vocab": 512}
    )
    grid = ProfileGrid(decode_batches=[1, 2], decode_contexts=[32], prompt_lens=[8, 32], repeats=2, warmup=1)
    prof = profile_model(tiny, grid=grid, device="cpu", layers=2)
    assert [p.prompt_len for p in prof.prefill] == [8, 32]
    assert [(d.batch, d.context) for d in prof.decode] == [(1, 32), (2, 32)]
    assert all(p.ms > 0 for p in [*prof.prefill, *prof.decode])
    assert prof.gpu == "cpu" and prof.method["compile"] == "eager" and prof.method["layers"] == 2


def test_cuda_required_unless_cpu(cat: Catalog) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="no CUDA"):
        profile_model(cat.model("llama-3.2-1b"), grid=ProfileGrid(), device="cuda")

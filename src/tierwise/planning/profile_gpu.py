"""Measure real prefill and decode step times of a model architecture with random weights (PyTorch).

The model class is built from a transformers config derived from the catalog — nothing is downloaded. Decode
follows what was seen on the lent H100: eager decode is CPU-bound (~100 ms/step for 8B at any batch), so decode
runs on a `StaticCache` through `torch.compile(mode="reduce-overhead")` (CUDA graphs), one compile per
(batch, cache length) shape. A static cache's attention reads the whole cache, so each decode point's `context`
is the cache length. Prefill is timed eagerly with `logits_to_keep=1` (long prefills are compute-bound).

Usage: `profile_model(load_catalog().model("llama-3.1-8b"), grid=ProfileGrid()).dump(Path("p.json"))`
torch and transformers are imported inside the functions (the `gpu` extra).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tierwise.planning.catalog import ModelArch
from tierwise.planning.profile import DecodePoint, PrefillPoint, Profile

# catalog arch → transformers config class; phi3 has Llama's shapes (fused qkv only), so it is timed as Llama.
_CONFIG_CLASSES: dict[str, str] = {
    "llama": "LlamaConfig",
    "phi3": "LlamaConfig",
    "mistral": "MistralConfig",
    "qwen2": "Qwen2Config",
    "gemma": "GemmaConfig",
    "mixtral": "MixtralConfig",
}
# substring of torch.cuda.get_device_name() → catalog GPU; longest first so "H200" is not read as "H20".
_GPU_NAMES: list[tuple[str, str]] = [
    ("RTX PRO 6000", "rtx-pro-6000"),
    ("H200", "h200"),
    ("H100", "h100"),
    ("H800", "h800"),
    ("H20", "h20"),
    ("A100", "a100"),
    ("B200", "b200"),
    ("L40S", "l40s"),
    ("L20", "l20"),
]


@dataclass(frozen=True)
class ProfileGrid:
    """Which points to measure, and how many timed repetitions per point (the median is kept)."""

    decode_batches: list[int] = field(default_factory=lambda: [1, 8, 32, 64])
    decode_contexts: list[int] = field(default_factory=lambda: [1024, 4096])
    prompt_lens: list[int] = field(default_factory=lambda: [128, 512, 2048, 4096, 8192])
    repeats: int = 10
    warmup: int = 3


def hf_config(arch: ModelArch, *, layers: int | None = None) -> Any:
    """A transformers config with the catalog architecture's shapes (`layers` overrides depth, for tests)."""
    import transformers

    try:
        cls = getattr(transformers, _CONFIG_CLASSES[arch.arch])
    except KeyError:
        known = ", ".join(sorted(_CONFIG_CLASSES))
        raise ValueError(f"cannot build {arch.name} (arch {arch.arch!r}); buildable: {known}") from None
    if arch.intermediate is None:
        raise ValueError(f"{arch.name}: the catalog has no intermediate size, so it cannot be built")
    kwargs: dict[str, Any] = dict(
        vocab_size=arch.vocab,
        hidden_size=arch.hidden,
        intermediate_size=arch.intermediate,
        num_hidden_layers=layers or arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads,
        head_dim=arch.head_dim,
        max_position_embeddings=arch.context,
        tie_word_embeddings=arch.tied_embeddings,
    )
    if arch.experts:
        kwargs.update(num_local_experts=arch.experts, num_experts_per_tok=arch.experts_per_token)
    return cls(**kwargs)


def detect_gpu(device_name: str) -> str:
    """The catalog GPU name for a CUDA device name."""
    for needle, name in _GPU_NAMES:
        if needle.lower() in device_name.lower():
            return name
    raise ValueError(f"GPU {device_name!r} is not in the catalog; pass --gpu")


def _timer(device: str) -> Callable[[Callable[[], object], int, int], float]:
    import torch

    def run(fn: Callable[[], object], warmup: int, repeats: int) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    return run


def _build(arch: ModelArch, *, device: str, layers: int | None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    cfg = hf_config(arch, layers=layers)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def _prefill_points(model: Any, grid: ProfileGrid, *, device: str, log: Callable[[str], None]) -> list[PrefillPoint]:
    import torch

    run, out = _timer(device), []
    for n in grid.prompt_lens:
        ids = torch.randint(0, model.config.vocab_size, (1, n), device=device)

        def forward(ids: Any = ids) -> object:
            return model(input_ids=ids, logits_to_keep=1)

        with torch.inference_mode():
            ms = run(forward, max(grid.warmup, 1), grid.repeats)
        out.append(PrefillPoint(batch=1, prompt_len=n, ms=ms))
        log(f"prefill 1×{n}: {ms:.2f} ms")
    return out


def _cache_argument(model: Any) -> str:
    """The keyword a model's forward takes its KV cache by: `cache` from transformers 5.24 on (which warns about
    `past_key_values`), `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _decode_points(
    model: Any, grid: ProfileGrid, *, device: str, compile: bool, log: Callable[[str], None]
) -> list[DecodePoint]:
    import torch
    from transformers import StaticCache

    forward = torch.compile(model.forward, mode="reduce-overhead") if compile else model.forward
    cache_arg = _cache_argument(model)
    run, out = _timer(device), []
    for batch in grid.decode_batches:
        for ctx in grid.decode_contexts:
            cache = StaticCache(config=model.config, max_cache_len=ctx)
            ids = torch.randint(0, model.config.vocab_size, (batch, 1), device=device)
            pos = torch.tensor([ctx - 1], device=device)  # the last slot: attention spans the whole cache

            def step(ids: Any = ids, pos: Any = pos, cache: Any = cache) -> object:
                if compile:
                    torch.compiler.cudagraph_mark_step_begin()
                return forward(input_ids=ids, cache_position=pos, use_cache=True, **{cache_arg: cache})

            t0 = time.perf_counter()
            with torch.inference_mode():
                ms = run(step, grid.warmup, grid.repeats)
            out.append(DecodePoint(batch=batch, context=ctx, ms=ms))
            log(f"decode {batch}×{ctx}: {ms:.3f} ms (point took {time.perf_counter() - t0:.0f} s)")
            del cache
    return out


def profile_model(
    arch: ModelArch,
    *,
    grid: ProfileGrid,
    gpu_name: str | None = None,
    device: str = "cuda",
    compile: bool = True,
    layers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Measure the grid on `device` and return the profile (compile only applies on CUDA)."""
    import torch
    import transformers

    log = progress or (lambda _msg: None)
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: run on a GPU machine, or pass --device cpu to try the code path")
    compile = compile and device == "cuda"
    device_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    gpu = gpu_name or (detect_gpu(device_name) if device == "cuda" else "cpu")
    torch.manual_seed(0)
    model = _build(arch, device=device, layers=layers)
    prefill = _prefill_points(model, grid, device=device, log=log)
    decode = _decode_points(model, grid, device=device, compile=compile, log=log)
    method = {
        "weights": "random bf16 (built from config, nothing downloaded)",
        "attention": "sdpa",
        "prefill": "eager, logits_to_keep=1, batch 1",
        "decode": "StaticCache; context = cache length",
        "compile": "torch.compile reduce-overhead (CUDA graphs)" if compile else "eager",
        "repeats": grid.repeats,
        "warmup": grid.warmup,
        "statistic": "median",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "layers": layers or arch.layers,
    }
    return Profile(gpu=gpu, device_name=device_name, model=arch.name, method=method, prefill=prefill, decode=decode)

"""Write a tiny llama-architecture GGUF model with random weights: a real file llama.cpp loads in milliseconds.

The output is gibberish, but every part of the path is real: the GGUF container, the SentencePiece-style
vocabulary, the chat template, llama.cpp's sampling and logprobs. Same seed, same bytes.

Usage::

    path = write_tiny_gguf(tmp_path / "tiny.gguf", seed=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Plain English words: with every prefix of each "▁word" in the vocabulary, SentencePiece merges can build them.
_WORDS = tuple(
    (
        "the of and to in is you that it he was for on are as with his they at be this have from or one had "
        "by word but not what all were we when your can said there use an each which she do how their if will "
        "up other about out many then them these so some her would make like him into time has look two more "
        "write go see number no way could people my than first water been call who oil its now find long down "
        "day did get come made may part hello world model edge cloud device phone answer question token fast "
        "small large"
    ).split()
)

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class TinyLlamaShape:
    embedding: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    feed_forward: int = 128
    context: int = 1024


def _vocabulary() -> tuple[list[str], list[float], list[int]]:
    import gguf

    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces: list[str] = []
    for word in _WORDS:
        full = "▁" + word
        pieces += [full[:i] for i in range(1, len(full) + 1)]
    pieces += list("abcdefghijklmnopqrstuvwxyz.,!?:;'\"-0123456789<>|/")
    seen = set(tokens)
    unique = [p for p in dict.fromkeys(pieces) if p not in seen]
    tokens += unique
    types += [gguf.TokenType.NORMAL] * len(unique)
    # SentencePiece prefers higher scores: longer pieces must win so words come out whole.
    scores = [0.0] * (3 + 256) + [float(len(p)) for p in unique]
    return tokens, scores, [int(t) for t in types]


def write_tiny_gguf(
    path: str | Path, *, seed: int = 0, shape: TinyLlamaShape | None = None, weight_std: float = 0.5
) -> Path:
    """Write the model to `path` and return it. `weight_std` ≈ 0.5 gives peaky, varied output."""
    import gguf

    shape = shape or TinyLlamaShape()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens, scores, types = _vocabulary()
    d, head_dim = shape.embedding, shape.embedding // shape.heads
    kv_dim = shape.kv_heads * head_dim

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tierwise-tiny-llama")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(d)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.feed_forward)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    def weight(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims) * weight_std).astype(np.float32)

    ones = np.ones(d, dtype=np.float32)
    writer.add_tensor("token_embd.weight", weight(len(tokens), d))
    for i in range(shape.layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(d, d))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(kv_dim, d))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(kv_dim, d))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(d, d))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(shape.feed_forward, d))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(shape.feed_forward, d))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(d, shape.feed_forward))
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", weight(len(tokens), d))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main(argv: list[str] | None = None) -> None:
    """`python -m tierwise.testing.tiny_gguf PATH [--seed N]`: write a tiny random model for smoke tests."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_tiny_gguf(args.path, seed=args.seed))


if __name__ == "__main__":
    main()

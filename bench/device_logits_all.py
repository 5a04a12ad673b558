"""What `logits_all` costs the device tier: prefill time and the logits buffer, SmolLM2-135M-Instruct (the bundled
model) on this machine's CPU, with llama.cpp keeping every position's logits and with it keeping the last only.

    python bench/device_logits_all.py [--model PATH] [--n-ctx 2048] [--repeat 40]

Device confidence (the cascade's logprob features) needs only the last position's logits; `logits_all: true` is
needed only to answer requests that ask for `logprobs`.
"""

from __future__ import annotations

import argparse
import time

from tierwise.bundled import smollm2_path


def main() -> None:
    from llama_cpp import Llama

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a GGUF file (default: the bundled SmolLM2)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=40, help="copies of the prompt sentence (~7 tokens each)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    path = args.model or str(smollm2_path())
    prompt = ("Explain the water cycle in detail. " * args.repeat).encode()
    for logits_all in (True, False):
        model = Llama(model_path=path, n_ctx=args.n_ctx, logits_all=logits_all, verbose=False)
        tokens = model.tokenize(prompt)
        times = []
        for _ in range(args.runs):
            model.reset()
            started = time.perf_counter()
            model.eval(tokens)
            times.append(time.perf_counter() - started)
        print(f"logits_all={logits_all}: prefill of {len(tokens)} tokens {1000 * min(times):.0f} ms (best of "
              f"{args.runs}), logits buffer {model.scores.nbytes / 1e6:.0f} MB")
        del model


if __name__ == "__main__":
    main()

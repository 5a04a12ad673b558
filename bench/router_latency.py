"""Learned-router benchmarks: training time on the whole MMLU-Pro table, and decision latency p50/p99
(embedding included, every prompt new so the cache never answers) for 50-, 200- and 2,000-token prompts.

    python bench/router_latency.py [--data ../shared/datasets/mmlu_pro/outcomes.csv.gz] [--n 200]

Prints a markdown table; figures go to bench/RESULTS.md (## Router).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tierwise.outcomes import load_outcomes
from tierwise.routing.embed import shared_encoder
from tierwise.routing.features import FeaturizerSettings
from tierwise.routing.learned import LearnedRouter
from tierwise.routing.router import RouteRequest, TierView
from tierwise.routing.train import parse_tiers, train_router

TIERS = "device=Phi-3-mini-4k-instruct,edge=Llama-3.1-8B-Instruct,cloud=Llama-3.1-70B-Instruct"
VIEWS = [
    TierView("device", "device", 0.0, 0.0),
    TierView("edge", "edge", 0.02, 0.06),
    TierView("cloud", "cloud", 0.55, 2.19),
]


def prompts_of_length(corpus: list[str], tokens: int, n: int) -> list[str]:
    """`n` distinct prompts of about `tokens` MiniLM word pieces, cut from real MMLU-Pro questions."""
    tok = shared_encoder(512)._tok  # untruncated counting needs a fresh tokenizer setting
    tok.no_truncation()
    out, i = [], 0
    while len(out) < n:
        text = f"[{len(out)}] "
        while len(tok.encode(text).ids) < tokens:
            text += corpus[i % len(corpus)] + "\n"
            i += 1
        ids = tok.encode(text).ids[1 : tokens + 1]
        out.append(f"[{len(out)}] " + tok.decode(ids))
    tok.enable_truncation(max_length=512)
    return out


def time_decisions(router: LearnedRouter, prompts: list[str]) -> tuple[float, float]:
    router.decide(RouteRequest(prompts[0], prompts[0]), VIEWS)  # warm-up (not counted)
    times = []
    for p in prompts[1:]:
        t0 = time.perf_counter()
        router.decide(RouteRequest(p, p), VIEWS)
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/mmlu_pro/outcomes.csv.gz")
    ap.add_argument("--n", type=int, default=200, help="decisions per prompt length")
    args = ap.parse_args()
    table = load_outcomes(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rf = train_router(table, parse_tiers(TIERS), target_cloud_share=0.2, cache_dir=None)
        train_s = time.perf_counter() - t0
        path = rf.save(Path(tmp) / "router.json")
        print(
            f"training on {rf.training['rows']} rows (cold embeddings, 3-fold CV over "
            f"{len(rf.training['cross_validation'])} candidates): {train_s:.1f} s; "
            f"chose {rf.training['chosen']}; held-out cloud share {rf.calibration['heldout_cloud_share']:.3f}"
        )
        static = LearnedRouter.from_path(path)
        ctx_file = dataclasses.replace(static.file, featurizer=FeaturizerSettings(embedding="contextual"))
        contextual = LearnedRouter(ctx_file)  # same predictor: timing only, not a trained contextual router
        print(
            f"\nthreads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
            f"cores {os.cpu_count()}\n"
        )
        print("| prompt tokens | embedding | p50 ms | p99 ms |\n|---|---|---|---|")
        for tokens in (50, 200, 2000):
            prompts = prompts_of_length(table.queries, tokens, args.n + 1)
            for name, router in (("static", static), ("contextual (first 256 tokens)", contextual)):
                n = len(prompts) if name == "static" else min(len(prompts), 41)
                p50, p99 = time_decisions(router, prompts[:n])
                print(f"| {tokens} | {name} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()

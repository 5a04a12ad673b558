"""The cascade end to end: RouteLLM's GSM8K replayed through the gateway, held-out fold by fold.

For each of 5 folds (the same grouped folds as `tierwise eval`, decontaminated rows): train the cascade check on
the other four (`train_cascade`, escalating `--escalate-share` of held-out answers), start two replay backends on
127.0.0.1 that answer each question with the recorded answer of Mixtral (device tier) or GPT-4 (cloud tier),
start the gateway with `router.cascade`, and ask every held-out question through it with the openai SDK. The
gateway's choice is scored with the recorded outcome of the tier that answered.

Prints accuracy, escalation share and PGR served end to end, next to what `tierwise eval --cascade`'s metric
code gives for the same held-out check scores at the same share (they must agree: same model, same rows), and
the gateway's latency per request with the check in the path.

    python bench/cascade_replay.py [--data ../shared/datasets/routellm/gsm8k/gsm8k_responses.csv]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tierwise.config import settings_from_dict
from tierwise.evaluation.folds import kfold_splits
from tierwise.evaluation.setup import evaluation_table
from tierwise.gateway.app import create_app
from tierwise.outcomes import OutcomeTable
from tierwise.routing.cascade import train_cascade
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "routellm" / "gsm8k" / "gsm8k_responses.csv"
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def _replay(table: OutcomeTable, model: str) -> StubBehavior:
    answers = (table.responses or {})[model]
    return StubBehavior(replies=dict(zip(table.queries, answers, strict=True)), record=False)


def _serve_fold(table: OutcomeTable, test: np.ndarray, cascade_file: Path, *, clients: int) -> list[tuple[str, float]]:
    """(tier that answered, seconds) for each held-out row, in order."""
    import openai

    with (
        serve_in_thread(create_stub_app(_replay(table, WEAK))) as weak_url,
        serve_in_thread(create_stub_app(_replay(table, STRONG))) as strong_url,
    ):
        tiers = [
            {"name": "device", "location": "device", "backend": "openai", "base_url": f"{weak_url}/v1", "model": "m"},
            {
                "name": "cloud",
                "location": "cloud",
                "backend": "openai",
                "base_url": f"{strong_url}/v1",
                "model": "m",
                "cost": {"input_per_mtok": 10.0, "output_per_mtok": 30.0},
            },
        ]
        settings = settings_from_dict({"tiers": tiers, "router": {"cascade": {"model": str(cascade_file)}}})
        with serve_in_thread(create_app(settings)) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=60)

            def ask(row: int) -> tuple[str, float]:
                started = time.perf_counter()
                reply = client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": table.queries[row]}]
                )
                return str(reply.model_extra["tierwise"]["tier"]), time.perf_counter() - started  # type: ignore[index]

            with ThreadPoolExecutor(clients) as pool:
                return list(pool.map(ask, test.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--escalate-share", type=float, default=0.3)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    table = evaluation_table(args.data, [WEAK, STRONG])
    weak, strong = table.scores[:, 0], table.scores[:, 1]
    served_strong = np.zeros(len(table), dtype=bool)
    predicted_strong = np.zeros(len(table), dtype=bool)
    seconds: list[float] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k, split in enumerate(kfold_splits(table, folds=5, seed=0)):
            check = train_cascade(table.subset(split.train), WEAK, escalate_share=args.escalate_share)
            path = check.save(Path(tmp) / f"cascade-{k}.json")
            answers = (table.responses or {})[WEAK]
            # what the check decides offline, row by row: the served run must match it exactly
            predicted_strong[split.test] = [check.should_escalate(table.queries[i], answers[i])[0] for i in split.test]
            results = _serve_fold(table, split.test, path, clients=args.clients)
            served_strong[split.test] = [tier == "cloud" for tier, _ in results]
            seconds += [s for _, s in results]
            print(
                f"fold {k}: {len(split.test)} questions served, {np.mean([t == 'cloud' for t, _ in results]):.1%} "
                "escalated",
                flush=True,
            )
    quality = np.where(served_strong, strong, weak)
    gap = strong.mean() - weak.mean()
    share = served_strong.mean()
    random_quality = weak.mean() + share * gap
    ms = np.array(seconds) * 1000
    print(
        f"\n{len(table)} GSM8K questions through the gateway (5 held-out folds, {time.perf_counter() - started:.0f} s)"
    )
    print("| | accuracy | cloud share | PGR |\n|---|---|---|---|")
    print(f"| all device (Mixtral) | {weak.mean():.3f} | 0 % | 0.00 |")
    print(f"| all cloud (GPT-4) | {strong.mean():.3f} | 100 % | 1.00 |")
    print(f"| random at the same share | {random_quality:.3f} | {share:.1%} | {share:.2f} |")
    print(f"| cascade, served | {quality.mean():.3f} | {share:.1%} | {(quality.mean() - weak.mean()) / gap:.2f} |")
    print(f"\nserved decisions equal the offline check's on {np.mean(served_strong == predicted_strong):.1%} of rows")
    print(
        f"latency per request (replay backends answer at once; escalated = two calls): p50 {np.percentile(ms, 50):.1f}"
        f" ms, p99 {np.percentile(ms, 99):.1f} ms, {args.clients} clients"
    )


if __name__ == "__main__":
    main()

"""Learning from one's own traffic, replayed: MMLU-Pro questions arrive as requests to a cold router.

Tiers: device = Phi-3-mini-4k-instruct, edge = Llama-3.1-8B-Instruct, cloud = Llama-3.1-70B-Instruct, each
answering from its recorded MMLU-Pro outcome (a replay: the router never sees an outcome it did not label).
The traffic is the questions of seven categories (math, physics, chemistry, engineering, computer science,
economics, business), shuffled; its first 80 % is the pool the gateway serves and learns from, its last 20 % the
unseen traffic every router is scored on. `--requests N` requests are drawn at random, with repetition, from the
pool (real traffic repeats; 0: the pool once, in order). The router starts cold: trained only on the other seven
categories (law, health, ...). Each request is decided by the real `LearnedRouter` (hot-reloaded through
`RouterReloader`) and appended to a real `DecisionLog`; every `--retrain-every` requests, `--label-share` of the
new requests are sampled from the log (`sample_records`: one label per question) and labelled (`label_records`)
by a judge that is a stand-in: the *recorded correctness* of the tier that served (and, for `--answer-share` of
them, of the cloud tier answering too, as the judge would). In the "every tier" runs the device and edge tiers
are also asked to answer each sampled question again (`label_records(ask=...)`, `tierwise label --ask`), graded
the same way. The router is then retrained (`train_router`) on the labels (or, with `--mix`, the labels mixed
with the cold data) and written to the router file the reloader watches.

Prints, per retrain, quality at 30 % cloud calls on the unseen traffic (tolerance set on those predictions so
that exactly 30 % go to the cloud), next to the cold router and a router trained offline on the full outcomes
of the pool (80 % of the traffic), mean ± std over `--seeds` shuffles; plots it to
bench/plots/traffic_replay.png, and the time `DecisionLog.append` took inside the loop (bench/decision_log_cost.py
measures the log's cost alone).

    python bench/traffic_replay.py [--data ../shared/datasets/mmlu_pro/outcomes.csv.gz] [--label-share 0.05]
        [--requests 40000] [--seeds 0 1 2 3 4] [--labelling served every] [--mix]
    python bench/traffic_replay.py --learning-curve 250 500 1000 2000     # offline routers on part of the pool
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.outcomes import OutcomeTable, load_mmlu_pro, text_id
from tierwise.routing.calibrate import cloud_margins, tolerance_for_share
from tierwise.routing.embed import EmbeddingCache
from tierwise.routing.features import Featurizer, FeaturizerSettings
from tierwise.routing.learned import LearnedRouter
from tierwise.routing.reload import RouterReloader
from tierwise.routing.router import RouteRequest, TierView
from tierwise.routing.train import combine_tables, parse_tiers, train_router
from tierwise.traffic import store
from tierwise.traffic.judge import Answerer, Judge
from tierwise.traffic.labels import label_records, labels_table, sample_records
from tierwise.traffic.log import DecisionLog
from tierwise.traffic.record import DecisionRecord
from tierwise.traffic.settings import DecisionLogSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mmlu_pro" / "outcomes.csv.gz"
PLOT = Path(__file__).resolve().parent / "plots" / "traffic_replay.png"
TIERS = "device=Phi-3-mini-4k-instruct,edge=Llama-3.1-8B-Instruct,cloud=Llama-3.1-70B-Instruct"
TRAFFIC = ("math", "physics", "chemistry", "engineering", "computer science", "economics", "business")
GRID: dict[str, list[dict[str, Any]]] = {"logistic": [{"l2": 100.0}, {"l2": 1000.0}], "knn": [{"k": 40}]}
CLOUD_SHARE = 0.3
MILESTONES = (0, 100, 250, 500, 1000, 1500, 2000, 10**9)  # labelled requests the table shows (10**9: the last)
LABELLING = {"served": "served + judge", "every": "every tier"}  # --labelling: who answers a sampled question


class RecordedJudge(Judge):
    """The judge stand-in: the recorded correctness of `model` on the question (no text is graded)."""

    def __init__(self, table: OutcomeTable, model: str) -> None:
        self.model = model
        self._row = {q: i for i, q in enumerate(table.queries)}
        self._table = table

    async def grade(self, query: str, answer: str, *, model: str) -> float | None:
        score = self._table.scores[self._row[query], self._table.models.index(model)]
        return None if np.isnan(score) else float(score)

    async def answer(self, query: str) -> str:
        return f"[recorded answer of {self.model}]"


class RecordedAnswerer(Answerer):
    """A cheaper tier asked to answer a sampled question again; its answer is graded by its recorded outcome."""

    def __init__(self, model: str) -> None:
        self.model = model

    async def answer(self, query: str) -> str:
        return f"[recorded answer of {self.model}]"


def quality_at_share(router: LearnedRouter, test: OutcomeTable, share: float = CLOUD_SHARE) -> tuple[float, float]:
    """(mean recorded score, cloud share) on `test` when the tolerance sends `share` of it to the cloud."""
    q = router.predict_quality(test.queries)  # columns in the router file's tier order = test's model order
    is_cloud = [t.location == "cloud" for t in router.file.tiers]
    tol = tolerance_for_share(cloud_margins(q, is_cloud), share)
    # the cheapest tier within `tol` of the best: the file's tiers are listed cheapest first
    chosen = np.argmax(q >= q.max(axis=1, keepdims=True) - tol, axis=1)
    return float(test.scores[np.arange(len(test)), chosen].mean()), float(np.mean(np.asarray(is_cloud)[chosen]))


def _train(table: OutcomeTable, path: Path, cache: str) -> Path:
    rf = train_router(table, parse_tiers(TIERS), target_cloud_share=CLOUD_SHARE, grid=GRID, folds=3, cache_dir=cache)
    return rf.save(path)


@dataclass
class Point:
    requests: int
    labelled: int
    quality: float
    cloud_share: float
    served_cloud: float


def run_stream(table: OutcomeTable, queries: list[str], test: OutcomeTable, cold: OutcomeTable, *,
               label_share: float, answer_share: float, retrain_every: int, mix: bool, ask_cheaper: bool,
               work: Path, cache: str, title: str) -> tuple[list[Point], list[float]]:
    """Serve `queries` with the cold router, label, retrain; (one point per retrain, append times in µs)."""
    tiers = parse_tiers(TIERS)
    router_path = _train(cold, work / "router.json", cache)
    reloader = RouterReloader(router_path, build=lambda p: LearnedRouter.from_path(p, cache_dir=cache))
    reloader.load()
    models = [t.model for t in tiers]
    views = [TierView(t.name, t.location, t.input_per_mtok, t.output_per_mtok) for t in tiers]
    ask: dict[str, Answerer] = {t.name: RecordedAnswerer(t.model) for t in tiers if t.location != "cloud"}
    log = DecisionLog(DecisionLogSettings(path=work / "traffic.sqlite", keep_text=True, queue_size=len(queries) + 1))
    log.start()
    conn = store.connect(work / "traffic.sqlite")
    judge = RecordedJudge(table, models[-1])
    label_rows: list[dict[str, object]] = []
    first, _ = reloader.current()
    points = [Point(0, 0, *quality_at_share(first, test), 0.0)]  # type: ignore[arg-type]
    append_us: list[float] = []
    served_cloud = 0
    last_retrain = time.time()
    for i, query in enumerate(queries, start=1):
        router, version = reloader.current()
        decision = router.decide(RouteRequest(prompt=query, conversation=query), views)
        tier = next(t for t in tiers if t.name == decision.tier)
        served_cloud += tier.location == "cloud"
        record = DecisionRecord(request_id=f"req-{i}", time=time.time(), tier=tier.name, model=tier.model,
                                router=router.name, router_version=version, reasons=decision.reasons,
                                allowed=[v.name for v in views], predicted_quality=decision.predicted_quality,
                                prompt=query, answer=f"[recorded answer of {tier.model}]")
        started = time.perf_counter_ns()
        log.append(record)
        append_us.append((time.perf_counter_ns() - started) / 1000)
        if i % retrain_every and i != len(queries):
            continue
        while log.written + log.dropped + log.lost < i:  # the writer thread catches up (no flush call needed)
            time.sleep(0.01)
        new = store.read_records(conn, since=last_retrain)  # the requests since the last retrain
        picked = sample_records(new, share=label_share, seed=i,
                                labelled_queries={text_id(str(r["query"])) for r in label_rows})
        label_rows += asyncio.run(label_records(picked, judge, answer_share=answer_share, seed=i,
                                                ask=ask if ask_cheaper else None))
        empty = OutcomeTable(queries=[], models=models, scores=np.zeros((0, 3)))
        labels = combine_tables([empty, labels_table(label_rows)])
        _train(combine_tables([cold, labels]) if mix else labels, router_path, cache)
        last_retrain = time.time()
        reloader.load()  # what the gateway's watcher does when the file's mtime changes
        router, _ = reloader.current()
        labelled = sum(1 for r in label_rows if r["kind"] == "served")
        points.append(Point(i, labelled, *quality_at_share(router, test), served_cloud / i))  # type: ignore[arg-type]
        if len(points) % 10 == 0 or i == len(queries):
            print(f"  {title}: {i} requests, {labelled} labelled: quality@30% {points[-1].quality:.4f} "
                  f"(cloud {points[-1].cloud_share:.1%}); served so far {served_cloud / i:.1%} cloud", flush=True)
    log.close()
    conn.close()
    return points, append_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--label-share", type=float, nargs="+", default=[0.05])
    parser.add_argument("--answer-share", type=float, default=0.5)
    parser.add_argument("--requests", type=int, default=40_000,
                        help="requests served, drawn with repetition from the pool (0: the pool once, in order)")
    parser.add_argument("--labelling", nargs="+", choices=list(LABELLING), default=list(LABELLING),
                        help="served: the judge grades the served answer (and answers a share); every: the "
                             "cheaper tiers answer each sampled question again too")
    parser.add_argument("--mix", action="store_true", help="also runs with the labels mixed with the cold data")
    parser.add_argument("--retrain-every", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument("--learning-curve", type=int, nargs="+", metavar="N",
                        help="only: offline routers trained on the pool's first N questions, against the whole pool")
    args = parser.parse_args()
    if args.learning_curve:
        learning_curve(args)
        return
    started = time.perf_counter()
    tasks = [Task(seed, None, 0.0, False, False) for seed in args.seeds]  # the offline router and baselines
    tasks += [Task(seed, f"labels {share:.0%}, {LABELLING[labelling]}" + (" + cold data" if mix else ""), share,
                   labelling == "every", mix)
              for seed in args.seeds for share in args.label_share for labelling in args.labelling
              for mix in ((False, True) if args.mix else (False,))]
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "embeddings")
        # every question embedded once, here: the runs in other processes then only read the cache
        Featurizer(FeaturizerSettings(), cache=EmbeddingCache(cache)).transform(_data(args.data)[0].queries)
        with ProcessPoolExecutor(args.jobs) as pool:
            done = list(pool.map(_run_task, tasks, [args] * len(tasks), [Path(tmp)] * len(tasks)))
        seeds: dict[int, Seed] = {}
        stream_us: list[float] = []
        for task, result in zip(tasks, done, strict=True):
            if isinstance(result, Baselines):
                seeds[task.seed] = Seed(task.seed, result.offline, result.random, result.tier_means, {})
        for task, result in zip(tasks, done, strict=True):
            if not isinstance(result, Baselines):
                seeds[task.seed].runs[str(task.name)], us = result
                stream_us += us
    _report(list(seeds.values()), stream_us, args, time.perf_counter() - started)


def learning_curve(args: argparse.Namespace) -> None:
    """Offline routers on the first N questions of each seed's pool (full outcomes), next to the whole pool's: how
    many full-outcome labels the traffic's domain needs (paired per seed, accuracy points at 30 % cloud)."""
    full, _, traffic_rows = _data(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "embeddings")
        diffs: dict[int, list[float]] = {n: [] for n in args.learning_curve}
        for seed in args.seeds:
            traffic = np.random.default_rng(seed).permutation(traffic_rows)
            cut = int(0.8 * len(traffic))
            pool, test = full.subset(traffic[:cut]), full.subset(traffic[cut:])

            def quality(rows: OutcomeTable, name: str) -> float:
                path = _train(rows, Path(tmp) / f"{seed}-{name}.json", cache)  # noqa: B023 - used at once
                return quality_at_share(LearnedRouter.from_path(path, cache_dir=cache), test)[0]  # noqa: B023

            whole = quality(pool, "all")
            for n in args.learning_curve:
                diffs[n].append(100 * (quality(pool.subset(np.arange(min(n, len(pool)))), str(n)) - whole))
            print(f"seed {seed}: whole pool ({len(pool)}) {whole:.4f}; " + ", ".join(
                f"first {n}: {diffs[n][-1]:+.2f}" for n in args.learning_curve), flush=True)
    for n, d in diffs.items():
        print(f"first {n} questions of the pool vs the whole pool: {np.mean(d):+.2f} points "
              f"(per seed {', '.join(f'{v:+.1f}' for v in d)})")


@dataclass(frozen=True)
class Task:
    """One run: a seed's offline reference (`name` None), or a stream served, labelled and retrained."""

    seed: int
    name: str | None
    label_share: float
    ask_cheaper: bool
    mix: bool


@functools.cache
def _data(path: Path) -> tuple[OutcomeTable, OutcomeTable, np.ndarray]:
    """(every complete question, the cold-start questions of the other categories, the traffic's rows)."""
    full = load_mmlu_pro(path).select_models([t.model for t in parse_tiers(TIERS)])
    full = full.subset(np.flatnonzero(full.complete_rows()))
    cats = np.array(full.categories or [])
    return full, full.subset(np.flatnonzero(~np.isin(cats, TRAFFIC))), np.flatnonzero(np.isin(cats, TRAFFIC))


@dataclass(frozen=True)
class Baselines:
    """A seed's references on the unseen test: the offline router, random at 30 % cloud, each tier alone."""

    offline: float
    random: float
    tier_means: list[float]


def _run_task(task: Task, args: argparse.Namespace, tmp: Path) -> Baselines | tuple[list[Point], list[float]]:
    """Runs in a worker process; the seed fixes the pool, the unseen test and the requests."""
    full, cold, traffic_rows = _data(args.data)
    rng = np.random.default_rng(task.seed)
    traffic = rng.permutation(traffic_rows)
    cut = int(0.8 * len(traffic))
    pool, test = full.subset(traffic[:cut]), full.subset(traffic[cut:])
    queries = pool.queries if args.requests == 0 else [pool.queries[k] for k in
                                                       rng.integers(len(pool), size=args.requests)]
    cache = str(tmp / "embeddings")
    work = tmp / f"seed-{task.seed}" / (task.name or "offline")
    work.mkdir(parents=True)
    if task.name is None:
        offline = LearnedRouter.from_path(_train(pool, work / "offline.json", cache), cache_dir=cache)
        means = test.scores.mean(axis=0)
        quality = quality_at_share(offline, test)[0]
        print(f"seed {task.seed}: {len(cold)} cold-start questions (other categories), pool {len(pool)}, "
              f"{len(queries)} requests ({len(set(queries))} distinct), unseen test {len(test)}; offline router "
              f"on the pool's full outcomes: quality@30% {quality:.4f}", flush=True)
        return Baselines(quality, float((1 - CLOUD_SHARE) * means[0] + CLOUD_SHARE * means[2]), means.tolist())
    return run_stream(full, queries, test, cold, label_share=task.label_share, answer_share=args.answer_share,
                      retrain_every=args.retrain_every, mix=task.mix, ask_cheaper=task.ask_cheaper, work=work,
                      cache=cache, title=f"seed {task.seed}, {task.name}")


@dataclass
class Seed:
    """One shuffle of the traffic: its offline reference, baselines, and every run's points."""

    seed: int
    offline: float
    random: float
    tier_means: list[float]
    runs: dict[str, list[Point]]


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def _report(seeds: list[Seed], stream_us: list[float], args: argparse.Namespace, seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiers = np.mean([s.tier_means for s in seeds], axis=0)
    print(f"\n{len(seeds)} seeds {args.seeds}; unseen test (mean over seeds): all device {tiers[0]:.4f}, "
          f"all edge {tiers[1]:.4f}, all cloud {tiers[2]:.4f}, random device/cloud at 30 % cloud "
          f"{_ms([s.random for s in seeds])}")
    print(f"offline router (80 % of this traffic, full outcomes): {_ms([s.offline for s in seeds])}")
    print("\nmean ± std over seeds\n| run | requests | labelled | quality @30 % cloud | served cloud share |\n"
          "|---|---|---|---|---|")
    names = list(seeds[0].runs)
    for name in names:
        run = seeds[0].runs[name]
        shown = sorted({next((k for k, p in enumerate(run) if p.labelled >= m), len(run) - 1) for m in MILESTONES})
        for k in shown:
            p = run[k]
            q = [s.runs[name][k].quality for s in seeds]
            served = np.mean([s.runs[name][k].served_cloud for s in seeds])
            print(f"| {name} | {p.requests} | {p.labelled} | {_ms(q)} | {served:.1%} |")
    print("\nat the first retrain with ≥ 2,000 labelled requests (paired per seed, in accuracy points):")
    for name in names:
        at = next((k for k, p in enumerate(seeds[0].runs[name]) if p.labelled >= 2000), None)
        if at is None:
            last = seeds[0].runs[name][-1]
            print(f"  {name}: never reaches 2,000 labels ({last.labelled} after {last.requests} requests)")
            at = len(seeds[0].runs[name]) - 1
        vs_offline = [100 * (s.runs[name][at].quality - s.offline) for s in seeds]
        vs_cold = [100 * (s.runs[name][at].quality - s.runs[name][0].quality) for s in seeds]
        print(f"  {name} ({seeds[0].runs[name][at].labelled} labels): vs offline {np.mean(vs_offline):+.2f} "
              f"(per seed {', '.join(f'{v:+.1f}' for v in vs_offline)}), vs cold start {np.mean(vs_cold):+.2f} "
              f"(per seed {', '.join(f'{v:+.1f}' for v in vs_cold)})")
    print(f"\nDecisionLog.append in the stream: p50 {np.percentile(stream_us, 50):.1f} µs, "
          f"p99 {np.percentile(stream_us, 99):.1f} µs ({len(stream_us)} appends)")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name in names:
        x = [p.labelled for p in seeds[0].runs[name]]
        curves = np.array([[p.quality for p in s.runs[name]] for s in seeds])
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(x, mean, marker="o", markersize=3, label=name)
        if len(seeds) > 1:
            ax.fill_between(x, mean - std, mean + std, alpha=0.12)
    ax.axhline(float(np.mean([s.offline for s in seeds])), color="k", linestyle="--",
               label="offline: 80 % of this traffic, full outcomes")
    ax.axhline(float(np.mean([s.random for s in seeds])), color="grey", linestyle=":", label="random at 30 % cloud")
    ax.set_xlim(left=-40)
    ax.set_xlabel("labelled requests")
    ax.set_ylabel("accuracy on unseen traffic at 30 % cloud")
    ax.set_title(f"MMLU-Pro traffic replay, cold router retrained on its labels ({len(seeds)} seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}; {seconds:.0f} s")


if __name__ == "__main__":
    main()

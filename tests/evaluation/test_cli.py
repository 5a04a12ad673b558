"""`tierwise eval` end to end on small tables written by the test."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tests.routing.answer_tables import answer_table
from tierwise.evaluation.cli import eval_command

from .tables import synthetic_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASELINES = {"random", "always-cheapest", "always-best", "oracle", "prompt-length"}


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)  # two commands: typer then keeps the "eval" sub-command name
    return app


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


def _write_routellm(folder: Path, n: int) -> Path:
    table = synthetic_table(n, tiers=2, seed=4)
    rows = [[q, bool(a), bool(b)] for q, (a, b) in zip(table.queries, table.scores, strict=True)]
    path = _write_csv(folder / "bench.csv", ["prompt", "weak/model", "strong/model"], rows)
    with (folder / "contaminated_prompts.jsonl").open("w") as fh:
        for q in table.queries[:7]:
            fh.write(json.dumps({"eval_prompt": q, "eval_idx": 0}) + "\n")
    return path


def test_two_tiers_end_to_end(tmp_path: Path) -> None:
    data = _write_routellm(tmp_path, 300)
    out = tmp_path / "out"
    args = ["eval", "--data", str(data), "--predictors", "knn", "--features", "hashing", "--folds", "3"]
    result = CliRunner().invoke(_app(), [*args, "--random-seeds", "10", "-o", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert set(results) == BASELINES | {"knn"}
    assert meta["data_info"]["rows_contaminated_dropped"] == 7
    assert meta["data_info"]["rows_evaluated"] == 293 and meta["tiers"] == ["weak/model", "strong/model"]
    knn = results["knn"]
    assert {"apgr", "cpt50", "cpt80", "cpt95", "quality_at_cloud_share"} <= set(knn)
    assert set(knn["quality_at_cloud_share"]) == {"0.1", "0.2", "0.3"}
    assert knn["apgr"] > results["random"]["apgr"]  # the topic words give the difficulty away
    assert results["oracle"]["apgr"] > knn["apgr"]
    assert results["random"]["seeds"] == 10 and abs(results["random"]["apgr"] - 0.5) < 0.1
    for png in ("pgr.png", "cloud_share.png", "cost_quality.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    report = (out / "report.md").read_text()
    assert "| knn | router |" in report and "3-fold" in report


def test_three_tiers_generic_with_costs(tmp_path: Path) -> None:
    table = synthetic_table(240, tiers=3, seed=5)
    data = tmp_path / "long.jsonl"
    with data.open("w") as fh:
        for q, row in zip(table.queries, table.scores, strict=True):
            for m, s in zip(table.models, row, strict=True):
                fh.write(json.dumps({"query": q, "model": m, "score": float(s)}) + "\n")
    out = tmp_path / "out3"
    tiers = "tier0=0.02,tier1=0.1,tier2=1"
    args = ["eval", "--data", str(data), "--tiers", tiers, "--predictors", "knn", "--features", "hashing"]
    result = CliRunner().invoke(_app(), [*args, "--no-plots", "-o", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    knn, oracle, cheapest = results["knn"], results["oracle"], results["always-cheapest"]
    assert knn["apgr"] is None and knn["aiq"] is not None
    assert oracle["relative_quality_at_cloud_share"]["0.3"] > 1.0
    assert cheapest["cost"] == pytest.approx(0.02) and cheapest["tier_share"] == [1.0, 0.0, 0.0]
    assert results["always-best"]["tier_share"][2] == 1.0
    assert np.isclose(sum(knn["cost_curve"]["tier_share"][0]), 1.0)
    assert not (out / "pgr.png").exists()


def test_train_size_regime_and_bad_tiers(tmp_path: Path) -> None:
    data = _write_routellm(tmp_path, 200)
    out = tmp_path / "o"
    args = ["eval", "--data", str(data), "--predictors", "none", "--train-size", "50", "--repeats", "2"]
    result = CliRunner().invoke(_app(), [*args, "--no-plots", "-o", str(out)])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert len(res["prompt-length"]["apgr_splits"]) == 2
    bad = CliRunner().invoke(_app(), ["eval", "--data", str(data), "--tiers", "nope,strong/model", "-o", str(out)])
    assert bad.exit_code != 0 and "unknown models" in str(bad.exception)


def test_evaluates_a_trained_router_file_without_training(tmp_path: Path) -> None:
    from tierwise.routing.features import FeaturizerSettings
    from tierwise.routing.train import parse_tiers, train_router

    table = synthetic_table(200, tiers=2, seed=6)
    table.models = ["weak/model", "strong/model"]
    tiers = parse_tiers("edge=weak/model,cloud=strong/model")
    grid = {"knn": [{"k": 10}]}
    rf = train_router(table, tiers, featurizer=FeaturizerSettings(embedding="none"), grid=grid, folds=2)
    router = rf.save(tmp_path / "router.json")
    data = _write_routellm(tmp_path, 120)  # another draw: rows the router never saw
    out = tmp_path / "r"
    result = CliRunner().invoke(_app(), ["eval", "--router", str(router), "--data", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert "router:router" in results and results["router:router"]["apgr"] is not None
    assert "no training" in json.loads((out / "meta.json").read_text())["protocol"]


def _write_answers(folder: Path, n: int) -> Path:
    """RouteLLM-format CSV of `answer_table`: the weak model's answers in a `weak_response` column."""
    table = answer_table(n)
    answers = (table.responses or {})["weak"]
    rows = [[q, bool(w), bool(s), a] for q, (w, s), a in zip(table.queries, table.scores, answers, strict=True)]
    return _write_csv(folder / "answers.csv", ["prompt", "weak", "strong", "weak_response"], rows)


def test_cascade_reads_the_cheapest_tiers_answer_and_pays_for_it(tmp_path: Path) -> None:
    data = _write_answers(tmp_path, 300)
    out = tmp_path / "cascade"
    args = ["eval", "--data", str(data), "--predictors", "logistic", "--features", "hashing", "--folds", "3"]
    result = CliRunner().invoke(_app(), [*args, "--cascade", "--no-plots", "-o", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    cascade, plain = results["cascade:logistic"], results["logistic"]
    assert cascade["apgr"] > plain["apgr"] + 0.1 and cascade["apgr"] > results["random"]["apgr"] + 0.1
    # costs 0.1 (weak) and 1 (strong): in a cascade every query pays the weak call, an escalated one both
    for router, cost_of in ((cascade, lambda s: 0.1 + s), (plain, lambda s: 0.1 * (1 - s) + s)):
        curve = router["cost_curve"]
        assert len(curve["cost"]) > 2
        for cost, (_, strong) in zip(curve["cost"], curve["tier_share"], strict=True):
            assert cost == pytest.approx(cost_of(strong), abs=1e-5)
    assert "cascade" in json.loads((out / "meta.json").read_text())["protocol"]


def test_cascade_without_answers_is_a_clear_usage_error(tmp_path: Path) -> None:
    data = _write_routellm(tmp_path, 60)
    result = CliRunner().invoke(_app(), ["eval", "--data", str(data), "--cascade", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "no answers of the cheapest tier" in result.output

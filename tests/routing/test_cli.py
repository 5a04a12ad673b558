"""`tierwise train` and `tierwise route` on a small generic outcome file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from tests.routing.answer_tables import answer_table
from tierwise.routing.cascade import CascadeCheck
from tierwise.routing.cli import route, train, train_cascade_command


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(train)
    app.command()(route)
    app.command("train-cascade")(train_cascade_command)
    return app


def test_train_then_route(tmp_path: Path) -> None:
    rows = []
    for i in range(120):
        hard = i % 2 == 1
        q = f"Prove the theorem {i} about integrals of x^{i}" if hard else f"Say hi to my neighbour {i} politely"
        rows += [
            {"query": q, "model": "small", "score": 0 if hard else 1, "output_tokens": 50},
            {"query": q, "model": "big", "score": 1, "output_tokens": 300},
        ]
    data = tmp_path / "log.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "r" / "router.json"
    runner = CliRunner()
    res = runner.invoke(
        _app(),
        [
            "train",
            "--data",
            str(data),
            "--tiers",
            "device=small,cloud=big",
            "--embedding",
            "none",
            "--predictors",
            "knn,logistic",
            "--target-cloud-share",
            "0.5",
            "-o",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["format"] == "tierwise-router" and doc["tiers"][1]["expected_output_tokens"] == 300.0
    res = runner.invoke(_app(), ["route", "-r", str(out), "--json", "Prove the theorem 7 about integrals of x^7"])
    assert res.exit_code == 0, res.output
    decision = json.loads(res.output)
    assert decision["tier"] == "cloud" and set(decision["predicted_quality"]) == {"device", "cloud"}
    res = runner.invoke(_app(), ["route", "-r", str(out), "Say hi to my neighbour 8 politely"])
    assert res.exit_code == 0 and "tier: device" in res.output


def test_train_cascade_writes_a_check_and_refuses_unusable_data(tmp_path: Path) -> None:
    table = answer_table(200)
    data = tmp_path / "answers.jsonl"
    with data.open("w") as fh:
        for q, scores, answer in zip(table.queries, table.scores, (table.responses or {})["weak"], strict=True):
            fh.write(json.dumps({"query": q, "model": "weak", "score": scores[0], "response": answer}) + "\n")
            fh.write(json.dumps({"query": q, "model": "strong", "score": scores[1]}) + "\n")
    out = tmp_path / "cascade.json"
    args = ["train-cascade", "--data", str(data), "--model", "weak", "--escalate-share", "0.25", "-o", str(out)]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    training = CascadeCheck.load(out).training
    assert training["escalate_share"] == 0.25 and abs(training["heldout_escalated_share"] - 0.25) < 0.05
    assert f"escalates {training['heldout_escalated_share']:.1%} of held-out answers" in result.output
    for model, message in (("strong", "no answers of 'strong'"), ("nope", "unknown model 'nope'")):
        bad = CliRunner().invoke(_app(), ["train-cascade", "--data", str(data), "--model", model, "-o", str(out)])
        assert bad.exit_code == 2 and message in bad.output

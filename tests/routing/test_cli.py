"""`tierwise train` and `tierwise route` on a small generic outcome file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from tierwise.routing.cli import route, train


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(train)
    app.command()(route)
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

"""Retraining from the log's labels: `tierwise train --log` (alone or mixed) and `train-cascade --log`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tierwise.cli import app
from tierwise.outcomes import OutcomeTable
from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.routing.cascade import CascadeCheck
from tierwise.routing.learned import LearnedRouter
from tierwise.routing.router import RouteRequest, TierView
from tierwise.routing.train import combine_tables, mix_outcomes
from tierwise.traffic import store
from tierwise.traffic.record import DecisionRecord

EASY = "Say hi to my neighbour {} politely"
HARD = "Prove the theorem {} about integrals of x^{}"


def _log(tmp_path: Path) -> Path:
    """120 served requests (half hard), graded: the small model fails the hard ones, the big one never does."""
    path = tmp_path / "traffic.sqlite"
    conn = store.connect(path)
    records, labels = [], []
    for i in range(120):
        hard = i % 2 == 1
        q = HARD.format(i, i) if hard else EASY.format(i)
        sure = not hard
        conf = AnswerConfidence(-0.1 if sure else -2.0, -0.5 if sure else -6.0, 0.3 if sure else 3.0, 12)
        records.append(DecisionRecord(request_id=f"r{i}", time=time.time(), tier="device", model="small",
                                      router="cheapest-healthy", prompt=q, answer="Sure thing.", confidence=conf))
        labels.append({"request_id": f"r{i}", "time": time.time(), "query": q, "model": "small",
                       "score": 0.0 if hard else 1.0, "judge": "big", "kind": "served", "response": "Sure thing."})
        labels.append({"request_id": f"r{i}", "time": time.time(), "query": q, "model": "big", "score": 1.0,
                       "judge": "big", "kind": "judge_answer", "response": "Indeed."})
    store.insert_rows(conn, [store.row_of(r, keep_text=True) for r in records])
    store.insert_labels(conn, labels)
    conn.close()
    return path


def test_train_from_the_logs_labels_then_route(tmp_path: Path) -> None:
    log = _log(tmp_path)
    out = tmp_path / "router.json"
    res = CliRunner().invoke(app, ["train", "--log", str(log), "--tiers", "device=small,cloud=big", "-o", str(out),
                                   "--embedding", "none", "--predictors", "logistic", "--target-cloud-share", "0.5"])
    assert res.exit_code == 0, res.output
    router = LearnedRouter.from_path(out)
    views = [TierView("device", "device", 0.0, 0.0), TierView("cloud", "cloud", 1.0, 2.0)]
    hard = HARD.format(999, 999)
    assert router.decide(RouteRequest(prompt=hard, conversation=hard), views).tier == "cloud"
    easy = EASY.format(999)
    assert router.decide(RouteRequest(prompt=easy, conversation=easy), views).tier == "device"


def test_train_refuses_a_log_without_labels_and_no_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    store.connect(empty).close()
    res = CliRunner().invoke(app, ["train", "--log", str(empty), "--tiers", "device=small,cloud=big"])
    assert res.exit_code == 2 and "no labels yet" in res.output
    res = CliRunner().invoke(app, ["train", "--tiers", "device=small,cloud=big"])
    assert res.exit_code == 2 and "--data, --log or both" in res.output
    res = CliRunner().invoke(app, ["train", "--log", str(_log(tmp_path)), "--tiers", "device=small,edge=mid,cloud=big"])
    assert res.exit_code == 2 and "no outcomes for ['mid']" in res.output


def test_mixing_keeps_a_share_of_the_outcome_file_next_to_every_label() -> None:
    data = OutcomeTable(queries=[f"q{i}" for i in range(1000)], models=["small", "big"], scores=np.ones((1000, 2)))
    labels = OutcomeTable(queries=["l1", "l2"], models=["small", "judge"], scores=np.array([[0.0, 1.0], [1.0, 0.5]]))
    mixed = mix_outcomes(data, labels, data_weight=0.25)
    assert 200 < len(mixed) - 2 < 300 and mixed.queries[-2:] == ["l1", "l2"]
    assert mixed.models == ["small", "big", "judge"]
    assert np.isnan(mixed.scores[-1, 1]) and mixed.scores[-1, 2] == 0.5 and np.isnan(mixed.scores[0, 2])
    assert len(mix_outcomes(data, None)) == 1000 and mix_outcomes(None, labels) is labels
    with pytest.raises(ValueError):
        mix_outcomes(None, None)
    with pytest.raises(ValueError):
        mix_outcomes(data, labels, data_weight=0.0)
    assert len(combine_tables([labels, labels])) == 4


def test_train_cascade_from_the_log_learns_the_device_models_doubt(tmp_path: Path) -> None:
    log = _log(tmp_path)
    out = tmp_path / "cascade.json"
    res = CliRunner().invoke(app, ["train-cascade", "--log", str(log), "--model", "small", "-o", str(out),
                                   "--escalate-share", "0.5"])
    assert res.exit_code == 0, res.output
    check = CascadeCheck.load(out)
    assert json.loads(out.read_text())["training"]["rows"] == 120
    q = "Tell me something"  # a question that looks like neither kind: only the confidence differs
    unsure = AnswerConfidence(-2.0, -6.0, 3.0, 12)
    sure = AnswerConfidence(-0.1, -0.5, 0.3, 12)
    assert check.p_good(q, "Sure thing.", unsure) < check.p_good(q, "Sure thing.", sure)
    res = CliRunner().invoke(app, ["train-cascade", "--model", "small"])
    assert res.exit_code == 2 and "either --data or --log" in res.output

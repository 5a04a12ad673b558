"""Labelling logged traffic with a judge tier: a real HTTP judge (the stub backend on loopback), real log files."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from tierwise.cli import app
from tierwise.outcomes import load_generic
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app
from tierwise.traffic import store
from tierwise.traffic.judge import HttpJudge, grading_prompt, parse_grade
from tierwise.traffic.labels import estimate, label_records, labels_table, sample_records
from tierwise.traffic.record import DecisionRecord


def _records(n: int) -> list[DecisionRecord]:
    return [DecisionRecord(request_id=f"r{i}", time=time.time(), tier="device", model="small", router="learned",
                           prompt=f"What is {i} + {i}?", answer=str(2 * i if i % 2 else 2 * i + 1))
            for i in range(n)]


def _judge_replies(records: list[DecisionRecord]) -> dict[str, str]:
    """The judge grades right sums 9, wrong ones 2, and answers every question right (graded 10)."""
    replies = {}
    for r in records:
        i = int(r.request_id[1:])
        replies[grading_prompt(r.prompt or "", r.answer or "")] = "Grade: 9" if i % 2 else "Grade: 2"
        replies[r.prompt or ""] = f"It is {2 * i}."
        replies[grading_prompt(r.prompt or "", f"It is {2 * i}.")] = "Grade: 10"
    return replies


def test_grades_are_read_from_the_reply() -> None:
    assert parse_grade("Grade: 10") == 1.0
    assert parse_grade("Grade: 1") == 0.0
    assert parse_grade("I'd say Grade: 7 because") == 6 / 9
    assert parse_grade("no idea") is None
    assert parse_grade("Grade: 0") is None


def test_sampling_takes_a_share_of_the_records_with_text() -> None:
    records = [*_records(100), DecisionRecord(request_id="nt", time=0.0, tier="d", model="m", router="r")]
    picked = sample_records(records, share=0.1, seed=3)
    assert len(picked) == 10 and all(r.prompt for r in picked)
    assert sample_records(records, share=0.1, seed=3) == picked
    again = sample_records(records, share=1.0, already_labelled={r.request_id for r in picked})
    assert len(again) == 90


def test_an_http_judge_labels_served_answers_and_answers_a_share_itself() -> None:
    records = _records(20)
    behavior = StubBehavior(replies=_judge_replies(records))
    with serve_in_thread(create_stub_app(behavior)) as url:

        async def run() -> list[dict[str, object]]:
            async with HttpJudge(base_url=f"{url}/v1", model="big") as judge:
                return await label_records(records, judge, answer_share=0.5, seed=1)

        rows = asyncio.run(run())
    served = [r for r in rows if r["kind"] == "served"]
    own = [r for r in rows if r["kind"] == "judge_answer"]
    assert len(served) == 20 and 3 <= len(own) <= 17
    assert all(r["score"] == (8 / 9 if int(str(r["request_id"])[1:]) % 2 else 1 / 9) for r in served)
    assert all(r["model"] == "big" and r["score"] == 1.0 for r in own)
    table = labels_table(rows)
    assert table.models == ["small", "big"] and len(table) == 20
    assert int((~np.isnan(table.scores[:, 1])).sum()) == len(own)
    cost = estimate(records, answer_share=0.5, seed=1, input_per_mtok=1.0, output_per_mtok=2.0)
    assert cost.calls == 20 + 2 * len(own)  # the estimate counts the calls label_records makes
    assert len(behavior.received) == cost.calls


def test_label_command_prints_the_cost_then_writes_outcome_rows(tmp_path: Path) -> None:
    records = _records(40)
    log_path = tmp_path / "traffic.sqlite"
    conn = store.connect(log_path)
    store.insert_rows(conn, [store.row_of(r, keep_text=True) for r in records])
    conn.close()
    behavior = StubBehavior(replies=_judge_replies(records))
    with serve_in_thread(create_stub_app(behavior)) as url:
        config = tmp_path / "tiers.yaml"
        config.write_text(yaml.safe_dump({"tiers": [
            {"name": "cloud", "location": "cloud", "backend": "openai", "base_url": f"{url}/v1", "model": "big",
             "cost": {"input_per_mtok": 0.55, "output_per_mtok": 2.19}}]}))
        args = ["label", "--log", str(log_path), "--config", str(config), "--judge", "cloud", "--sample", "0.25",
                "--answer-share", "0.0", "-o", str(tmp_path / "labels.jsonl")]
        dry = CliRunner().invoke(app, [*args, "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "sampled 10: 10 judge calls" in dry.output and "USD" in dry.output
        assert behavior.received == []  # a dry run asks nothing
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert len(behavior.received) == 10
        again = CliRunner().invoke(app, args)  # already-labelled requests are not sampled again
        assert "10 labelled already; sampled 8" in again.output
    lines = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert len(lines) == 18 and {"query", "model", "score"} <= set(lines[0])
    assert len(load_generic(tmp_path / "labels.jsonl")) == 18  # the generic outcome format, as is
    conn = store.connect(log_path)
    assert len(store.read_labels(conn)) == 18
    conn.close()


def test_label_command_refuses_a_judge_that_is_not_an_http_tier(tmp_path: Path) -> None:
    config = tmp_path / "tiers.yaml"
    config.write_text(yaml.safe_dump({"tiers": [
        {"name": "phone", "location": "device", "backend": "llama_cpp", "model_path": "x.gguf"}]}))
    (tmp_path / "t.sqlite").write_bytes(b"")
    res = CliRunner().invoke(app, ["label", "--log", str(tmp_path / "t.sqlite"), "--config", str(config),
                                   "--judge", "phone"])
    assert res.exit_code == 2 and "not an HTTP" in res.output
    res = CliRunner().invoke(app, ["label", "--log", str(tmp_path / "t.sqlite"), "--config", str(config),
                                   "--judge", "nope"])
    assert res.exit_code == 2 and "no tier 'nope'" in res.output

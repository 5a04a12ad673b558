"""Labelling logged traffic with a judge tier: real tiers (HTTP, to the stub backend on loopback), real log files."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from tierwise.cli import app
from tierwise.config import CostConfig, OpenAITierConfig
from tierwise.outcomes import load_generic, text_id
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app
from tierwise.tiers.registry import build_tier
from tierwise.traffic import store
from tierwise.traffic.judge import TierAnswerer, TierJudge, grading_prompt, parse_grade
from tierwise.traffic.labels import asked_tiers, estimate, label_records, labels_table, sample_records
from tierwise.traffic.record import DecisionRecord


def _records(n: int, **fields: object) -> list[DecisionRecord]:
    return [DecisionRecord(request_id=f"r{i}", time=time.time(), tier="device", model="small", router="learned",
                           prompt=f"What is {i} + {i}?", answer=str(2 * i if i % 2 else 2 * i + 1),
                           **fields)  # type: ignore[arg-type]
            for i in range(n)]


def _judge_replies(records: list[DecisionRecord]) -> dict[str, str]:
    """The judge grades right sums 9, wrong ones 2, and answers every question right (graded 10); so does any
    other tier asked (the stub answers by the question)."""
    replies = {}
    for r in records:
        i = int(r.request_id[1:])
        replies[grading_prompt(r.prompt or "", r.answer or "")] = "Grade: 9" if i % 2 else "Grade: 2"
        replies[r.prompt or ""] = f"It is {2 * i}."
        replies[grading_prompt(r.prompt or "", f"It is {2 * i}.")] = "Grade: 10"
    return replies


def _http_tier(name: str, url: str, model: str) -> OpenAITierConfig:
    return OpenAITierConfig(name=name, location="cloud" if name == "cloud" else "edge", backend="openai",
                            base_url=f"{url}/v1", model=model)


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


def test_a_question_is_labelled_once_however_often_it_is_asked() -> None:
    records = _records(10)
    repeated = [*records, *(replace(r, request_id=f"again-{r.request_id}") for r in records)]
    picked = sample_records(repeated, share=1.0)
    assert len({r.prompt for r in picked}) == len(picked) == 10
    labelled = {text_id(r.prompt or "") for r in records[:4]}
    later = sample_records(repeated, share=1.0, labelled_queries=labelled)
    assert len(later) == 6 and not {text_id(r.prompt or "") for r in later} & labelled
    assert len(sample_records(repeated, share=0.25)) == 5  # a share of the requests, drawn among the questions


def test_text_kept_on_the_device_by_the_personal_data_policy_goes_only_to_a_judge_on_the_device() -> None:
    records = [*_records(4), *_records(4, device_only=True, allowed=["device"])]
    records = [replace(r, request_id=f"x{k}", prompt=f"{r.prompt} ({k})") for k, r in enumerate(records)]
    assert {r.device_only for r in sample_records(records, share=1.0)} == {False}
    assert len(sample_records(records, share=1.0, judge_on_device=True)) == 8
    assert asked_tiers(records[-1], ["device", "edge"]) == []  # served on the device; the edge was not allowed


def test_tiers_judge_served_answers_answer_a_share_themselves_and_asked_tiers_answer_again() -> None:
    open_ = _records(20, allowed=["device", "edge", "cloud"])
    records = [*open_[:10], *(replace(r, allowed=["device", "cloud"]) for r in open_[10:])]
    behavior = StubBehavior(replies=_judge_replies(records))
    with serve_in_thread(create_stub_app(behavior)) as url:

        async def run() -> list[dict[str, object]]:
            judge_tier = build_tier(_http_tier("cloud", url, "big"))
            edge_tier = build_tier(_http_tier("edge", url, "mid"))
            await judge_tier.start()
            await edge_tier.start()
            async with TierJudge(judge_tier) as judge, TierAnswerer(edge_tier) as edge:
                return await label_records(records, judge, answer_share=0.5, seed=1, ask={"edge": edge})

        rows = asyncio.run(run())
    served = [r for r in rows if r["kind"] == "served"]
    own = [r for r in rows if r["kind"] == "judge_answer"]
    asked = [r for r in rows if r["kind"] == "asked"]
    assert len(served) == 20 and 3 <= len(own) <= 17
    assert all(r["score"] == (8 / 9 if int(str(r["request_id"])[1:]) % 2 else 1 / 9) for r in served)
    assert all(r["model"] == "big" and r["score"] == 1.0 for r in own)
    # the edge answered again only the requests that were allowed to go to it
    assert sorted(str(r["request_id"]) for r in asked) == sorted(r.request_id for r in records[:10])
    assert all(r["model"] == "mid" and r["score"] == 1.0 for r in asked)
    table = labels_table(rows)
    assert sorted(table.models) == ["big", "mid", "small"] and len(table) == 20
    assert int((~np.isnan(table.scores[:, table.models.index("big")])).sum()) == len(own)
    assert int((~np.isnan(table.scores[:, table.models.index("mid")])).sum()) == 10
    prices = CostConfig(input_per_mtok=1.0, output_per_mtok=2.0)
    cost = estimate(records, answer_share=0.5, seed=1, judge=prices, ask={"edge": CostConfig()})
    assert cost.calls == 20 + 2 * len(own) + 2 * 10  # the estimate counts the calls label_records makes
    assert len(behavior.received) == cost.calls
    cheaper = estimate(records, answer_share=0.5, seed=1, judge=prices)
    assert cheaper.calls == 20 + 2 * len(own) and 0 < cheaper.usd < cost.usd


def test_a_judge_that_fails_costs_only_that_request_its_rows() -> None:
    records = _records(6)
    replies = _judge_replies(records)
    del replies[grading_prompt(records[2].prompt or "", records[2].answer or "")]  # stub: "Hello ..."
    behavior = StubBehavior(replies=replies)
    with serve_in_thread(create_stub_app(behavior)) as url:

        async def run() -> list[dict[str, object]]:
            tier = build_tier(_http_tier("cloud", url, "big"))
            await tier.start()
            async with TierJudge(tier) as judge:
                return await label_records(records, judge)

        rows = asyncio.run(run())
    assert sorted(str(r["request_id"]) for r in rows) == ["r0", "r1", "r3", "r4", "r5"]  # no grade: no label
    dead = OpenAITierConfig(name="cloud", location="cloud", backend="openai", base_url="http://127.0.0.1:9/v1",
                            model="big", connect_timeout_s=0.5, retries=0)

    async def down() -> list[dict[str, object]]:
        tier = build_tier(dead)
        await tier.start()
        async with TierJudge(tier) as judge:
            return await label_records(records, judge)

    assert asyncio.run(down()) == []  # a judge that is down labels nothing, and raises nothing


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
             "cost": {"input_per_mtok": 0.55, "output_per_mtok": 2.19}},
            {"name": "edge", "location": "edge", "backend": "openai", "base_url": f"{url}/v1", "model": "mid"}]}))
        args = ["label", "--log", str(log_path), "--config", str(config), "--judge", "cloud", "--sample", "0.25",
                "--answer-share", "0.0", "-o", str(tmp_path / "labels.jsonl")]
        dry = CliRunner().invoke(app, [*args, "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "sampled 10: 10 model calls" in dry.output and "USD at the prices of cloud" in dry.output
        assert behavior.received == []  # a dry run asks nothing
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert len(behavior.received) == 10
        # already-labelled requests are not sampled again; the edge answers the next ones too
        again = CliRunner().invoke(app, [*args, "--ask", "edge"])
        assert "10 labelled already; sampled 8: 24 model calls" in again.output, again.output
        assert len(behavior.received) == 10 + 24
    lines = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert len(lines) == 26 and {"query", "model", "score"} <= set(lines[0])
    assert sum(1 for x in lines if x["kind"] == "asked" and x["model"] == "mid") == 8
    table = load_generic(tmp_path / "labels.jsonl")  # the generic outcome format, as is: a row per question
    assert len(table) == 18 and int((~np.isnan(table.scores[:, table.models.index("mid")])).sum()) == 8
    conn = store.connect(log_path)
    assert len(store.read_labels(conn)) == 26
    conn.close()


def test_label_command_names_a_missing_or_broken_tier(tmp_path: Path) -> None:
    config = tmp_path / "tiers.yaml"
    config.write_text(yaml.safe_dump({"tiers": [
        {"name": "phone", "location": "device", "backend": "llama_cpp", "model_path": str(tmp_path / "x.gguf")}]}))
    log_path = tmp_path / "t.sqlite"
    conn = store.connect(log_path)
    store.insert_rows(conn, [store.row_of(r, keep_text=True) for r in _records(4)])
    conn.close()
    base = ["label", "--log", str(log_path), "--config", str(config)]
    res = CliRunner().invoke(app, [*base, "--judge", "nope"])
    assert res.exit_code == 2 and "no tier 'nope'" in res.output
    res = CliRunner().invoke(app, [*base, "--judge", "phone", "--ask", "edge"])
    assert res.exit_code == 2 and "no tier 'edge'" in res.output
    res = CliRunner().invoke(app, [*base, "--judge", "phone", "--ask", "phone"])
    assert res.exit_code == 2 and "'phone' is the judge" in res.output
    res = CliRunner().invoke(app, [*base, "--judge", "phone", "--sample", "1.0"])  # its model file is missing
    assert res.exit_code == 2 and "tier 'phone' did not start" in res.output, res.output

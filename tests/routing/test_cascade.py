"""The cascade check: trained on a model's answers, it keeps good answers and escalates doubtful ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.routing.answer_tables import answer_table
from tierwise.outcomes import OutcomeTable
from tierwise.routing.answer_signals import ANSWER_FEATURES, CONFIDENCE_FEATURES, AnswerConfidence
from tierwise.routing.cascade import FEATURE_NAMES, CascadeCheck, cascade_features, train_cascade

RIGHT = "6 * 7 = <<6*7=42>>42\n#### 42"
WRONG = "6 * 7 = <<6*7=45>>45\n#### 45"
QUESTION = "question 0: what is 6 times 7?"


def test_trains_a_threshold_for_the_escalation_share_and_separates_answers(tmp_path: Path) -> None:
    check = train_cascade(answer_table(400), "weak", escalate_share=0.3)
    t = check.training
    assert t["rows"] == 400 and abs(t["heldout_escalated_share"] - 0.3) <= 0.02
    assert t["heldout_accuracy_kept"] > t["accuracy"] > t["heldout_accuracy_escalated"]
    assert check.p_good(QUESTION, RIGHT) > check.threshold > check.p_good(QUESTION, WRONG)
    assert check.should_escalate(QUESTION, WRONG) == (True, pytest.approx(check.p_good(QUESTION, WRONG)))
    assert check.should_escalate(QUESTION, WRONG, threshold=0.0)[0] is False
    loaded = CascadeCheck.load(check.save(tmp_path / "cascade.json"))
    assert loaded.p_good(QUESTION, WRONG) == pytest.approx(check.p_good(QUESTION, WRONG), abs=1e-12)
    assert loaded.threshold == check.threshold and loaded.training == check.training


def test_no_escalation_share_means_nothing_escalates() -> None:
    check = train_cascade(answer_table(100), "weak", escalate_share=0.0)
    assert check.training["heldout_escalated_share"] == 0.0 and not check.should_escalate(QUESTION, WRONG)[0]


def test_refuses_tables_without_answers_and_foreign_files(tmp_path: Path) -> None:
    table = answer_table(50)
    with pytest.raises(ValueError, match="no answers of 'strong'"):
        train_cascade(table, "strong")
    with pytest.raises(ValueError, match="escalate_share"):
        train_cascade(table, "weak", escalate_share=1.5)
    other = tmp_path / "router.json"
    other.write_text(json.dumps({"format": "tierwise-router", "version": 1}))
    with pytest.raises(ValueError, match="not a tierwise-cascade file"):
        CascadeCheck.load(other)
    doc = json.loads(train_cascade(table, "weak").save(tmp_path / "c.json").read_text())
    doc["features"] = doc["features"][:-1]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="retrain"):
        CascadeCheck.load(tmp_path / "old.json")


def test_features_are_named_in_order() -> None:
    x = cascade_features(QUESTION, RIGHT)
    assert x.shape == (len(FEATURE_NAMES),) and np.isfinite(x).all()
    assert x[FEATURE_NAMES.index("arithmetic_error")] == 0.0
    assert cascade_features(QUESTION, WRONG)[FEATURE_NAMES.index("arithmetic_error")] == 1.0


def _confidence(p: float) -> AnswerConfidence:
    return AnswerConfidence(mean_logprob=float(np.log(p)), min_logprob=float(np.log(p / 4)), mean_entropy=2.0 * (1 - p),
                            tokens=20)


def test_the_device_models_own_doubt_makes_an_answer_escalate_first() -> None:
    # the same answer text everywhere: only the model's confidence tells right from wrong
    rng = np.random.default_rng(0)
    sure = rng.random(200) < 0.5
    right = np.where(sure, rng.random(200) < 0.9, rng.random(200) < 0.2)
    queries = [f"What is {i} times 3?" for i in range(200)]
    table = OutcomeTable(queries=queries, models=["device"], scores=right.astype(float)[:, None],
                         responses={"device": ["The answer is 12."] * 200})
    confidences: list[AnswerConfidence | None] = [_confidence(0.9 if s else 0.3) for s in sure]
    check = train_cascade(table, "device", escalate_share=0.4, confidences=confidences)
    question, answer = "What is 77 times 3?", "The answer is 12."
    escalate_unsure, p_unsure = check.should_escalate(question, answer, confidence=_confidence(0.3))
    escalate_sure, p_sure = check.should_escalate(question, answer, confidence=_confidence(0.9))
    assert escalate_unsure and not escalate_sure and p_unsure < p_sure - 0.3
    assert check.training["heldout_accuracy_kept"] > check.training["heldout_accuracy_escalated"] + 0.4


def test_a_file_from_before_the_confidence_features_still_loads(tmp_path: Path) -> None:
    check = train_cascade(answer_table(), "weak", escalate_share=0.3)
    path = check.save(tmp_path / "c.json")
    doc = json.loads(path.read_text())
    at, n = len(ANSWER_FEATURES), len(CONFIDENCE_FEATURES)
    for key in ("mean", "std", "weights"):
        doc[key] = doc[key][:at] + doc[key][at + n :]
    doc["features"] = doc["features"][:at] + doc["features"][at + n :]
    path.write_text(json.dumps(doc))
    old = CascadeCheck.load(path)
    q, a = answer_table().queries[0], (answer_table().responses or {})["weak"][0]
    assert old.p_good(q, a) == pytest.approx(check.p_good(q, a), abs=1e-9)  # trained without: zero there anyway
    assert old.p_good(q, a, _confidence(0.1)) == old.p_good(q, a)  # zero weight on what it never saw

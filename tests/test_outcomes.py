"""OutcomeTable and its loaders (synthetic files always; the shared data sets when present)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tierwise.outcomes import OutcomeTable, load_contaminated_prompts, load_outcomes, mmlu_pro_query

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def _table() -> OutcomeTable:
    return OutcomeTable(
        queries=["a", "b", "c"],
        models=["x", "y"],
        scores=np.array([[1.0, 0.0], [np.nan, 1.0], [0.5, 1.0]]),
        categories=["k1", "k2", "k1"],
        output_tokens=np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
    )


def test_subset_and_select_models_keep_rows_aligned() -> None:
    t = _table()
    s = t.subset([2, 0]).select_models(["y"])
    assert s.queries == ["c", "a"]
    assert s.categories == ["k1", "k1"]
    assert s.scores[:, 0].tolist() == [1.0, 0.0]
    assert s.output_tokens is not None and s.output_tokens[:, 0].tolist() == [6.0, 2.0]
    assert s.query_ids == [t.query_ids[2], t.query_ids[0]]
    assert t.complete_rows().tolist() == [True, False, True]
    assert t.mean_scores() == {"x": 0.75, "y": pytest.approx(2 / 3)}
    with pytest.raises(KeyError, match="unknown models"):
        t.select_models(["z"])


def test_rejects_scores_out_of_range_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        OutcomeTable(queries=["a"], models=["x"], scores=np.array([[2.0]]))
    with pytest.raises(ValueError, match="shape"):
        OutcomeTable(queries=["a", "b"], models=["x"], scores=np.array([[1.0]]))


def test_generic_csv_and_jsonl_pivot(tmp_path: Path) -> None:
    csv_path = tmp_path / "log.csv"
    csv_path.write_text(
        "query,model,score,output_tokens,category\nhello,small,1,10,chat\nhello,big,0,,chat\nsum 2+2,big,1,5,math\n"
    )
    t = load_outcomes(csv_path)
    assert t.models == ["small", "big"]
    assert t.queries == ["hello", "sum 2+2"]
    assert np.isnan(t.scores[1, 0]) and t.scores[1, 1] == 1.0 and t.scores[0].tolist() == [1.0, 0.0]
    assert t.categories == ["chat", "math"]
    assert t.output_tokens is not None and t.output_tokens[0, 0] == 10.0 and np.isnan(t.output_tokens[0, 1])
    jl = tmp_path / "log.jsonl"
    jl.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"query": "q1", "model": "a", "score": 0.25, "query_id": "id1"},
                {"query": "q1", "model": "b", "score": 1.0, "query_id": "id1"},
            ]
        )
    )
    t2 = load_outcomes(jl)
    assert t2.query_ids == ["id1"] and t2.scores.tolist() == [[0.25, 1.0]] and t2.output_tokens is None
    assert t.responses is None and t2.responses is None


def test_generic_response_field_and_bad_responses(tmp_path: Path) -> None:
    jl = tmp_path / "answers.jsonl"
    rows = [
        {"query": "q1", "model": "a", "score": 1, "response": "#### 4"},
        {"query": "q2", "model": "a", "score": 0},
        {"query": "q1", "model": "b", "score": 1},
    ]
    jl.write_text("\n".join(json.dumps(r) for r in rows))
    t = load_outcomes(jl)
    assert t.responses == {"a": ["#### 4", ""]}
    with pytest.raises(ValueError, match="does not have"):
        OutcomeTable(queries=["q"], models=["a"], scores=np.ones((1, 1)), responses={"z": ["x"]})
    with pytest.raises(ValueError, match="one text per query"):
        OutcomeTable(queries=["q"], models=["a"], scores=np.ones((1, 1)), responses={"a": []})


def test_routellm_single_csv_and_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    body = 'prompt,weak,strong,weak_response,strong_response\n"q1",True,False,abcd,abcdefgh\n"q2",False,True,,x\n'
    (tmp_path / "d" / "mmlu_algebra.csv").write_text(body)
    (tmp_path / "d" / "mmlu_law.csv").write_text(body.replace("q1", "q3"))
    t = load_outcomes(tmp_path / "d")
    assert t.models == ["weak", "strong"]
    assert t.categories == ["algebra", "algebra", "law", "law"]
    assert t.output_tokens is not None and t.output_tokens[0].tolist() == [1.0, 2.0]
    assert t.responses == {"weak": ["abcd", "", "abcd", ""], "strong": ["abcdefgh", "x", "abcdefgh", "x"]}
    picked = t.subset([3, 0]).select_models(["strong"])
    assert picked.responses == {"strong": ["x", "abcdefgh"]}
    assert t.select_models(["strong", "weak"]).subset([1]).responses == {"weak": [""], "strong": ["x"]}
    single = load_outcomes(tmp_path / "d" / "mmlu_law.csv", format="routellm")
    assert single.categories is None and single.queries == ["q3", "q2"]
    with pytest.raises(ValueError, match="unknown outcome format"):
        load_outcomes(tmp_path / "d", format="nope")


def test_mmlu_pro_query_letters_options() -> None:
    assert mmlu_pro_query("Q?", ["x", "y"]) == "Q?\nA. x\nB. y"


@pytest.mark.skipif(not (DATASETS / "README.md").exists(), reason="shared datasets absent")
def test_shared_datasets_load_with_published_accuracies() -> None:
    mmlu = load_outcomes(DATASETS / "routellm" / "mmlu")
    assert len(mmlu) == 14042 and len(set(mmlu.categories or [])) == 57
    assert mmlu.mean_scores()["gpt-4-1106-preview"] == pytest.approx(0.806, abs=0.001)
    gsm = load_outcomes(DATASETS / "routellm" / "gsm8k" / "gsm8k_responses.csv")
    assert len(gsm) == 1319 and gsm.models == ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    assert gsm.output_tokens is not None and np.nanmean(gsm.output_tokens) > 10
    assert gsm.responses is not None and all(len(r) == 1319 for r in gsm.responses.values())
    assert "####" in gsm.responses["mistralai/Mixtral-8x7B-Instruct-v0.1"][0] and mmlu.responses is None
    pro = load_outcomes(DATASETS / "mmlu_pro" / "outcomes.csv.gz")
    assert len(pro) == 9633 and len(pro.models) == 12
    assert np.isnan(pro.scores[:, pro.models.index("DeepSeek-Coder-V2")]).sum() > 0
    assert pro.mean_scores()["Phi-3-mini-4k-instruct"] == pytest.approx(0.41, abs=0.01)
    bad = load_contaminated_prompts(DATASETS / "routellm" / "gsm8k" / "contaminated_prompts.jsonl")
    assert 1 <= len(bad) <= 12 and bad <= set(gsm.queries)

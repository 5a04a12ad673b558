from __future__ import annotations

import pytest
from pydantic import ValidationError

from tierwise.planning.catalog import Catalog
from tierwise.planning.measurements import OperatingPoint, load_measurements


def test_every_point_resolves_in_the_catalog_and_cites_its_files(cat: Catalog) -> None:
    data = load_measurements()
    assert len(data.points) >= 20
    for p in data.points:
        cat.gpu(p.gpu), cat.model(p.model), cat.quant(p.quant)
        assert p.gpus % p.tp == 0 and p.replicas >= 1
        assert p.config
        if p.id.startswith("mlperf"):  # repository @ commit, then the results file
            repo, path = p.source.split(" ", 1)
            assert "@" in repo and path.endswith("mlperf_log_summary.txt")
        else:
            assert p.source.startswith("https://")


def test_mlperf_scenarios_carry_their_latency_constraints() -> None:
    limits = {
        (p.model, p.id.rsplit("/", 1)[1]): (p.slo.ttft_ms, p.slo.tpot_ms) for p in load_measurements().points if p.slo
    }
    assert limits[("llama-2-70b", "server")] == (2000, 200)
    assert limits[("llama-2-70b", "interactive")] == (450, 40)
    assert limits[("llama-3.1-8b", "server")] == (2000, 100)


def test_output_length_is_the_runs_own_tokens_per_sample() -> None:
    data = load_measurements()
    h200 = next(p for p in data.points if p.id == "mlperf4.1/nvidia/8xh200/llama2-70b/offline")
    _, output = data.lengths(h200)
    assert output.mean == pytest.approx(31302.7 / 107.477)
    assert output.max == 1024
    assert any("prompt mean" in a for a in data.assumptions(h200))  # the unpublished input mean is flagged


def test_a_point_without_its_load_is_rejected() -> None:
    base = next(p for p in load_measurements().points if p.scenario == "closed_loop").model_dump()
    with pytest.raises(ValidationError, match="needs its load"):
        OperatingPoint.model_validate({**base, "concurrency": None})
    with pytest.raises(ValidationError, match="dataset or both"):
        OperatingPoint.model_validate({**base, "prompt": None})

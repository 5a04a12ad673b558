from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tierwise.planning.cli import plan_app, profile_app
from tierwise.planning.profile import DecodePoint, PrefillPoint, Profile

from .conftest import REPO

runner = CliRunner()


def _cluster_file(tmp_path: Path, **extra: object) -> Path:
    cfg = {
        "workload": {
            "devices": 200_000,
            "requests_per_device_per_day": 10,
            "prompt_tokens": {"mean": 400, "max": 2048},
            "output_tokens": {"mean": 100, "max": 512},
        },
        "model": "llama-3.1-8b",
        "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
        "gpus": ["h100", "l40s"],
        "tp_options": [1],
        "probe_seconds": 60,
        "min_probe_requests": 200,
        **extra,
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_plan_fleet_prints_coverage_and_assumptions() -> None:
    result = runner.invoke(plan_app, ["fleet", "-f", str(REPO / "examples" / "fleet.yaml")])
    assert result.exit_code == 0, result.output
    assert "Coverage:" in result.output and "Budget: ≤ 25% of RAM" in result.output
    assert "What would raise coverage" in result.output


def test_plan_cluster_with_fleet_derived_share(tmp_path: Path) -> None:
    path = _cluster_file(tmp_path, fleet=str(REPO / "examples" / "fleet.yaml"), router_cloud_share=0.2)
    result = runner.invoke(plan_app, ["cluster", "-f", str(path), "--price", "h100=2.5"])
    assert result.exit_code == 0, result.output
    assert "(1 − coverage" in result.output and "h100" in result.output and "l40s" in result.output
    assert "Efficiency: calibrated for vllm" in result.output and "measurements.yaml" in result.output


def test_plan_cluster_engine_choice(tmp_path: Path) -> None:
    path = _cluster_file(tmp_path, cloud_share=0.2, gpus=["h100"])
    calibrated = runner.invoke(plan_app, ["cluster", "-f", str(path)])
    uncalibrated = runner.invoke(plan_app, ["cluster", "-f", str(path), "--engine", "roofline"])
    assert uncalibrated.exit_code == 0 and "uncalibrated catalog factors" in uncalibrated.output

    def rate_per_replica(output: str) -> float:
        row = next(line for line in output.splitlines() if line.startswith("│ h100"))
        return float(row.split("│")[4])

    # vLLM's calibrated efficiency is below the catalog's default: each replica sustains less
    assert rate_per_replica(calibrated.output) < 0.9 * rate_per_replica(uncalibrated.output)
    bad = runner.invoke(plan_app, ["cluster", "-f", str(path), "--engine", "sglang"])
    assert bad.exit_code != 0 and "tensorrt-llm" in bad.output


def test_plan_check_reports_held_out_errors() -> None:
    result = runner.invoke(plan_app, ["check", "--engine", "vllm", "--quick"])
    assert result.exit_code == 0, result.output
    assert "mlperf5.1/redhat/1xh100/llama3.1-8b/server" in result.output
    assert "vllm: scale" in result.output and "held-out median" in result.output
    assert runner.invoke(plan_app, ["check", "--split", "random", "--engine", "vllm", "--quick"]).exit_code != 0


def test_plan_cluster_needs_a_share(tmp_path: Path) -> None:
    result = runner.invoke(plan_app, ["cluster", "-f", str(_cluster_file(tmp_path))])
    assert result.exit_code != 0 and "cloud_share" in str(result.exception)


def test_profile_compare_reports_error(tmp_path: Path) -> None:
    prof = Profile(
        gpu="h100",
        model="llama-3.1-8b",
        prefill=[PrefillPoint(batch=1, prompt_len=n, ms=0.03 * n + 5) for n in (512, 2048, 8192)],
        decode=[DecodePoint(batch=b, context=1024, ms=6.0 + 0.05 * b) for b in (1, 8, 32)],
    )
    path = tmp_path / "p.json"
    prof.dump(path)
    result = runner.invoke(profile_app, ["compare", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)[str(path)]
    assert 0 <= summary["decode_median"] < 0.5 and summary["all_median"] > 0

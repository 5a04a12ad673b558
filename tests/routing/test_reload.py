"""Hot reload of the router file: a retrained file is picked up without restart, with its version."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tierwise.cli import app
from tierwise.routing.features import FeaturizerSettings
from tierwise.routing.learned import LearnedRouter
from tierwise.routing.reload import RouterReloader, reloader_for
from tierwise.routing.router import CheapestHealthyRouter, Router
from tierwise.routing.router_file import RouterFile, TierSpec, file_version
from tierwise.routing.settings import RouterSettings


def _file(tolerance: float) -> RouterFile:
    return RouterFile(
        tiers=[TierSpec("device", "small", "device"), TierSpec("cloud", "big", "cloud", 1.0, 2.0)],
        featurizer=FeaturizerSettings(embedding="none"),
        predictor={"name": "logistic", "hyper_parameters": {"l2": 10.0}},
        predictor_arrays={"W": np.zeros((10, 2)), "mean": np.zeros(9), "std": np.ones(9)},
        tolerance=tolerance, target_cloud_share=0.2, heldout_margins=np.linspace(-1, 1, 11, dtype=np.float32),
    )


def test_the_version_names_the_content(tmp_path: Path) -> None:
    a = _file(0.1).save(tmp_path / "a" / "router.json")
    b = _file(0.1).save(tmp_path / "b" / "router.json")
    c = _file(0.2).save(tmp_path / "c" / "router.json")
    assert file_version(a) == file_version(b) != file_version(c)
    assert RouterFile.load(c).tolerance == 0.2


def test_a_json_paired_with_another_npz_is_refused(tmp_path: Path) -> None:
    path = _file(0.1).save(tmp_path / "router.json")
    other = _file(0.1)
    other.predictor_arrays = {"W": np.ones((10, 2)), "mean": np.zeros(9), "std": np.ones(9)}
    other.save(tmp_path / "other" / "router.json")
    os.replace(tmp_path / "other" / "router.npz", tmp_path / "router.npz")  # a rewrite caught half-way
    with pytest.raises(ValueError, match="does not match"):
        RouterFile.load(path)
    assert "arrays_sha256" in json.loads(path.read_text())


def test_a_changed_file_is_reloaded_and_a_broken_one_keeps_the_old_router(tmp_path: Path) -> None:
    path = _file(0.1).save(tmp_path / "router.json")
    built: list[float] = []

    def build(p: Path) -> Router:
        built.append(RouterFile.load(p).tolerance)
        return CheapestHealthyRouter()

    async def scenario() -> None:
        reloader = RouterReloader(path, build=build, check_every_s=0.02)
        await reloader.start()
        first, v1 = reloader.current()
        await asyncio.sleep(0.1)
        assert built == [0.1]  # unchanged file: not rebuilt
        _file(0.3).save(path)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if reloader.current()[1] != v1:
                break
        second, v2 = reloader.current()
        assert v2 == file_version(path) != v1 and second is not first and built == [0.1, 0.3]
        path.write_text("{not json")
        await asyncio.sleep(0.15)
        assert reloader.current() == (second, v2)  # the broken file is logged, the old router serves on
        await reloader.aclose()

    asyncio.run(scenario())


def test_current_before_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        RouterReloader(tmp_path / "router.json").current()
    with pytest.raises(ValueError):
        RouterReloader(tmp_path / "router.json", check_every_s=0)


def test_the_gateways_reloader_follows_its_router_settings(tmp_path: Path) -> None:
    rows = [{"query": f"{'Prove theorem' if i % 2 else 'Say hi to'} {i}", "model": m,
             "score": float(m == "big" or i % 2 == 0)} for i in range(60) for m in ("small", "big")]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = str(tmp_path / "router.json")
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "log.jsonl"), "--tiers", "device=small,cloud=big",
                                   "--embedding", "none", "--predictors", "logistic", "-o", out])
    assert res.exit_code == 0, res.output
    reloader = reloader_for(RouterSettings(model=tmp_path / "router.json", target_cloud_share=0.4, reload_every_s=2))
    assert reloader.check_every_s == 2
    assert reloader.load()
    router, version = reloader.current()
    assert isinstance(router, LearnedRouter) and router.target_cloud_share == 0.4
    assert version == file_version(tmp_path / "router.json")
    with pytest.raises(ValueError):
        reloader_for(RouterSettings())

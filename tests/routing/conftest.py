"""Shared fixtures for the routing tests."""

from __future__ import annotations

from pathlib import Path

import pytest

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not (DATASETS / "README.md").exists():
        pytest.skip("shared datasets are not present at ../shared/datasets")
    return DATASETS

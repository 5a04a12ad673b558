from __future__ import annotations

from pathlib import Path

import pytest

from tierwise.planning.catalog import Catalog, load_catalog

REPO = Path(__file__).resolve().parents[2]
OUTCOMES = REPO.parent / "shared" / "datasets" / "mmlu_pro" / "outcomes.csv.gz"


@pytest.fixture(scope="session")
def cat() -> Catalog:
    return load_catalog()


@pytest.fixture
def outcomes_path() -> Path:
    if not OUTCOMES.exists():
        pytest.skip(f"outcome data not found at {OUTCOMES}")
    return OUTCOMES

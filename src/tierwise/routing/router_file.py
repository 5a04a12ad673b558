"""The trained-router file: `router.json` (settings, tiers, calibration) + `router.npz` beside it (arrays).

No pickle anywhere: the npz is read with `allow_pickle=False`. The JSON names its npz in `"arrays"`, relative
to the JSON's directory. Format (version 1)::

    {"format": "tierwise-router", "version": 1,
     "tiers": [{"name": "device", "model": "...", "location": "device",
                "input_per_mtok": 0.0, "output_per_mtok": 0.0, "expected_output_tokens": 250.0}, ...],
     "featurizer": {"embedding": "static", "max_tokens": 256, "cheap_weight": 0.2},
     "predictor": {"name": "knn", "hyper_parameters": {"k": 40}},
     "calibration": {"tolerance": 0.07, "target_cloud_share": 0.2, "heldout_cloud_share": 0.2, ...},
     "training": {...}, "arrays": "router.npz", "arrays_sha256": "..."}

Both files are written to a temporary name and renamed into place (the npz first), and the JSON records the
npz's SHA-256, so a gateway reloading the file while it is rewritten never pairs a new JSON with an old npz.
`file_version(path)` names a router file by its content (what the gateway reports as the router version).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.costs import DEFAULT_OUTPUT_TOKENS
from tierwise.routing.features import FeaturizerSettings

FORMAT = "tierwise-router"
VERSION = 1


@dataclass
class TierSpec:
    """A tier the router was trained for: its name, the model whose outcomes stand for it, and its prices."""

    name: str
    model: str
    location: str
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    expected_output_tokens: float = float(DEFAULT_OUTPUT_TOKENS)


@dataclass
class RouterFile:
    """Everything a `LearnedRouter` needs, as written to / read from disk."""

    tiers: list[TierSpec]
    featurizer: FeaturizerSettings
    predictor: dict[str, Any]
    predictor_arrays: dict[str, np.ndarray]
    tolerance: float
    target_cloud_share: float
    heldout_margins: np.ndarray
    calibration: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write `path` (JSON) and its `.npz` sibling; returns the JSON path."""
        p = Path(path)
        npz = p.with_suffix(".npz")
        p.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"predictor/{k}": v for k, v in self.predictor_arrays.items()}
        arrays["calibration/heldout_margins"] = self.heldout_margins
        tmp_npz = npz.with_name(f".{npz.name}.{os.getpid()}.tmp")
        with tmp_npz.open("wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
        digest = hashlib.sha256(tmp_npz.read_bytes()).hexdigest()
        os.replace(tmp_npz, npz)
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "tiers": [vars(t) for t in self.tiers],
            "featurizer": self.featurizer.model_dump(),
            "predictor": self.predictor,
            "calibration": {
                **self.calibration,
                "tolerance": self.tolerance,
                "target_cloud_share": self.target_cloud_share,
            },
            "training": self.training,
            "arrays": npz.name,
            "arrays_sha256": digest,
        }
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> RouterFile:
        """Read a router file written by `save`; raises ValueError on another format or version."""
        p = Path(path)
        doc = json.loads(p.read_text())
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ValueError(f"{p} is not a {FORMAT} file of version {VERSION}")
        raw = (p.parent / doc["arrays"]).read_bytes()
        if "arrays_sha256" in doc and hashlib.sha256(raw).hexdigest() != doc["arrays_sha256"]:
            raise ValueError(f"{p}: its arrays file {doc['arrays']} does not match (being rewritten?)")
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        cal = dict(doc["calibration"])
        return cls(
            tiers=[TierSpec(**t) for t in doc["tiers"]],
            featurizer=FeaturizerSettings(**doc["featurizer"]),
            predictor=doc["predictor"],
            predictor_arrays={k.removeprefix("predictor/"): v for k, v in arrays.items() if k.startswith("predictor/")},
            tolerance=float(cal.pop("tolerance")),
            target_cloud_share=float(cal.pop("target_cloud_share")),
            heldout_margins=arrays["calibration/heldout_margins"],
            calibration=cal,
            training=doc.get("training", {}),
        )


def file_version(path: str | Path) -> str:
    """A router file's version: the first 12 hex digits of the SHA-256 of its JSON (which holds the npz's hash)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]

"""The cluster.yaml a user writes for `tierwise plan cluster`, resolved into a `ClusterSpec`.

The cloud share is given, or derived: devices the fleet planner leaves uncovered send every request to the
cloud, covered devices send the share their router was calibrated to (`router_cloud_share`, or the
`target_cloud_share` stored in a router file).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tierwise.planning.capacity import SLO, ClusterSpec
from tierwise.planning.workload import Workload


class ClusterFile(BaseModel):
    """What `tierwise plan cluster -f cluster.yaml` reads (paths relative to the file)."""

    model_config = ConfigDict(extra="forbid")
    workload: Workload
    model: str
    quant: str = "bf16"
    kv_bits: float = 16
    engine: str = "vllm"  # efficiency factors calibrated for this engine class; "roofline" = uncalibrated
    slo: SLO = SLO()
    gpus: list[str] = ["h100", "h20", "rtx-pro-6000"]
    prices: dict[str, float] = {}  # USD per GPU-hour, set by the user
    cloud_share: float | None = Field(None, gt=0, le=1)
    fleet: Path | None = None  # a fleet.yaml: its uncovered devices are all-cloud
    router_cloud_share: float | None = Field(None, ge=0, le=1)
    router_model: Path | None = None  # a router JSON holding `target_cloud_share`
    max_batch: int = Field(256, ge=1)
    max_prefill_tokens: int = Field(8192, ge=1)
    tp_options: list[int] = [1, 2, 4, 8]
    probe_seconds: float = Field(900.0, gt=0)
    min_probe_requests: int = Field(1000, ge=50)
    seed: int = 0


def router_share(path: Path) -> float:
    """The cloud share a router file was calibrated to (`target_cloud_share` or `cloud_share`, any depth 1)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for scope in (data, *(v for v in data.values() if isinstance(v, dict))):
        for key in ("target_cloud_share", "cloud_share"):
            if isinstance(scope.get(key), int | float):
                return float(scope[key])
    raise ValueError(f"{path}: no target_cloud_share / cloud_share found")


def cloud_share(cfg: ClusterFile, *, coverage: float | None) -> tuple[float, str]:
    """The cloud share to size for, and how it was obtained (printed with the plan)."""
    if cfg.cloud_share is not None:
        return cfg.cloud_share, "given"
    routed = cfg.router_cloud_share
    how = "router_cloud_share"
    if routed is None and cfg.router_model is not None:
        routed, how = router_share(cfg.router_model), f"router file {cfg.router_model}"
    if coverage is None or routed is None:
        raise ValueError("give cloud_share, or a fleet plus router_cloud_share / router_model")
    share = (1 - coverage) + coverage * routed
    return share, f"(1 − coverage {coverage:.3f}) + coverage × {routed:.3f} ({how})"


def to_spec(cfg: ClusterFile, share: float) -> ClusterSpec:
    return ClusterSpec(
        workload=cfg.workload,
        cloud_share=share,
        model=cfg.model,
        quant=cfg.quant,
        kv_bits=cfg.kv_bits,
        engine=cfg.engine,
        slo=cfg.slo,
        max_batch=cfg.max_batch,
        max_prefill_tokens=cfg.max_prefill_tokens,
        tp_options=cfg.tp_options,
        probe_seconds=cfg.probe_seconds,
        min_probe_requests=cfg.min_probe_requests,
        seed=cfg.seed,
    )

"""Typed settings of the decision log (the `router.log:` config section). Validates values; reads no files.

Usage: ``DecisionLogSettings(path="traffic.sqlite", max_mb=256, keep_text=True, location="device")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DecisionLogSettings(BaseModel):
    """Where the gateway records each routed request, and how much it keeps.

    - `path`: the SQLite file (created if missing).
    - `max_mb` / `max_age_days`: the oldest rows are deleted past either bound (checked every `prune_every_s`).
    - `keep_text`: keep prompt and answer text (needed to label traffic later); off: only numbers and names.
    - `location`: where the log file lives. Text of a request the personal-data policy kept on the device is
      kept only when this is ``device``: such text must not leave the device in a log either.
    - `queue_size`: records waiting for the writer thread; when full, new records are dropped and counted.
    - `batch_size` / `flush_interval_s`: the writer inserts up to this many records per transaction, gathered for
      this long after the first one arrives (written later, and with less work per request).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    max_mb: float = Field(256.0, gt=0)
    max_age_days: float = Field(30.0, gt=0)
    keep_text: bool = False
    location: Literal["device", "edge", "cloud"] = "edge"
    queue_size: int = Field(10_000, ge=1)
    batch_size: int = Field(256, ge=1)
    flush_interval_s: float = Field(0.05, ge=0, le=10)
    prune_every_s: float = Field(60.0, gt=0)

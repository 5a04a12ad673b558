"""`GET /healthz`: 200 while at least one tier is available, else 503 — from the state the probes keep.

No upstream call is made per request (an open endpoint must not be a relay that hammers the backends with the
gateway's keys). With API keys configured, a caller without a valid key learns only the overall status and which
tiers are available; details (probe texts, latencies, locations) need a key.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    state = request.app.state.tierwise
    tiers = state.health_report(detailed=state.auth.accepts(request))
    available = [name for name, t in tiers.items() if t["available"]]
    status = "ok" if len(available) == len(tiers) else "degraded" if available else "down"
    return JSONResponse({"status": status, "tiers": tiers}, status_code=200 if available else 503)

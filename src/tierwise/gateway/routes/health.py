"""`GET /healthz`: probes every tier now; 200 while at least one tier is available, else 503."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    tiers = await request.app.state.tierwise.probe()
    available = [name for name, t in tiers.items() if t["available"]]
    status = "ok" if len(available) == len(tiers) else "degraded" if available else "down"
    return JSONResponse({"status": status, "tiers": tiers}, status_code=200 if available else 503)

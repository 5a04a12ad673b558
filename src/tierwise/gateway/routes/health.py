"""`GET /healthz`: 200 while at least one tier is available, else 503 — from the state the probes keep.

No upstream call is made per request (an open endpoint must not be a relay that hammers the backends with the
gateway's keys). With API keys configured, a caller without a valid key learns only the overall status and which
tiers are available; details (probe texts, latencies, locations) need a key. With `gateway.state_url`,
`shared_state` says whether Redis answers (while it does not, the status is at best "degraded": budget, breakers,
rate limits and in-flight counts fall back to this replica's own).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    state = request.app.state.tierwise
    detailed = state.auth.accepts(request)
    tiers = state.health_report(detailed=detailed)
    available = [name for name, t in tiers.items() if t["available"]]
    status = "ok" if len(available) == len(tiers) else "degraded" if available else "down"
    body: dict[str, object] = {"status": status, "tiers": tiers}
    if state.shared is not None:  # Redis down: still serving, on this replica's own state
        body["shared_state"] = state.shared.report(detailed=detailed)
        if not state.shared.up and status == "ok":
            body["status"] = "degraded"
    return JSONResponse(body, status_code=200 if available else 503)

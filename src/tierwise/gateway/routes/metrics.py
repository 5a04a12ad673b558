"""`GET /metrics`: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tierwise.gateway.auth import api_key

router = APIRouter()


@router.get("/metrics", dependencies=[Depends(api_key)])
async def metrics(request: Request) -> Response:
    state = request.app.state.tierwise
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""`GET /v1/models`: every tier, plus `auto` (routed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from tierwise.gateway.auth import api_key

router = APIRouter()


@router.get("/v1/models", dependencies=[Depends(api_key)])
async def list_models(request: Request) -> dict[str, Any]:
    state = request.app.state.tierwise
    data: list[dict[str, Any]] = [
        {
            "id": "auto",
            "object": "model",
            "created": 0,
            "owned_by": "tierwise",
            "tierwise": {"routed": True, "router": state.router.name},
        }
    ]
    for name, tier in state.tiers.items():
        data.append(
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "tierwise",
                "tierwise": {
                    "location": tier.location,
                    "backend": tier.config.backend,
                    "model": tier.model_name,
                    "cost": tier.cost.model_dump(),
                },
            }
        )
    return {"object": "list", "data": data}

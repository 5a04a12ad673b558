"""`tierwise serve --workers N`: N uvicorn worker processes on one port, each a whole gateway with its own tiers.

uvicorn starts workers from import strings, so the validated settings travel to them in an environment variable
(as JSON) and each worker builds its app, and its connection-limited HTTP protocol, from them. Workers share budget
and tier health only through `gateway.state_url` (Redis): `serve` refuses N > 1 without it. Usage::

    export_settings(settings)
    uvicorn.run("tierwise.gateway.workers:create_worker_app", factory=True, workers=2,
                http="tierwise.gateway.workers:HttpProtocol")
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tierwise.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

SETTINGS_ENV = "TIERWISE_WORKER_SETTINGS"


def export_settings(settings: Settings) -> None:
    """Hand the settings to the worker processes uvicorn is about to start (they inherit the environment)."""
    os.environ[SETTINGS_ENV] = settings.model_dump_json()


def worker_settings() -> Settings:
    try:
        return Settings.model_validate_json(os.environ[SETTINGS_ENV])
    except KeyError:
        raise RuntimeError(f"{SETTINGS_ENV} is not set: start workers with `tierwise serve --workers N`") from None


def create_worker_app() -> FastAPI:
    """uvicorn's app factory in each worker."""
    from tierwise.gateway.app import create_app

    return create_app(worker_settings())


def __getattr__(name: str) -> Any:
    # `HttpProtocol` is built on first access (when uvicorn imports it in a worker), not at import.
    if name == "HttpProtocol":
        from tierwise.gateway.connection_limits import ConnectionLimits
        from tierwise.gateway.limited_protocol import protocol_class

        connections = worker_settings().gateway.connections.model_dump()
        connections.pop("backlog")
        return protocol_class(ConnectionLimits(**connections))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

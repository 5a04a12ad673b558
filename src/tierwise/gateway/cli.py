"""`tierwise serve`: start the gateway on uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from tierwise.config import Settings
from tierwise.errors import ConfigError


def serve(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="tiers YAML file (default: SmolLM2-135M on a device and an edge tier)"),
    ] = None,
    host: Annotated[str | None, typer.Option(help="overrides gateway.host")] = None,
    port: Annotated[int | None, typer.Option(help="overrides gateway.port")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    access_log: Annotated[bool, typer.Option(help="log every request line")] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="gateway processes on one port (more than 1 needs gateway.state_url)")
    ] = 1,
) -> None:
    """Serve the OpenAI-compatible gateway in front of the configured tiers."""
    import uvicorn

    from tierwise.bundled import default_settings
    from tierwise.config import load_settings
    from tierwise.gateway.app import create_app
    from tierwise.gateway.connection_limits import ConnectionLimits, fd_budget_problem
    from tierwise.gateway.limited_protocol import protocol_class
    from tierwise.gateway.workers import export_settings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = default_settings() if config is None else load_settings(config)
        _preflight(settings)
        if workers > 1 and settings.gateway.state_url is None:
            raise ConfigError(f"--workers {workers} needs gateway.state_url (Redis): without it each worker would "
                              "keep its own budget ledger and tier health")
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    overrides = {"host": host, "port": port}
    gateway = settings.gateway.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    settings = settings.model_copy(update={"gateway": gateway})  # the app knows where it listens (allowed hosts)
    connections = gateway.connections.model_dump()
    backlog = connections.pop("backlog")
    limits = ConnectionLimits(**connections)
    _raise_open_file_limit()
    if problem := fd_budget_problem(limits, backlog=backlog):
        logging.getLogger("tierwise.gateway").warning(problem)
    if workers > 1:  # uvicorn starts workers from import strings: the settings go through the environment
        export_settings(settings)
        target: Any = "tierwise.gateway.workers:create_worker_app"
        http: Any = "tierwise.gateway.workers:HttpProtocol"
    else:
        target, http = create_app(settings), protocol_class(limits)
    uvicorn.run(
        target,
        factory=workers > 1,
        workers=workers,
        host=gateway.host,
        port=gateway.port,
        http=http,  # bounds on request heads, slow clients and connections
        backlog=backlog,
        log_level=log_level,
        access_log=access_log,
        # uvicorn's own keep-alive default (5 s) drops pooled client connections; clients reuse them longer.
        timeout_keep_alive=30,
    )


def _raise_open_file_limit() -> None:
    """Every client and backend connection is a file descriptor: use what the hard limit allows (up to 65,536),
    as servers do, rather than a login shell's default of 1,024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _preflight(settings: Settings) -> None:
    """Catch what would make startup fail (missing files, unset keys) before uvicorn starts, with a clear message."""
    from tierwise.config import LlamaCppServerTierConfig, LlamaCppTierConfig, OpenAITierConfig

    for tier in settings.tiers:
        if isinstance(tier, LlamaCppTierConfig | LlamaCppServerTierConfig) and not tier.model_path.is_file():
            raise ConfigError(f"tier {tier.name!r}: model_path {tier.model_path} does not exist")
        if isinstance(tier, OpenAITierConfig | LlamaCppServerTierConfig):
            tier.api_key()  # raises when the named environment variable is unset
    model = settings.router.model
    if model is not None and not model.is_file():
        raise ConfigError(f"router.model: {model} does not exist (train one with `tierwise train`)")
    from tierwise.gateway.app import load_cascade

    load_cascade(settings, [tier.name for tier in settings.tiers])

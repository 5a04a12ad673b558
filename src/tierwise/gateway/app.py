"""The gateway application factory: `create_app(settings)` → a FastAPI app (run it with uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from tierwise.config import Settings
from tierwise.errors import ConfigError
from tierwise.gateway.auth import ApiKeyAuth
from tierwise.gateway.browser_guard import BrowserGuard, default_allowed_hosts
from tierwise.gateway.dispatch import Dispatcher
from tierwise.gateway.errors import install_error_handlers
from tierwise.gateway.health import TierHealthTracker
from tierwise.gateway.limits import BodySizeLimit
from tierwise.gateway.metrics import GatewayMetrics
from tierwise.gateway.per_request import PerRequestMiddleware
from tierwise.gateway.routes import chat, completions, embeddings, health, metrics, models, responses
from tierwise.gateway.service import ChatService
from tierwise.gateway.state import GatewayState
from tierwise.routing.budget import BudgetLedger, SpendLedger
from tierwise.routing.cascade import CascadeCheck
from tierwise.routing.router import Router, build_router
from tierwise.routing.text_forms import normalise
from tierwise.tiers.base import Tier
from tierwise.tiers.registry import build_tier

log = logging.getLogger("tierwise.gateway")


def create_app(settings: Settings, *, tiers: dict[str, Tier] | None = None, router: Router | None = None) -> FastAPI:
    """Build the gateway. Tiers are built from `settings` unless given (tests inject their own)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = _build_state(settings, tiers=tiers, router=router)
        started: list[Tier] = []
        try:
            for tier in state.tiers.values():
                await tier.start()
                started.append(tier)
            app.state.tierwise = state
            app.state.chat = ChatService(state)
            app.state.metrics = state.metrics
            if state.shared is not None:
                await state.shared.start()  # never fails for Redis being down: the gateway serves on local state
            if state.router_reloader is not None:
                await state.router_reloader.start()  # watches the router file; a changed file is swapped in
            if state.decision_log is not None:
                state.decision_log.start()  # a file that cannot be opened is a ConfigError, before serving
            await state.probe()  # /healthz answers from probe results: have one before serving
            if settings.policies.personal_data != "off":
                normalise("")  # builds the scan's Unicode table (≈ 0.25 s) now, not in the first request
            prober = asyncio.create_task(_probe_forever(state), name="tierwise-health-prober")
            try:
                yield
            finally:
                prober.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await prober
        finally:
            if state.decision_log is not None:
                await state.decision_log.aclose()  # writes what is still queued
            if state.router_reloader is not None:
                await state.router_reloader.aclose()
            if state.rate_limits is not None:
                await state.rate_limits.aclose()
            if state.shared is not None:
                await state.shared.aclose()  # pushes spending still queued when Redis answers
            for tier in started:
                await tier.aclose()

    # FastAPI's /docs, /redoc and /openapi.json would answer without a key: with keys configured they are off.
    keyed = bool(settings.gateway.api_keys or settings.gateway.api_keys_env)
    docs: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None} if keyed else {}
    app = FastAPI(title="tierwise", version="0.1.0", lifespan=lifespan, **docs)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.gateway.max_body_bytes)
    allowed = settings.gateway.allowed_hosts
    app.add_middleware(
        BrowserGuard,
        allowed_hosts=frozenset(h.lower() for h in allowed) if allowed is not None
        else default_allowed_hosts(keyed=keyed, listen_host=settings.gateway.host),
    )
    # added last: outermost, so even refusals carry the request's id; its shared-state scope is released at the end
    app.add_middleware(PerRequestMiddleware)
    for module in (chat, completions, responses, embeddings, models, health, metrics):
        app.include_router(module.router)
    return app


def _build_state(settings: Settings, *, tiers: dict[str, Tier] | None, router: Router | None) -> GatewayState:
    tiers = tiers if tiers is not None else {cfg.name: build_tier(cfg) for cfg in settings.tiers}
    gw = settings.gateway
    trackers = {name: TierHealthTracker(gw.failure_threshold, gw.cooldown_s) for name in tiers}
    metrics_ = GatewayMetrics()
    shared = None
    if gw.state_url is not None:
        from tierwise.state import SharedStateStore  # the Redis client: only when state is shared

        shared = SharedStateStore.from_config(gw, trackers, registry=metrics_.registry)
    keys = list(gw.api_keys)
    if gw.api_keys_env:
        keys += [k.strip() for k in os.environ.get(gw.api_keys_env, "").split(",") if k.strip()]
    limits, rate_limiter = settings.policies.rate_limits, None
    if limits is not None:
        from tierwise.state.rate_limits import RateLimiter

        rate_limiter = RateLimiter(limits, store=shared, registry=metrics_.registry)
    inner_ledger: SpendLedger = shared.ledger if shared is not None else BudgetLedger()
    ledger, guard = inner_ledger, None
    if settings.policies.daily_budget_usd is not None:  # concurrent requests hold what they may spend
        from tierwise.state.budget_guard import BudgetGuard, ReservingLedger

        guard, ledger = BudgetGuard(inner_ledger, store=shared), ReservingLedger(inner_ledger)
        if shared is not None:
            shared.budget_guard = guard
    reloader = None
    if router is None and settings.router.model is not None and settings.router.name in (None, "learned"):
        from tierwise.routing.reload import reloader_for  # a learned router from a file: reloaded when it changes

        if not settings.router.model.is_file():
            raise ConfigError(f"router.model: {settings.router.model} does not exist (train one with `tierwise train`)")
        reloader = reloader_for(settings.router)
        reloader.load()  # at startup, as any router is built: a file that does not load stops the gateway here
        router = reloader.current()[0]
    decision_log = None
    if settings.router.log is not None:
        from tierwise.traffic.log import DecisionLog  # SQLite: only when the log is configured

        decision_log = DecisionLog(settings.router.log)
    return GatewayState(
        settings=settings,
        tiers=tiers,
        health=trackers,
        dispatcher=Dispatcher(tiers, trackers, metrics_),
        router=router or build_router(settings.router),
        router_reloader=reloader,
        decision_log=decision_log,
        metrics=metrics_,
        auth=ApiKeyAuth(keys),
        ledger=ledger,
        cascade=load_cascade(settings, list(tiers)),
        shared=shared,
        rate_limits=rate_limiter,
        budget_guard=guard,
    )


def load_cascade(settings: Settings, tiers: list[str]) -> CascadeCheck | None:
    """The configured cascade check, or None; a missing or foreign file, or an unknown tier, is a ConfigError."""
    config = settings.router.cascade
    if config is None:
        return None
    unknown = [name for name in config.check or [] if name not in tiers]
    if unknown:
        raise ConfigError(f"router.cascade.check: unknown tiers {unknown}; tiers are {list(tiers)}")
    if not config.model.is_file():
        raise ConfigError(
            f"router.cascade.model: {config.model} does not exist (train one with `tierwise train-cascade`)"
        )
    try:
        return CascadeCheck.load(config.model)
    except (ValueError, KeyError) as err:
        raise ConfigError(f"router.cascade.model: {err}") from None


async def _probe_forever(state: GatewayState) -> None:
    interval = state.settings.gateway.probe_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            await state.probe()
        except Exception:  # a probe bug must not stop probing
            log.exception("health probe failed")

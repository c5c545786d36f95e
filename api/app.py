"""The HTTP API (CONTRACT.md). One engine and one Temporal client per process, made in
the lifespan, never per request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
from fastapi import Depends, FastAPI
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from api import pages, problems
from api.edge import EdgeGuard, RateLimits, limit_buyer_writes
from api.openapi import document_router, install_problem_schema
from api.operations import install_operations
from api.routers import (
    admin,
    distributors,
    gateways,
    incident_actions,
    incidents,
    merchants,
    notifications,
    orders,
    people,
    precheck,
    refunds,
    reports,
    reviews,
    stuck,
)
from api.streams import RefundWatch, StreamSlots
from config.heap import settle_heap
from config.settings import Settings, get_settings
from config.temporal import connect
from domain.policy import CurrentPolicy
from peers.from_settings import supplier_client, wechat_client
from store.db import make_engine, make_read_session_factory, make_session_factory
from telemetry.tracing import tracer_provider as traces_from_settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


def create_app(
    settings: Settings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The API. `freeze_heap`: the process is this app's alone (`refundctl api`), so what
    start-up made may be frozen out of the collector's reach (config.heap)."""
    settings = settings or get_settings()
    # Traces: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (telemetry.tracing).
    tracer = tracer_provider or traces_from_settings(settings, process="api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
        )
        app.state.settings = settings
        app.state.api_keys = settings.roles_by_key()
        app.state.buyer_limits = RateLimits("buyer", settings.rate_limit_per_buyer)
        app.state.sessions = make_session_factory(engine)
        app.state.reads = make_read_session_factory(engine)
        app.state.watch = RefundWatch(app.state.reads, interval=settings.stream_poll_seconds)
        app.state.stream_slots = StreamSlots(settings.stream_max_per_key)
        app.state.temporal = await connect(settings, tracer_provider=tracer)
        app.state.policy = CurrentPolicy(settings.policy_path or None)
        watching = asyncio.create_task(app.state.watch.run(), name="events-watch")
        if freeze_heap:
            settle_heap()
        try:
            async with httpx.AsyncClient(timeout=settings.http_timeout_seconds) as http:
                app.state.supplier = supplier_client(settings, http)
                # Only used to verify notifications: the key material is the gateway's public key.
                app.state.wechat = wechat_client(settings, http)
                yield
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
            await engine.dispose()

    app = FastAPI(
        title="kami-refunds",
        version="0.1.0",
        description="Self-service refunds for card-key shops. Every `/v1` call carries "
        "`Authorization: Bearer <key>`; errors are `application/problem+json`.",
        lifespan=lifespan,
        dependencies=[Depends(limit_buyer_writes)],
    )
    problems.install(app)
    # Added last, runs first: the key and the Content-Length are checked before anything
    # reads the body; chunked bodies are counted as they stream in.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes)
    app.add_middleware(
        EdgeGuard,
        max_body_bytes=settings.max_body_bytes,
        per_key=RateLimits("key", settings.rate_limit_per_key),
    )
    for module in (
        orders,
        precheck,
        refunds,
        reviews,
        notifications,
        distributors,
        merchants,
        admin,
        gateways,
        reports,
        people,
        stuck,
        incidents,
        incident_actions,
    ):
        document_router(module.router)
        app.include_router(module.router)
    install_problem_schema(app)
    # The reviewer console and the buyer's progress page (after the API's error handlers,
    # which they wrap: pages answer errors with pages).
    pages.install(app, settings)
    install_operations(app, settings, tracer)

    @app.get("/healthz", tags=["ops"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app

"""What SREs and their tools get from the API beside the contract: `/metrics` for
Prometheus, the codec endpoint for the Temporal UI and CLI (`api.codec`), request metrics
and traces. Outside ENVIRONMENT=dev both endpoints refuse callers without a token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response

from api import codec
from api.problems import Problem
from config.settings import Settings
from config.temporal import payload_codec
from telemetry import metrics
from telemetry.http import RequestMetrics
from telemetry.tracing import instrument_app

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


def install_operations(
    app: FastAPI, settings: Settings, tracer_provider: TracerProvider | None
) -> None:
    # Made now, so a bad PAYLOAD_ENCRYPTION_KEYS stops the API before it serves anything.
    app.state.payload_codec = payload_codec(settings)
    app.include_router(codec.router)

    @app.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        keys: dict[str, Any] = getattr(request.app.state, "api_keys", {})
        if not metrics.may_scrape(settings, request.headers.get("authorization"), keys):
            raise Problem(
                401,
                "unauthorized",
                "Unauthorized",
                "send Authorization: Bearer <a METRICS_TOKENS token or an admin key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    # Outermost: a refused key or an oversized body is a request too.
    app.add_middleware(RequestMetrics)
    if tracer_provider is not None:
        instrument_app(app, tracer_provider)

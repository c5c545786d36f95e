"""OpenTelemetry traces: one trace per refund request, from `POST /v1/refunds` through the
workflow and its activities to the gateway's HTTP call.

Off by default. With OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) set, each process
builds a tracer provider exporting over OTLP/HTTP in batches, and hands it to the pieces that
make spans: FastAPI's instrumentation (the API's server spans), Temporal's
`TracingInterceptor` (workflow start, workflow and activity spans, carried through Temporal
in headers; config.temporal) and httpx's instrumentation (calls to the supplier, the gateways
and the platform's webhook). No global provider is set: tests build their own.
OTEL_EXPORTER_OTLP_HEADERS and the other standard OTEL_* variables are read by the exporter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider


def traces_endpoint(settings: Settings) -> str:
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    if settings.otel_exporter_otlp_endpoint:
        return settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    return ""


def tracer_provider(settings: Settings, *, process: str) -> TracerProvider | None:
    """The process's tracer provider exporting over OTLP; None when tracing is off."""
    endpoint = traces_endpoint(settings)
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = new_provider(settings, process=process)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def new_provider(settings: Settings, *, process: str) -> TracerProvider:
    """A provider naming this service and process, with no exporter yet."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider(
        resource=Resource.create(
            {
                "service.name": settings.otel_service_name or f"kami-refunds-{process}",
                "service.namespace": "kami-refunds",
                "deployment.environment": settings.environment,
            }
        )
    )


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # Health checks and scrapes are not worth a trace each.
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls="healthz,metrics",
        exclude_spans=["receive", "send"],
    )


def instrument_http(client: httpx.AsyncClient, provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)

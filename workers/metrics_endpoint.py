"""The worker's own small HTTP endpoint (WORKER_METRICS_ADDRESS): `/metrics` and `/healthz`.

`/metrics` is the service's metrics (`kami_*`, telemetry/metrics.py) followed by the Temporal
SDK's runtime metrics (`temporal_*`). The SDK serves those itself, without authentication,
so it is bound to a loopback port of its own and read from there: outside
ENVIRONMENT=dev, a scrape needs the same Bearer token as the API's /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from config.problems import CannotStart
from config.settings import Settings
from telemetry import metrics

log = logging.getLogger(__name__)


def loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sdk_runtime() -> tuple[Runtime, str]:
    """A Temporal runtime exporting its metrics on a loopback port; (runtime, its URL)."""
    address = f"127.0.0.1:{loopback_port()}"
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    return runtime, f"http://{address}/metrics"


def metrics_app(settings: Settings, *, sdk_metrics_url: str | None) -> Starlette:
    api_keys = settings.roles_by_key()

    async def scrape(request: Request) -> Response:
        if not metrics.may_scrape(settings, request.headers.get("authorization"), api_keys):
            return PlainTextResponse(
                "send Authorization: Bearer <a METRICS_TOKENS token or an admin key>\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        body = metrics.exposition()
        if sdk_metrics_url:
            try:
                async with httpx.AsyncClient(timeout=5.0) as http:
                    sdk = await http.get(sdk_metrics_url)
                body += sdk.content
            except httpx.HTTPError as err:
                log.warning("the Temporal SDK's metrics are unavailable: %s", err)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    return Starlette(routes=[Route("/metrics", scrape), Route("/healthz", healthz)])


class _EndpointServer(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to the worker, which stops this server itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MetricsEndpoint:
    """`await start()`, then `url`; `await stop()` at shutdown."""

    def __init__(self, settings: Settings, *, sdk_metrics_url: str | None) -> None:
        self.address = settings.worker_metrics_address
        self.server = _EndpointServer(
            uvicorn.Config(
                metrics_app(settings, sdk_metrics_url=sdk_metrics_url),
                log_level="warning",
                lifespan="off",
                access_log=False,
                log_config=None,
            )
        )
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    def _listen(self) -> socket.socket:
        host, _, port = self.address.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            family, kind, proto, _, where = socket.getaddrinfo(
                host, int(port or 0), type=socket.SOCK_STREAM
            )[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(where)
        except (OSError, ValueError) as err:
            raise CannotStart(
                f"the worker's metrics endpoint cannot listen on {self.address!r} "
                f"(WORKER_METRICS_ADDRESS): {err}"
            ) from err
        return sock

    async def start(self) -> str:
        sock = self._listen()
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]), name="metrics")
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the metrics endpoint stopped before it started")
            await asyncio.sleep(0.02)
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}/metrics"
        log.info("worker metrics at %s", self.url)
        return self.url

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

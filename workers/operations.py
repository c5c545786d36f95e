"""What the worker process runs for the people who operate it, beside the Temporal worker:
its metrics (the SDK's runtime metrics, the service's own, the database figures) on its
own HTTP endpoint, traces of the activities' HTTP calls, and its version in a Temporal
Worker Deployment. Wired by workers/main.py; none of it touches a workflow or an activity."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.runtime import Runtime
from temporalio.worker import Interceptor, WorkerDeploymentConfig

from config.settings import Settings
from store.db import SessionFactory
from store.figures import stage_limits
from telemetry.metrics import TimedTransport, peer_names
from telemetry.tracing import instrument_http
from telemetry.tracing import tracer_provider as traces_from_settings
from workers.activity_metrics import ActivityMetrics
from workers.gauges import keep_gauges
from workers.metrics_endpoint import MetricsEndpoint, sdk_runtime

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

BEHAVIORS = {"pinned": VersioningBehavior.PINNED, "auto_upgrade": VersioningBehavior.AUTO_UPGRADE}


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """With WORKER_BUILD_ID, this worker is that version of the WORKER_DEPLOYMENT_NAME
    deployment: Temporal gives new refunds to the deployment's current version, and a
    pinned refund finishes on the version it started on (README, "Rolling out")."""
    if not settings.worker_build_id:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(
            deployment_name=settings.worker_deployment_name, build_id=settings.worker_build_id
        ),
        use_worker_versioning=True,
        default_versioning_behavior=BEHAVIORS[settings.worker_versioning_behavior],
    )


@dataclass
class WorkerOperations:
    settings: Settings
    tracer_provider: TracerProvider | None = None
    runtime: Runtime | None = None
    sdk_metrics_url: str | None = None
    endpoint: MetricsEndpoint | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, tracer_provider: TracerProvider | None = None
    ) -> WorkerOperations:
        ops = cls(settings, tracer_provider or traces_from_settings(settings, process="worker"))
        if settings.worker_metrics_address:
            ops.runtime, ops.sdk_metrics_url = sdk_runtime()
        return ops

    def http_client(self) -> httpx.AsyncClient:
        """The activities' and the dispatcher's HTTP client: every call timed by peer, and
        traced when tracing is on."""
        transport = TimedTransport(httpx.AsyncHTTPTransport(), peer_names(self.settings))
        http = httpx.AsyncClient(timeout=self.settings.http_timeout_seconds, transport=transport)
        if self.tracer_provider is not None:
            instrument_http(http, self.tracer_provider)
        return http

    def interceptors(self) -> list[Interceptor]:
        return [ActivityMetrics()]

    def deployment_config(self) -> WorkerDeploymentConfig | None:
        return deployment_config(self.settings)

    async def start(self, reads: SessionFactory) -> None:
        """The metrics endpoint and the database gauges, when WORKER_METRICS_ADDRESS is set."""
        if not self.settings.worker_metrics_address:
            return
        self.endpoint = MetricsEndpoint(self.settings, sdk_metrics_url=self.sdk_metrics_url)
        await self.endpoint.start()
        limits = stage_limits(self.settings)
        self.tasks.append(
            asyncio.create_task(
                keep_gauges(
                    reads,
                    limits,
                    every_seconds=self.settings.metrics_db_seconds,
                    ledger_every_seconds=self.settings.metrics_ledger_seconds,
                ),
                name="gauges",
            )
        )

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.endpoint is not None:
            await self.endpoint.stop()
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush(timeout_millis=5000)

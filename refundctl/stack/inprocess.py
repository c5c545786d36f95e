"""Services that run in the caller's event loop: the sandboxes, a worker, the API.

The test suite runs them this way (one process, fast, debuggable) and `refundctl bench --mode
inprocess` compares against it. `serve_api` is also usable on its own: a test that needs an
API with other settings beside the session's one starts it with `async with serve_api(...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import uvicorn

from refundctl.ready import wait_for_poller
from refundctl.stack.services import TaskService
from refundctl.stack.signals import reclaim_signals
from refundctl.stack.spec import LOCAL, ApiSpec, Serve

if TYPE_CHECKING:
    from config.settings import Settings
    from sandbox.run import SandboxConfig, SandboxURLs

__all__ = ["QuietServer", "api_service", "sandbox_service", "serve_api", "worker_service"]


class QuietServer(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to its owner: the server shares the process with others."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def sandbox_service(
    config: SandboxConfig, settings: Settings, found: list[SandboxURLs]
) -> TaskService:
    """The four sandboxes on `config`'s ports (0: free ones); their URLs land in `found`."""
    from sandbox.run import serve_sandboxes

    ready = asyncio.Event()

    async def run(stop: asyncio.Event) -> None:
        serving = asyncio.create_task(
            serve_sandboxes(config, settings=settings, ready=ready, on_ready=found.append)
        )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not serving.done():
            serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving

    async def listening() -> None:
        await ready.wait()

    return TaskService("sandbox", run, listening)


def worker_service(
    name: str,
    settings: Settings,
    *,
    task_queue: str,
    serve: Serve | None,
    ready_timeout_seconds: float,
    grace_seconds: float,
) -> TaskService:
    """A worker in this process (by default the refund worker of `workers.main`)."""
    started = time.time()

    async def run(stop: asyncio.Event) -> None:
        if serve is None:
            from workers.main import serve as serve_refunds

            task = asyncio.create_task(serve_refunds(settings, stop=stop))
        else:
            task = asyncio.ensure_future(serve(settings, stop))
        # The refund worker takes SIGINT/SIGTERM for itself when run as a process; here the
        # owner of the loop keeps them.
        await asyncio.sleep(0)
        reclaim_signals()
        await task

    async def ready() -> None:
        await wait_for_poller(
            settings.temporal_address,
            pid=os.getpid(),
            since=started,
            task_queue=task_queue,
            namespace=settings.temporal_namespace,
            timeout_seconds=ready_timeout_seconds,
        )

    return TaskService(name, run, ready, grace_seconds=grace_seconds)


def api_service(spec: ApiSpec, settings: Settings, port: int) -> TaskService:
    """The FastAPI app served by uvicorn in this process on `port`."""
    from api.app import create_app

    server = QuietServer(
        uvicorn.Config(
            create_app(settings),
            host=spec.host,
            port=port,
            log_level=spec.log_level,
            lifespan="on",
            access_log=False,
        )
    )

    async def serve() -> None:
        try:
            await server.serve()
        except SystemExit as exc:
            # uvicorn exits the process when it cannot bind; here that would end the owner too.
            raise RuntimeError(f"{spec.name} did not start on port {port} (in use?)") from exc

    async def run(stop: asyncio.Event) -> None:
        serving = asyncio.create_task(serve())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        server.should_exit = True
        await serving

    async def ready() -> None:
        # uvicorn offers a flag, not an event, for "listening".
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    return TaskService(spec.name, run, ready, grace_seconds=spec.grace_seconds)


@contextlib.asynccontextmanager
async def serve_api(
    settings: Settings, port: int, *, host: str = LOCAL, log_level: str = "warning"
) -> AsyncIterator[str]:
    """`async with serve_api(settings, port) as url:` an API in this process, ready on entry."""
    service = api_service(
        ApiSpec(mode="inprocess", port=port, host=host, log_level=log_level), settings, port
    )
    await service.start()
    try:
        await service.wait_ready()
        yield f"http://{host}:{port}"
    finally:
        await service.stop()
        service.raise_error()

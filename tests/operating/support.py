"""Pieces the operating tests share: an API served in this process with settings (and a
tracer provider) of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import uvicorn

from api.app import create_app
from config.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class QuietServer(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to pytest: the server shares the test process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def api_served(
    settings: Settings, port: int, *, tracer_provider: TracerProvider | None = None
) -> AsyncIterator[str]:
    server = QuietServer(
        uvicorn.Config(
            create_app(settings, tracer_provider=tracer_provider),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def worker_served(settings: Settings, **kw: object) -> AsyncIterator[asyncio.Task[None]]:
    from workers.main import serve

    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop=stop, **kw))  # type: ignore[arg-type]
    try:
        yield task
    finally:
        stop.set()
        await task


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The service's settings as a deployment hands them over: environment variables (every
    setting under its upper-case name), without the Temporal address unless given."""
    env = {
        name.upper(): str(value)
        for name, value in settings.model_dump().items()
        if isinstance(value, str | int | float)
    }
    env.update(TEMPORAL_ADDRESS="", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env

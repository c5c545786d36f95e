"""`refundctl api`: serve the HTTP API with uvicorn."""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from config.settings import Settings, get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)


async def _check_temporal(settings: Settings) -> None:
    """Connect once before serving: a wrong address, key or certificate is then one line
    from `refundctl` (config.problems), where uvicorn would print a lifespan traceback."""
    from config.temporal import connect

    await connect(settings)


def run(args: argparse.Namespace) -> int:
    from api.app import create_app
    from telemetry.logs import configure_logging

    settings = get_settings()
    configure_logging(settings, process="api")
    asyncio.run(_check_temporal(settings))
    uvicorn.run(
        create_app(settings, freeze_heap=True),
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=False,
        log_config=None,  # our handlers (telemetry.logs): JSON lines outside dev
    )
    return 0

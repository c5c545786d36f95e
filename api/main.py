"""`refundctl api`: serve the HTTP API with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)


def run(args: argparse.Namespace) -> int:
    from api.app import create_app

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info", access_log=False)
    return 0

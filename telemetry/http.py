"""The API's requests, measured: `kami_http_request_seconds` by route template (never the
raw path, so refund ids do not become label values), method and status; and the refund a
request's path names, for the log lines written while it is served."""

from __future__ import annotations

import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry.logs import refund_in_scope
from telemetry.metrics import HTTP_REQUESTS

_REFUND_PATH = re.compile(r"^/v1/refunds/([^/]+)")
UNROUTED = "unrouted"


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        match = _REFUND_PATH.match(scope["path"])
        token = refund_in_scope.set(match.group(1) if match else None)
        try:
            await self.app(scope, receive, note_status)
        finally:
            refund_in_scope.reset(token)
            route = scope.get("route")
            template = getattr(route, "path", None) or UNROUTED
            HTTP_REQUESTS.labels(template, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )

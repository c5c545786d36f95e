"""Refusals at the HTTP edge, before any work: who is calling, how big the body is, and how
often this key and this buyer write.

`EdgeGuard` is an ASGI middleware, so it answers before FastAPI reads or parses a body: an
unknown key is 401 even with a 100 MB body attached, a body whose Content-Length is over the
cap is 413 unread, and a key past its write rate is 429 with Retry-After. Chunked bodies
(no Content-Length) are counted as they stream in by Starlette's `RequestBodyLimitMiddleware`
inside it, whose 413 the problem handlers answer. The per-buyer limit needs the parsed body,
so it is an app-wide dependency (`limit_buyer_writes`) that reads FastAPI's cached JSON.

Counters live in this process's memory (`limits`, sliding windows): one API process, one
count. Several processes would each allow the configured rate.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import Problem, problem_response, too_large, unauthorized

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bearer-keyed paths; gateways authenticate by their signatures instead.
KEYED_PREFIX = "/v1/"
UNKEYED_PREFIXES = ("/v1/gateways/",)
# A buyer id longer than an Identifier is refused by validation; do not count it.
MAX_BUYER_ID = 128


def key_id(token: str) -> str:
    """A stable, non-secret name for a key: scopes idempotency keys, counters and streams."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class RateLimits:
    """Sliding-window counters for one kind of caller ("key", "buyer")."""

    def __init__(self, kind: str, spec: str) -> None:
        self.kind = kind
        self.spec = spec
        self.items: list[RateLimitItem] = parse_many(spec) if spec else []
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def hit(self, *identity: str) -> None:
        """Count one write; past a limit, 429 with the seconds until the window allows one."""
        for item in self.items:
            if not await self._limiter.hit(item, self.kind, *identity):
                stats = await self._limiter.get_window_stats(item, self.kind, *identity)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                raise Problem(
                    429,
                    "rate-limited",
                    f"Too many writes for this {self.kind}",
                    f"at most {item} per {self.kind}; retry after {wait} s",
                    headers={"Retry-After": str(wait)},
                    limit=str(item),
                )


class EdgeGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, per_key: RateLimits) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.per_key = per_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._check(scope)
        except Problem as refused:
            await problem_response(refused)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope) -> None:
        headers = Headers(scope=scope)
        path: str = scope["path"]
        keyed = path.startswith(KEYED_PREFIX) and not path.startswith(UNKEYED_PREFIXES)
        token = ""
        if keyed:
            token = bearer_token(headers.get("authorization"))
            keys: dict[str, Any] = scope["app"].state.api_keys
            if token not in keys:
                raise unauthorized()
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            raise too_large(self.max_body_bytes)
        if keyed and scope["method"] in WRITES:
            await self.per_key.hit(key_id(token))


async def limit_buyer_writes(request: Request) -> None:
    """App-wide dependency: count a write that names a buyer (`buyer_id` in a JSON body)
    against that buyer, within the calling key. FastAPI has parsed the body already; reads
    of it here come from its cache."""
    if request.method not in WRITES or not request.url.path.startswith(KEYED_PREFIX):
        return
    per_buyer: RateLimits = request.app.state.buyer_limits
    if not per_buyer.items:
        return
    content_type = request.headers.get("content-type", "application/json")
    if "json" not in content_type:
        return
    try:
        body = await request.json()
    except ValueError:
        return  # malformed JSON: FastAPI answers 400 (it never gets here with a body route)
    buyer = body.get("buyer_id") if isinstance(body, dict) else None
    if isinstance(buyer, str) and 0 < len(buyer) <= MAX_BUYER_ID:
        token = bearer_token(request.headers.get("authorization"))
        await per_buyer.hit(key_id(token), buyer)

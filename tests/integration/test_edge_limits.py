"""Limits at the HTTP edge (issue 8), over real HTTP: the key is checked before the body is
read, oversized bodies are 413 without being buffered whole, writes past a key's or a buyer's
rate are 429 with Retry-After, and open event streams are limited per key and in lifetime.

Limits small enough to hit are configured on an API instance of the test's own (same
database, Temporal and worker as the session's system), so the session's API keeps its
generous defaults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import serve_api
from tests.harness import free_port
from tests.system import KEYS, System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    return body


@contextlib.asynccontextmanager
async def api_with(system: System, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second API process-alike with these settings; a client pointed at it."""
    port = free_port()
    async with (
        serve_api(system.settings.model_copy(update=settings), port) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


def auth(key: str = KEYS["platform"]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- raw HTTP: what the server does before the body arrives ---------------------------------


async def raw_exchange(
    url: str, head: str, chunks: AsyncIterator[bytes] | None = None, *, within: float = 20
) -> tuple[int, dict[str, str], bytes, int]:
    """Send a request head (and maybe a body, chunk by chunk, until the answer comes);
    return the status, headers, body of the answer and how many body bytes went out."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    sent = 0

    async def send_body() -> None:
        nonlocal sent
        if chunks is None:
            return
        async for chunk in chunks:
            try:
                writer.write(chunk)
                await writer.drain()
            except ConnectionError:
                return  # the server answered and closed: the rest was never wanted
            sent += len(chunk)

    try:
        writer.write(head.encode())
        await writer.drain()
        sending = asyncio.create_task(send_body())
        try:
            async with asyncio.timeout(within):
                raw_head = await reader.readuntil(b"\r\n\r\n")
        finally:
            sending.cancel()  # stop at the answer: the server may no longer be reading
            with contextlib.suppress(asyncio.CancelledError):
                await sending
        lines = raw_head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
        }
        async with asyncio.timeout(within):
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body, sent
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def post_head(path: str, *, length: int | None, key: str | None) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return "\r\n".join(lines) + "\r\n\r\n"


async def endless_chunks(
    size: int = 64 * 1024, limit: int = 200 * 1024 * 1024
) -> AsyncIterator[bytes]:
    """HTTP/1.1 chunked encoding of a body that would go on for `limit` bytes."""
    piece = b"[" * size
    for _ in range(limit // size):
        yield f"{size:x}\r\n".encode() + piece + b"\r\n"


async def test_no_key_is_401_before_a_huge_body_is_read(system: System) -> None:
    started = time.monotonic()
    head = post_head("/v1/orders", length=100 * 1024 * 1024, key=None)
    status, headers, body, _ = await raw_exchange(system.api_url, head)
    assert status == 401, body
    assert headers["content-type"].startswith(PROBLEM_JSON)
    assert headers["www-authenticate"].lower().startswith("bearer")
    assert json.loads(body)["status"] == 401
    assert time.monotonic() - started < 5  # answered without waiting for 100 MB


async def test_no_key_is_401_before_a_chunked_body_is_read(system: System) -> None:
    head = post_head("/v1/refunds", length=None, key=None)
    status, _, _, sent = await raw_exchange(system.api_url, head, endless_chunks())
    assert status == 401
    assert sent < 32 * 1024 * 1024, sent


async def test_declared_length_over_the_cap_is_413_unread(system: System) -> None:
    cap = system.settings.max_body_bytes
    head = post_head("/v1/orders", length=cap + 1, key=KEYS["platform"])
    status, headers, body, _ = await raw_exchange(system.api_url, head)
    assert status == 413, body
    assert headers["content-type"].startswith(PROBLEM_JSON)
    assert json.loads(body)["status"] == 413
    # The gateways' callback is not keyed, but capped all the same.
    head = post_head("/v1/gateways/wechat/notify", length=cap + 1, key=None)
    assert (await raw_exchange(system.api_url, head))[0] == 413


async def test_chunked_body_over_the_cap_is_413_when_it_passes_the_cap(system: System) -> None:
    head = post_head("/v1/orders", length=None, key=KEYS["platform"])
    status, headers, body, sent = await raw_exchange(system.api_url, head, endless_chunks())
    assert status == 413, body
    assert headers["content-type"].startswith(PROBLEM_JSON)
    assert json.loads(body)["status"] == 413
    # Stopped near the 1 MB cap (plus what the sockets buffer), not after 200 MB.
    assert sent < 32 * 1024 * 1024, sent


async def test_small_cap_refuses_big_orders_and_stores_nothing(system: System) -> None:
    async with api_with(system, max_body_bytes=4096) as api:
        order = card_key_order()
        order["items"][0]["title"] = "t" * 150
        fits = await api.post("/v1/orders", json=order, headers=auth())
        assert fits.status_code == 201, fits.text

        big = card_key_order(quantity=60)  # 60 card keys: ~6 KB of JSON
        problem(await api.post("/v1/orders", json=big, headers=auth()), 413)

        async def body() -> AsyncIterator[bytes]:  # chunked: no Content-Length to check
            yield json.dumps(big).encode()

        r = await api.post(
            "/v1/orders",
            content=body(),
            headers={**auth(), "Content-Type": "application/json"},
        )
        problem(r, 413)
        problem(await api.get(f"/v1/orders/{big['order_id']}", headers=auth()), 404)


# -- rate limits -------------------------------------------------------------------------------


async def test_writes_past_the_key_limit_are_429_with_retry_after(system: System) -> None:
    async with api_with(system, rate_limit_per_key="5/minute") as api:
        for _ in range(5):
            r = await api.post("/v1/orders", json=card_key_order(), headers=auth())
            assert r.status_code == 201, r.text
        refused = card_key_order()
        r = await api.post("/v1/orders", json=refused, headers=auth())
        body = problem(r, 429)
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "key" in body["detail"]
        # Nothing stored; reads are not writes; another key has its own count.
        problem(await api.get(f"/v1/orders/{refused['order_id']}", headers=auth()), 404)
        other = await api.post("/v1/orders", json=refused, headers=auth("pk-other"))
        assert other.status_code == 201, other.text
        # A refused write before its key is known is a 401, never a 429.
        problem(await api.post("/v1/orders", json=card_key_order()), 401)


async def test_writes_past_the_buyer_limit_are_429_with_retry_after(system: System) -> None:
    async with api_with(system, rate_limit_per_buyer="3/minute") as api:
        buyer = unique("U")
        orders = [card_key_order(buyer=buyer) for _ in range(3)]
        for o in orders[:2]:
            r = await api.post("/v1/orders", json=o, headers=auth())
            assert r.status_code == 201, r.text
        refund = {"order_id": orders[0]["order_id"], "buyer_id": buyer, "reason": "invalid_key"}
        r = await api.post(
            "/v1/refunds", json=refund, headers={**auth(), "Idempotency-Key": unique("k")}
        )
        assert r.status_code == 202, r.text
        # The fourth write naming this buyer, whatever the endpoint.
        refused = await api.post("/v1/orders", json=orders[2], headers=auth())
        body = problem(refused, 429)
        assert "buyer" in body["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        problem(await api.get(f"/v1/orders/{orders[2]['order_id']}", headers=auth()), 404)
        # Other buyers are not held up by this one.
        r = await api.post("/v1/orders", json=card_key_order(), headers=auth())
        assert r.status_code == 201, r.text


async def test_generous_defaults_do_not_limit_a_burst(system: System) -> None:
    answers = await asyncio.gather(
        *(system.post("/v1/orders", card_key_order()) for _ in range(50))
    )
    assert [r.status_code for r in answers] == [201] * 50


# -- event streams: per key, and for how long ----------------------------------------------------


@pytest.fixture(scope="module")
async def pending_refund(system: System) -> str:
    o = await system.record(course_order(progress=20, minutes_ago=120, price=20000))
    rid = await system.refund_id(o, reason="changed_mind")
    await system.wait_status(rid, "pending_review")
    return rid


async def test_open_streams_are_limited_per_key(system: System, pending_refund: str) -> None:
    url = f"/v1/refunds/{pending_refund}/events"
    async with api_with(system, stream_max_per_key=2) as api:
        async with contextlib.AsyncExitStack() as streams:
            for _ in range(2):
                r = await streams.enter_async_context(api.stream("GET", url, headers=auth()))
                assert r.status_code == 200
            third = await api.get(url, headers=auth())
            problem(third, 429)
            assert int(third.headers["retry-after"]) >= 1
            # Another key has streams of its own.
            async with api.stream("GET", url, headers=auth("pk-other")) as r:
                assert r.status_code == 200
        # Closed streams give their places back.
        async with asyncio.timeout(10):
            while True:
                async with api.stream("GET", url, headers=auth()) as r:
                    if r.status_code == 200:
                        break
                await asyncio.sleep(0.1)


async def test_a_stream_ends_after_its_lifetime(system: System, pending_refund: str) -> None:
    url = f"/v1/refunds/{pending_refund}/events"
    async with api_with(system, stream_max_seconds=1.5, stream_keepalive_seconds=0.4) as api:
        started = time.monotonic()
        async with asyncio.timeout(15), api.stream("GET", url, headers=auth()) as r:
            assert r.status_code == 200
            text = (await r.aread()).decode()
        assert 1.5 <= time.monotonic() - started < 10
        assert "event: timeline" in text and "event: end" not in text
        assert ": keep-alive" in text
        last_id = [ln for ln in text.splitlines() if ln.startswith("id: ")][-1].removeprefix("id: ")
        # Reconnecting where it left off: nothing new, just keep-alives until the next end.
        headers = {**auth(), "Last-Event-ID": last_id}
        async with asyncio.timeout(15), api.stream("GET", url, headers=headers) as r:
            again = (await r.aread()).decode()
        assert "event:" not in again and ": keep-alive" in again

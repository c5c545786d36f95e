"""More than one machine's worth: two worker processes and two API processes on one
PostgreSQL and one Temporal server, refunds coming in through both APIs, and one worker
SIGKILLed while it holds refunds in flight. The other finishes every one of them, exactly
once: one refund at the gateway per payment, one succeeded payout per refund, balanced books.

PostgreSQL only (the PostgreSQL pass of .ci/run): SQLite is one file on one host, which is
what this test is not about."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from config.temporal import connect
from domain.refund import workflow_id_for
from refundctl.devserver import PROJECT_ROOT
from refundctl.procs import ChildProcess, free_ports, log_sink, refundctl_argv
from refundctl.ready import wait_for_http, wait_for_poller
from store import ledger
from store.db import make_engine, make_session_factory
from tests.operating.support import service_env
from tests.system import System, auth, card_key_order, unique

pytestmark = pytest.mark.integration

TASK_QUEUE = "refunds-scale"
REFUNDS = 60
IN_FLIGHT = 12  # submitters at once, across both APIs
KILL_AFTER_DONE = REFUNDS // 4


@dataclass
class Fleet:
    workers: list[ChildProcess]
    apis: list[str]


@pytest.fixture(scope="module")
async def fleet(system: System, database_url: str) -> AsyncIterator[Fleet]:
    if not database_url.startswith("postgresql"):
        pytest.skip("two hosts' worth of processes share PostgreSQL: DATABASE_URL=postgresql+...")
    ports = free_ports(2)
    env = service_env(
        system.settings,
        TASK_QUEUE=TASK_QUEUE,
        TEMPORAL_ADDRESS=system.settings.temporal_address,
        DATABASE_URL=database_url,
    )
    workers = [
        ChildProcess(f"worker-{n}", refundctl_argv("worker"), env=env, cwd=PROJECT_ROOT,
                     output=log_sink(f"worker-{n}"), grace_seconds=10)
        for n in (1, 2)
    ]  # fmt: skip
    apis = [
        ChildProcess(
            f"api-{n}",
            refundctl_argv("api", "--port", str(port)),
            env={**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"},
            cwd=PROJECT_ROOT,
            output=log_sink(f"api-{n}"),
        )
        for n, port in zip((1, 2), ports, strict=True)
    ]
    async with workers[0], workers[1], apis[0], apis[1]:
        for worker in workers:
            assert worker.pid is not None and worker.started_at is not None
            await wait_for_poller(
                system.settings.temporal_address,
                pid=worker.pid,
                since=worker.started_at,
                task_queue=TASK_QUEUE,
                process=worker,
            )
        for api, port in zip(apis, ports, strict=True):
            await wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout_seconds=60, process=api)
        yield Fleet(workers, [f"http://127.0.0.1:{port}" for port in ports])


async def task_identities(client: Client, refund_id: str) -> set[str]:
    """Who completed the refund's workflow tasks (the SDK's identity is `pid@host`)."""
    who: set[str] = set()
    async for event in client.get_workflow_handle(
        workflow_id_for(refund_id)
    ).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            who.add(event.workflow_task_completed_event_attributes.identity.split("@")[0])
    return who


async def test_one_worker_killed_under_load_the_other_finishes_every_refund_once(
    system: System, fleet: Fleet, database_url: str
) -> None:
    orders = [card_key_order(channel="alipay" if n % 2 else "wechat") for n in range(REFUNDS)]
    api_of = itertools.cycle(fleet.apis)
    done: dict[str, dict[str, Any]] = {}
    refund_ids: list[str] = []
    killed = asyncio.Event()
    busy = asyncio.Event()  # a quarter done: the rest are mid-flight on both workers
    doomed, survivor = fleet.workers
    doomed_pid = str(doomed.pid)

    async def one(http: httpx.AsyncClient, order: dict[str, Any], base: str) -> None:
        r = await http.post(f"{base}/v1/orders", json=order, headers=auth("platform"))
        assert r.status_code == 201, r.text
        r = await http.post(
            f"{base}/v1/refunds",
            json={"order_id": order["order_id"], "buyer_id": order["buyer_id"], "reason": "invalid_key"},
            headers={**auth("platform"), "Idempotency-Key": unique("idem")},
        )  # fmt: skip
        assert r.status_code == 202, r.text
        refund_id = r.json()["refund_id"]
        refund_ids.append(refund_id)
        for _ in range(1800):  # through either API: they share the database
            body = (
                await http.get(f"{next(api_of)}/v1/refunds/{refund_id}", headers=auth("platform"))
            ).json()
            if body["status"] in ("refunded", "failed", "rejected", "needs_attention"):
                done[refund_id] = body | {"order": order}
                if len(done) >= KILL_AFTER_DONE:
                    busy.set()
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{refund_id} still {body['status']}")

    async def kill_when_busy() -> None:
        await busy.wait()
        await doomed.kill()  # SIGKILL: no graceful shutdown, its refunds are mid-flight
        killed.set()

    gate = asyncio.Semaphore(IN_FLIGHT)

    async def limited(http: httpx.AsyncClient, order: dict[str, Any]) -> None:
        async with gate:
            await one(http, order, next(api_of))

    async with httpx.AsyncClient(timeout=30) as http:
        killer = asyncio.create_task(kill_when_busy())
        await asyncio.wait_for(asyncio.gather(*(limited(http, o) for o in orders)), timeout=600)
        await killer
    assert killed.is_set() and survivor.running

    # Every refund finished, and paid once: one succeeded payout, one refund at the gateway.
    assert sorted(done) == sorted(refund_ids) and len(done) == REFUNDS
    for refund_id, body in done.items():
        assert body["status"] == "refunded", (refund_id, body["status"], body["timeline"][-3:])
        [payout] = [p for p in body["payouts"] if p["state"] == "succeeded"]
        payment = body["order"]["payments"][0]
        at_gateway = await system.gateway_refunds(payment["channel"], payment["transaction_id"])
        assert len(at_gateway) == 1, (refund_id, at_gateway)
        assert payout["amount"] == payment["amount"]

    # The killed worker had refunds in flight, and the survivor finished them.
    client = await connect(system.settings)
    handed_over = 0
    worked = 0
    for refund_id in refund_ids:
        who = await task_identities(client, refund_id)
        worked += doomed_pid in who
        handed_over += doomed_pid in who and len(who) > 1
    assert worked > 0, "the killed worker never took a refund: the test proved nothing"
    assert handed_over > 0, "no refund was in flight on the killed worker when it died"

    engine = make_engine(database_url)
    try:
        async with make_session_factory(engine)() as session:
            assert set((await ledger.trial_balance(session)).values()) <= {0}
    finally:
        await engine.dispose()

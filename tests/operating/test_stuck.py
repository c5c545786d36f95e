"""Stuck refunds, found and fixed: each way a refund stops moving is listed with why, and the
command printed for it is the one that moves it on (run here through the real `temporal`
CLI and `refundctl`, as an SRE would)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shlex
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import Client

from config.payload_encryption import PayloadEncryption, new_key_text, parse_keys
from config.temporal import connect, data_converter
from domain.model import utcnow
from domain.refund import RefundRequest, workflow_id_for
from domain.types import RefundReason
from ops.stuck import Kind, StuckReport, find_stuck
from refundctl.devserver import temporal_binary
from refundctl.procs import refundctl_argv
from store import orders
from store import refunds as refund_rows
from store.db import make_engine, make_read_session_factory, make_session_factory
from store.figures import StageLimits
from tests.integration.test_money import fault
from tests.system import KEYS, System, card_key_order, course_order, unique
from workflow_api.starter import refund_input
from workflows.search import WORKFLOW_TYPE

pytestmark = pytest.mark.integration

EVERYTHING = StageLimits(refunding=timedelta(0), moving=timedelta(0), unstarted=timedelta(0))


@pytest.fixture(scope="module")
async def temporal(system: System) -> Client:
    return await connect(system.settings)


@pytest.fixture(scope="module")
async def engine(system: System) -> AsyncIterator[object]:
    engine = make_engine(system.settings.database_url)
    yield engine
    await engine.dispose()


async def stored_but_not_started(system: System, engine: object) -> str:
    """A refund as the API stores it, whose start never happened (the API died)."""
    order = await system.record(card_key_order())
    refund_id = "rf_" + unique("stuck").replace("-", "")
    sessions = make_session_factory(engine)  # type: ignore[arg-type]
    async with sessions.begin() as session:
        stored = await orders.load_order(session, order["order_id"])
        assert stored is not None
        request = RefundRequest(
            order_id=order["order_id"], buyer_id=order["buyer_id"], reason=RefundReason.INVALID_KEY
        )
        await refund_rows.insert_refund(
            session,
            refund_rows.NewRefund(
                refund_id=refund_id,
                request=request,
                order=stored,
                items=refund_rows.requested_items(request, stored),
                caller="test",
                idempotency_key=unique("idem"),
                request_hash="-",
                now=utcnow(),
            ),
        )
    return refund_id


async def report(system: System, engine: object, temporal: Client, **kw: object) -> StuckReport:
    reads = make_read_session_factory(engine)  # type: ignore[arg-type]
    return await find_stuck(reads, temporal, limits=kw.pop("limits", EVERYTHING), **kw)  # type: ignore[arg-type]


def listed(found: StuckReport, refund_id: str) -> list[object]:
    return [s for s in found.refunds if s.refund_id == refund_id]


def cli_env(system: System) -> dict[str, str]:
    """The `temporal` CLI and `refundctl` configured as the service is, from the environment."""
    env = {
        name.upper(): str(value)
        for name, value in system.settings.model_dump().items()
        if isinstance(value, str | int | float)
    }
    return {
        **os.environ,
        **env,
        "TEMPORAL_ADDRESS": system.settings.temporal_address,
        # The CLI shows (and sends) payloads through the API's codec endpoint.
        "TEMPORAL_CODEC_ENDPOINT": system.url("/codec"),
        "TEMPORAL_CODEC_AUTH": f"Bearer {KEYS['admin']}",
    }


async def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=env)


async def test_a_refund_whose_workflow_never_started_is_listed_and_started(
    system: System, engine: object, temporal: Client
) -> None:
    refund_id = await stored_but_not_started(system, engine)
    [stuck] = listed(await report(system, engine, temporal), refund_id)
    assert stuck.kind == Kind.NEVER_STARTED  # type: ignore[attr-defined]
    assert stuck.fix == "refundctl stuck --start-missing"  # type: ignore[attr-defined]

    # The fix, as printed: refundctl configured from the environment like a deployed one.
    env = {**cli_env(system), "STUCK_UNSTARTED_SECONDS": "0"}
    fixed = await run(refundctl_argv("stuck", "--start-missing", "--json"), env)
    assert f"started the workflow of {refund_id}" in fixed.stderr, fixed.stderr
    await system.wait_status(refund_id, "refunded")
    assert listed(await report(system, engine, temporal), refund_id) == []


async def test_a_review_past_its_deadline_is_fixed_by_the_printed_update(
    system: System, engine: object, temporal: Client
) -> None:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    refund_id = await system.refund_id(order, reason="changed_mind")
    await system.wait_status(refund_id, "pending_review")
    tomorrow = utcnow() + timedelta(hours=25)  # the 24-hour deadline has passed by then
    [stuck] = listed(await report(system, engine, temporal, now=tomorrow), refund_id)
    assert stuck.kind == Kind.REVIEW_OVERDUE, stuck  # type: ignore[attr-defined]
    assert "deadline" in stuck.why  # type: ignore[attr-defined]

    fix = shlex.split(stuck.fix.replace("<you>", "sre-on-call"))  # type: ignore[attr-defined]
    assert fix[:4] == ["temporal", "workflow", "update", "execute"]
    done = await run([temporal_binary(), *fix[1:]], cli_env(system))
    assert done.returncode == 0, done.stderr
    body = await system.wait_status(refund_id, "refunded")
    assert body["review"]["reviewer"] == "sre-on-call"


async def test_a_payout_retrying_against_a_failing_gateway_names_its_last_error(
    system: System, engine: object, temporal: Client
) -> None:
    alipay = system.sandboxes.alipay.rsplit("/", 1)[0]
    order = await system.record(card_key_order(channel="alipay"))
    r = await system.http.post(f"{alipay}/sandbox/faults", json={"mode": "error_5xx", "count": 50})
    r.raise_for_status()
    try:
        refund_id = await system.refund_id(order)
        stuck = None
        for _ in range(100):
            found = listed(await report(system, engine, temporal), refund_id)
            if found and found[0].kind == Kind.ACTIVITY_RETRYING:  # type: ignore[attr-defined]
                stuck = found[0]
                break
            await asyncio.sleep(0.1)
        assert stuck is not None, "the retrying payout was never listed"
        # The stored status may still be the last one reported (the lean path reports the
        # decision and the payout together); Temporal's state says what holds it.
        assert stuck.status in ("submitted", "refunding")  # type: ignore[attr-defined]
        assert "send_payout" in stuck.why and "attempt" in stuck.why  # type: ignore[attr-defined]
        assert "temporal activity reset --workflow-id" in stuck.fix  # type: ignore[attr-defined]
    finally:
        (await system.http.post(f"{alipay}/sandbox/reset")).raise_for_status()
    # The cause fixed, the printed reset retries it at once.
    fix = shlex.split(stuck.fix.split("  #")[0])  # type: ignore[attr-defined]
    await run([temporal_binary(), *fix[1:]], cli_env(system))
    await system.wait_status(refund_id, "refunded", within=90)


async def test_a_workflow_task_failing_on_an_unknown_payload_key_is_explained(
    system: System, engine: object, temporal: Client
) -> None:
    refund_id = await stored_but_not_started(system, engine)
    sessions = make_session_factory(engine)  # type: ignore[arg-type]
    async with sessions() as session:
        stored = await refund_rows.awaiting_start(session, refund_id)
    assert stored is not None
    foreign = PayloadEncryption(parse_keys(new_key_text("k-lost-2025")))
    stranger = await Client.connect(
        system.settings.temporal_address,
        data_converter=dataclasses.replace(data_converter(system.settings), payload_codec=foreign),
    )
    handle = await stranger.start_workflow(
        WORKFLOW_TYPE,
        refund_input(*stored),
        id=workflow_id_for(refund_id),
        task_queue=system.settings.task_queue,
    )
    try:
        stuck = None
        for _ in range(150):
            found = listed(await report(system, engine, temporal), refund_id)
            if found and found[0].kind == Kind.WORKFLOW_TASK_FAILING:  # type: ignore[attr-defined]
                stuck = found[0]
                break
            await asyncio.sleep(0.2)
        assert stuck is not None, "the failing workflow task was never listed"
        assert "k-lost-2025" in stuck.why  # type: ignore[attr-defined]
        assert "PAYLOAD_ENCRYPTION_KEYS" in stuck.fix  # type: ignore[attr-defined]
    finally:
        await handle.terminate("test: unknown payload key")


async def test_the_admin_endpoint_and_the_command_agree(
    system: System, engine: object, temporal: Client
) -> None:
    refund_id = await stored_but_not_started(system, engine)
    refused = await system.get("/v1/admin/stuck", "reviewer")
    assert refused.status_code == 403
    answer = await system.get("/v1/admin/stuck?limit=500", "admin")
    assert answer.status_code == 200, answer.text
    # The API applies the configured limits (2 minutes for an unstarted refund): not yet.
    assert refund_id not in {s["refund_id"] for s in answer.json()["refunds"]}
    env = {**cli_env(system), "STUCK_UNSTARTED_SECONDS": "0"}
    printed = await run(refundctl_argv("stuck", "--json", "--limit", "500"), env)
    assert printed.returncode == 1, printed.stderr  # something is stuck
    listed_now = {s["refund_id"]: s for s in json.loads(printed.stdout)["refunds"]}
    assert listed_now[refund_id]["kind"] == Kind.NEVER_STARTED
    text = await run(refundctl_argv("stuck", "--limit", "500"), env)
    assert f"{refund_id}  workflow_never_started" in text.stdout
    assert "fix: refundctl stuck --start-missing" in text.stdout
    await run(refundctl_argv("stuck", "--start-missing"), env)
    await system.wait_status(refund_id, "refunded")


async def test_a_refund_needing_attention_says_why_and_the_printed_resolve_runs(
    system: System, engine: object, temporal: Client
) -> None:
    order = await system.record(card_key_order(channel="wechat"))
    await fault(system, "wechat", "abnormal")
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "needs_attention", within=30)
    [stuck] = listed(await report(system, engine, temporal), refund_id)
    assert stuck.kind == Kind.NEEDS_ATTENTION  # type: ignore[attr-defined]
    assert "ABNORMAL" in stuck.why  # type: ignore[attr-defined]  # the timeline's reason

    fix = shlex.split(stuck.fix.replace("<you>", "sre-on-call"))  # type: ignore[attr-defined]
    assert fix[:4] == ["temporal", "workflow", "update", "execute"] and "resolve" in fix
    done = await run([temporal_binary(), *fix[1:]], cli_env(system))
    assert done.returncode == 0, done.stderr
    # Verified with the gateway under the operator's name; still ABNORMAL, so still a person's.
    body = await system.wait_status(refund_id, "needs_attention")
    verified = [t for t in body["timeline"] if t["stage"] == "attention_verified"]
    assert verified and verified[-1]["detail"].startswith("sre-on-call:"), body["timeline"][-3:]

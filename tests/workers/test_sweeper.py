"""The sweeper starts the workflow of a refund the API stored but never started, exactly as
the API would have (type, id, task queue, search attributes), and leaves started ones be."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any, cast

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from domain.model import utcnow
from store.models import RefundRow
from tests.scratch import Scratch, an_order, stored_order, stored_refund
from workers.sweeper import sweep_unstarted
from workflows.messages import RefundInput
from workflows.search import REFUND_STATUS, WORKFLOW_TYPE


class FakeTemporal:
    """Knows the workflows in `running`; starts are recorded."""

    def __init__(self, running: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.running = running
        self.starts: list[tuple[str, RefundInput, dict[str, Any]]] = []
        self.started = asyncio.Event()

    async def start_workflow(self, workflow: str, arg: RefundInput, **options: Any) -> None:
        self.starts.append((workflow, arg, options))
        self.started.set()

    def get_workflow_handle(self, workflow_id: str) -> Any:
        running = self.running

        class Handle:
            async def describe(self) -> None:
                if workflow_id not in running:
                    raise RPCError("not found", RPCStatusCode.NOT_FOUND, b"")

        return Handle()


async def test_a_refund_never_started_is_started_as_the_api_would(scratch: Scratch) -> None:
    order = await stored_order(scratch, an_order(ago=timedelta(hours=2)))
    lost = await stored_refund(scratch, order, at=utcnow() - timedelta(minutes=5))
    running = await stored_refund(
        scratch, await stored_order(scratch), at=utcnow() - timedelta(minutes=5)
    )
    async with scratch.sessions.begin() as session:
        row = await session.get(RefundRow, running)
        assert row is not None
        row.workflow_started = True  # its workflow reported in
    # Started by the API, busy, not reported yet (a refund reports when it first rests).
    quiet = await stored_refund(
        scratch, await stored_order(scratch), at=utcnow() - timedelta(minutes=5)
    )
    temporal = FakeTemporal(running={f"refund-{quiet}"})

    sweeping = asyncio.create_task(
        sweep_unstarted(
            scratch.sessions,
            cast(Client, temporal),
            task_queue="refunds-test",
            grace=timedelta(seconds=60),
            every_seconds=0.05,
        )
    )

    async def noted() -> bool:
        async with scratch.reads() as session:
            row = await session.get(RefundRow, quiet)
        return row is not None and row.workflow_started

    try:
        async with asyncio.timeout(10):
            await temporal.started.wait()
            while not await noted():  # noqa: ASYNC110 - a database row, not an event
                await asyncio.sleep(0.05)
    finally:
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping

    started = {arg.refund_id for _, arg, _ in temporal.starts}
    assert started == {lost}
    assert await noted()  # found running: noted, not started again
    workflow, arg, options = temporal.starts[0]
    assert workflow == WORKFLOW_TYPE
    assert (arg.order_id, arg.buyer_id, arg.amount) == (
        order.order_id,
        order.buyer_id,
        order.amount,
    )
    assert [i.item_id for i in arg.items] == ["I-1"]
    assert options["id"] == f"refund-{lost}"
    assert options["task_queue"] == "refunds-test"
    assert options["id_conflict_policy"] is WorkflowIDConflictPolicy.USE_EXISTING
    assert options["search_attributes"][REFUND_STATUS] == "submitted"

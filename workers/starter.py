"""Starting a refund's workflow: from the API right after the refund is stored, and from
the worker's sweeper for any refund whose start was interrupted (the API died between
its commit and the start). The workflow id comes from the refund, so starting twice is
harmless: the second start finds the first."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from domain.model import utcnow
from domain.order import ClientInfo
from domain.refund import Evidence, RefundItemRequest, workflow_id_for
from domain.types import RefundReason
from store.db import SessionFactory
from store.models import RefundItemRow, RefundRow
from workflows.messages import RefundInput
from workflows.refund import RefundWorkflow
from workflows.search import start_search_attributes

log = logging.getLogger(__name__)


class StartFailed(Exception):
    """Temporal did not take the start; the refund is stored and a repeat will resume it."""


def refund_input(row: RefundRow, items: list[RefundItemRequest]) -> RefundInput:
    """The workflow's start argument, from the stored refund."""
    return RefundInput(
        refund_id=row.refund_id,
        order_id=row.order_id,
        buyer_id=row.buyer_id,
        merchant_id=row.merchant_id,
        reason=RefundReason(row.reason),
        reason_text=row.reason_text,
        items=items,
        evidence=[Evidence.model_validate(e) for e in row.evidence or []],
        client=ClientInfo(ip=row.client_ip, device_id=row.device_id)
        if (row.client_ip or row.device_id)
        else None,
        amount=row.amount,
        currency=row.currency,
        created_at=row.created_at,
    )


async def start(temporal: Client, inp: RefundInput, *, task_queue: str) -> None:
    """Start `refund-{id}`; if it already runs or ran, that is success too. The workflow
    marks the refund started in its first progress report, so this writes nothing."""
    try:
        await temporal.start_workflow(
            RefundWorkflow.run,
            inp,
            id=workflow_id_for(inp.refund_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=start_search_attributes(inp),
            static_summary=f"refund {inp.refund_id} of order {inp.order_id}",
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran and finished under this id before
    except RPCError as err:
        log.warning("could not start workflow for %s: %s", inp.refund_id, err)
        raise StartFailed(inp.refund_id) from err


async def ensure_started(
    session: AsyncSession, temporal: Client, refund_id: str, *, task_queue: str
) -> None:
    """Start the refund's workflow unless it is known to run (or have run). Safe to repeat."""
    async with session.begin():
        row = await session.get(RefundRow, refund_id)
        assert row is not None
        if row.workflow_started:
            return
        items = [
            RefundItemRequest(item_id=i.item_id, quantity=i.quantity)
            for i in await session.scalars(
                select(RefundItemRow)
                .where(RefundItemRow.refund_id == refund_id)
                .order_by(RefundItemRow.item_id)
            )
        ]
    await start(temporal, refund_input(row, items), task_queue=task_queue)


async def sweep_unstarted(
    sessions: SessionFactory,
    temporal: Client,
    *,
    task_queue: str,
    grace: timedelta = timedelta(seconds=30),
    every_seconds: float = 15.0,
) -> None:
    """Start workflows for refunds stored but never started, forever. The grace period
    leaves the API's own start (a few milliseconds after its commit) alone."""
    while True:
        try:
            async with sessions() as session:
                ids = list(
                    await session.scalars(
                        select(RefundRow.refund_id)
                        .where(
                            RefundRow.workflow_started.is_(False),
                            RefundRow.created_at < utcnow() - grace,
                        )
                        .limit(100)
                    )
                )
            for refund_id in ids:
                async with sessions() as session:
                    await ensure_started(session, temporal, refund_id, task_queue=task_queue)
                log.warning("started the workflow of refund %s, which the API had not", refund_id)
        except Exception:  # Temporal or the database away: try again next round
            log.exception("sweeping unstarted refunds failed")
        await asyncio.sleep(every_seconds)

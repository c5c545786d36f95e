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

from activities.messages import RefundInput
from domain.model import utcnow
from domain.order import ClientInfo
from domain.refund import RefundItemRequest
from store import refunds as refund_rows
from store.db import SessionFactory
from store.models import RefundRow
from workflows.refund import RefundWorkflow, start_search_attributes

log = logging.getLogger(__name__)


class StartFailed(Exception):
    """Temporal did not take the start; the refund is stored and a repeat will resume it."""


async def ensure_started(
    session: AsyncSession, temporal: Client, refund_id: str, *, task_queue: str
) -> None:
    """Start the refund's workflow unless it already runs (or ran). Safe to call again."""
    async with session.begin():
        row = await session.get(RefundRow, refund_id)
        assert row is not None
        if row.workflow_started:
            return
        body = await refund_rows.load_body(session, refund_id)
        assert body is not None
    inp = RefundInput(
        refund_id=refund_id,
        order_id=body.order_id,
        buyer_id=body.buyer_id,
        merchant_id=body.merchant_id,
        reason=body.reason,
        reason_text=body.reason_text,
        items=[RefundItemRequest(item_id=i.item_id, quantity=i.quantity) for i in body.items],
        evidence=body.evidence,
        client=ClientInfo(ip=row.client_ip, device_id=row.device_id)
        if (row.client_ip or row.device_id)
        else None,
        amount=body.amount,
        currency=body.currency,
        created_at=body.created_at,
    )
    try:
        await temporal.start_workflow(
            RefundWorkflow.run,
            inp,
            id=row.workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=start_search_attributes(inp),
            static_summary=f"refund {refund_id} of order {inp.order_id}",
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran and finished under this id before: started is what we wanted to know
    except RPCError as err:
        log.warning("could not start workflow for %s: %s", refund_id, err)
        raise StartFailed(refund_id) from err
    async with session.begin():
        row = await session.get(RefundRow, refund_id)
        assert row is not None
        row.workflow_started = True


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

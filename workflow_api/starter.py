"""Starting a refund's workflow: from the API right after the refund is stored, and from
the worker's sweeper for any refund whose start was interrupted (the API died between
its commit and the start). The workflow id comes from the refund, so starting twice is
harmless: the second start finds the first.

The workflow is started by its type name (`workflows.search.WORKFLOW_TYPE`), not by its class:
importing the class would bring its activities into every process that starts refunds."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from domain.incident import IncidentMark
from domain.order import ClientInfo
from domain.refund import Evidence, RefundBody, RefundItemRequest, workflow_id_for
from store import refunds as refund_rows
from store.models import RefundRow
from workflows.messages import RefundInput
from workflows.search import WORKFLOW_TYPE, start_search_attributes

log = logging.getLogger(__name__)

WORKFLOW_TASK_TIMEOUT = timedelta(seconds=4)


class StartFailed(Exception):
    """Temporal did not take the start; the refund is stored and a repeat will resume it."""


def refund_input(row: RefundRow, items: list[RefundItemRequest]) -> RefundInput:
    """The workflow's start argument, from the stored refund."""
    return RefundInput(
        refund_id=row.refund_id,
        order_id=row.order_id,
        buyer_id=row.buyer_id,
        merchant_id=row.merchant_id,
        reason=row.reason,
        reason_text=row.reason_text,
        items=items,
        evidence=[Evidence.model_validate(e) for e in row.evidence or []],
        client=ClientInfo(ip=row.client_ip, device_id=row.device_id)
        if (row.client_ip or row.device_id)
        else None,
        amount=row.amount,
        currency=row.currency,
        created_at=row.created_at,
        # An incident's refund: stored with the incident, its reason and where it pays.
        incident=IncidentMark(
            incident_id=row.incident_id, reason=row.reason_text, destination=row.destination
        )
        if row.incident_id is not None
        else None,
        remedy=row.remedy,
    )


async def start(temporal: Client, inp: RefundInput, *, task_queue: str) -> None:
    """Start `refund-{id}`; if it already runs or ran, that is success too. The workflow
    marks the refund started in its first progress report, so this writes nothing."""
    try:
        await temporal.start_workflow(
            WORKFLOW_TYPE,
            inp,
            id=workflow_id_for(inp.refund_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=start_search_attributes(inp),
            static_summary=f"refund {inp.refund_id} of order {inp.order_id}",
            # A worker that dies inside a workflow task (its local activities included) hands
            # the refund on after this, not the default 10 s; long local activities keep the
            # task alive with heartbeats.
            task_timeout=WORKFLOW_TASK_TIMEOUT,
            result_type=RefundBody,
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
        stored = await refund_rows.awaiting_start(session, refund_id)
    if stored is not None:
        await start(temporal, refund_input(*stored), task_queue=task_queue)

"""The worker's sweeper: starts the workflow of any refund stored but never started (the API
died between its commit and the start). Starting is `workflows.starter`'s, the API's
own way; the queries are `store.refunds`'."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain.model import utcnow
from domain.refund import workflow_id_for
from store import refunds as refund_rows
from store.db import SessionFactory
from workflow_api.starter import ensure_started

log = logging.getLogger(__name__)


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
                ids = await refund_rows.unstarted_refund_ids(
                    session, created_before=utcnow() - grace
                )
            for refund_id in ids:
                if await _runs(temporal, refund_id):
                    # Started by the API and busy (a refund reports when it first rests):
                    # note it, so it is not looked at again.
                    async with sessions.begin() as session:
                        await refund_rows.mark_running(session, refund_id)
                    continue
                async with sessions() as session:
                    await ensure_started(session, temporal, refund_id, task_queue=task_queue)
                log.warning(
                    "started the workflow of refund %s, which the API had not",
                    refund_id,
                    extra={"refund_id": refund_id},
                )
        except Exception:  # Temporal or the database away: try again next round
            log.exception("sweeping unstarted refunds failed")
        await asyncio.sleep(every_seconds)


async def _runs(temporal: Client, refund_id: str) -> bool:
    """Whether Temporal has the refund's workflow (running or run)."""
    try:
        await temporal.get_workflow_handle(workflow_id_for(refund_id)).describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True

"""Stuck refunds, found and explained: which refunds are past their stage's limit, why, and
the one command that moves each on. Shared by `refundctl stuck` and `GET /v1/admin/stuck`.

Two sources, so nothing stuck is missed and nothing healthy is listed:
- the database: refunds whose stage has a limit and passed it (`store.figures`: refunding
  too long, submitted/checking/approved too long, a review past its deadline, needs
  attention, stored but never started);
- Temporal: for each of those, the workflow's own state (a workflow task failing or never
  taken, an activity retrying with its last error, a workflow gone or closed), plus every
  running refund workflow Temporal itself reports a problem for
  (`TemporalReportedProblems`: workflow tasks failing again and again), whatever its stage.

The fix of each is a command an SRE can paste: the `temporal` CLI reads the same TEMPORAL_*
configuration as the service (config/temporal.py); a review or a resolution goes through the
workflow's Updates, which judge it exactly as the API would."""

from __future__ import annotations

import asyncio
import json
import shlex
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import EventType, PendingWorkflowTaskState
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from domain.model import utcnow
from domain.wording import channel_name
from store import figures
from store.db import SessionFactory
from store.figures import StageLimits, StuckKind, StuckRow
from store.models import PayoutRow, TimelineRow
from workflow_api.starter import ensure_started
from workflows.search import WORKFLOW_TYPE

PREFIX = "refund-"
# A workflow task nobody has taken for this long: no worker polls the task queue.
UNTAKEN_SECONDS = 60.0
# Temporal marks a workflow whose tasks keep failing (server 1.28+).
PROBLEMS_QUERY = (
    f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" AND '
    "TemporalReportedProblems IN ('category=WorkflowTaskFailed', 'category=WorkflowTaskTimedOut')"
)


class Kind:
    """Why a refund is stuck: the database's kinds (`StuckKind`) and Temporal's."""

    NEVER_STARTED = StuckKind.NEVER_STARTED
    REFUNDING = StuckKind.REFUNDING
    STAGE = StuckKind.STAGE
    REVIEW_OVERDUE = StuckKind.REVIEW_OVERDUE
    NEEDS_ATTENTION = StuckKind.NEEDS_ATTENTION
    WORKFLOW_TASK_FAILING = "workflow_task_failing"
    WORKFLOW_TASK_UNTAKEN = "workflow_task_untaken"
    ACTIVITY_RETRYING = "activity_retrying"
    WORKFLOW_NOT_FOUND = "workflow_not_found"
    WORKFLOW_CLOSED = "workflow_closed"


class StuckRefund(BaseModel):
    refund_id: str | None = Field(description="None: a refund workflow with no stored refund")
    workflow_id: str
    status: str | None = Field(description="The stored refund's status")
    kind: str
    since: datetime | None = Field(description="When the refund last moved")
    why: str
    fix: str = Field(description="The one command that moves it on")


class StuckReport(BaseModel):
    checked_at: datetime
    limits: dict[str, float] = Field(description="Stage limits used, in seconds")
    refunds: list[StuckRefund]


def _cli(*argv: str) -> str:
    return shlex.join(["temporal", *argv])


def _update(workflow_id: str, name: str, body: dict[str, str]) -> str:
    return _cli(
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        workflow_id,
        "--name",
        name,
        "--input",
        json.dumps(body),
    )


def _reset(workflow_id: str) -> str:
    return _cli(
        "workflow",
        "reset",
        "--workflow-id",
        workflow_id,
        "--type",
        "LastWorkflowTask",
        "--reason",
        "stuck workflow task, fixed worker deployed",
    )


async def find_stuck(
    reads: SessionFactory,
    temporal: Client,
    *,
    limits: StageLimits,
    limit: int = 100,
    concurrency: int = 8,
    now: datetime | None = None,
) -> StuckReport:
    """`now`: the moment the stage limits are judged at (tests look into the future)."""
    now = now or utcnow()
    async with reads() as session:
        rows = await figures.stuck_refunds(session, now=now, limits=limits, limit=limit)
        ids = [r.refund_id for r in rows]
        payouts = await figures.last_payouts(session, ids)
        attention = await figures.last_entries(session, ids, "needs_attention")
    gate = asyncio.Semaphore(concurrency)

    async def explain(row: StuckRow) -> StuckRefund:
        async with gate:
            return await _explain(temporal, row, now, payouts, attention)

    found = list(await asyncio.gather(*(explain(r) for r in rows)))
    seen = {s.workflow_id for s in found}
    found += [
        s for s in await _reported_problems(temporal, limit=limit) if s.workflow_id not in seen
    ]
    return StuckReport(
        checked_at=now,
        limits={
            "refunding": limits.refunding.total_seconds(),
            "submitted_checking_approved": limits.moving.total_seconds(),
            "unstarted": limits.unstarted.total_seconds(),
            "review_grace": limits.review_grace.total_seconds(),
        },
        refunds=found[:limit],
    )


async def _explain(
    temporal: Client,
    row: StuckRow,
    now: datetime,
    payouts: dict[str, PayoutRow],
    attention: dict[str, TimelineRow],
) -> StuckRefund:
    wid = row.workflow_id
    base = {
        "refund_id": row.refund_id,
        "workflow_id": wid,
        "status": row.status.value,
        "since": row.updated_at,
    }
    try:
        described = await temporal.get_workflow_handle(wid).describe()
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        if row.workflow_started:
            return StuckRefund(
                **base,
                kind=Kind.WORKFLOW_NOT_FOUND,
                why="the refund says its workflow ran, but Temporal has no workflow "
                f"{wid} (deleted, or past the namespace's retention)",
                fix=f"refundctl explain and reconcile the order; Temporal cannot resume {wid}",
            )
        return StuckRefund(
            **base,
            kind=Kind.NEVER_STARTED,
            why=f"stored {_ago(now, row.created_at)} ago; its workflow was never started "
            "(the API died before starting it, and the worker's sweeper has not: is a worker up?)",
            fix="refundctl stuck --start-missing",
        )
    temporal_cause = await _temporal_cause(temporal, described, now)
    if temporal_cause is not None:
        kind, why, fix = temporal_cause
        return StuckRefund(**base, kind=kind, why=why, fix=fix)
    if described.status is not WorkflowExecutionStatus.RUNNING:
        status = described.status.name.lower() if described.status else "closed"
        return StuckRefund(
            **base,
            kind=Kind.WORKFLOW_CLOSED,
            why=f"its workflow is {status} but the refund is {row.status.value}",
            fix=_reset(wid),
        )
    if row.kind == StuckKind.REFUNDING:
        payout = payouts.get(row.refund_id)
        if payout is None:
            why, fix = "refunding with no payout recorded yet", _reset(wid)
        else:
            why = (
                f"{channel_name(payout.channel)} payout {payout.out_refund_no} is "
                f"{payout.state.value}"
                + (f" ({payout.gateway_status})" if payout.gateway_status else "")
                + f", last changed {_ago(now, payout.updated_at)} ago; the workflow asks the "
                "gateway again on its back-off"
            )
            notice = {"out_refund_no": payout.out_refund_no, "state": payout.state.value}
            # The signal only wakes the wait: the workflow then asks the gateway by a signed
            # query and believes that, never the signal's word.
            fix = _cli(
                "workflow",
                "signal",
                "--workflow-id",
                wid,
                "--name",
                "gateway_notification",
                "--input",
                json.dumps(notice),
            )
        return StuckRefund(**base, kind=Kind.REFUNDING, why=why, fix=fix)
    if row.kind == StuckKind.REVIEW_OVERDUE:
        deadline = row.review_deadline.isoformat() if row.review_deadline else "?"
        return StuckRefund(
            **base,
            kind=Kind.REVIEW_OVERDUE,
            why=f"waiting for a reviewer; the deadline {deadline} passed and the policy "
            "leaves it to a person (approve or reject; escalated to supervisors)",
            fix=_update(wid, "approve", {"reviewer": "<you>"}),
        )
    if row.kind == StuckKind.NEEDS_ATTENTION:
        entry = attention.get(row.refund_id)
        return StuckRefund(
            **base,
            kind=Kind.NEEDS_ATTENTION,
            why=entry.detail if entry else "where the money is needs a person",
            fix=_update(wid, "resolve", {"operator": "<you>", "action": "verify"}),
        )
    return StuckRefund(
        **base,
        kind=Kind.STAGE,
        why=f"{row.status.value} for {_ago(now, row.updated_at)} with nothing failing in "
        "Temporal: its next step has not run (look at the workers' logs for this refund)",
        fix=_reset(wid),
    )


async def _temporal_cause(
    temporal: Client, described: WorkflowExecutionDescription, now: datetime
) -> tuple[str, str, str] | None:
    """A workflow task failing or waiting, or an activity retrying: (kind, why, fix)."""
    wid = described.id
    raw = described.raw_description
    task = raw.pending_workflow_task if raw.HasField("pending_workflow_task") else None
    if task is not None and task.attempt > 1:
        message = await _last_task_failure(temporal, wid)
        if "PAYLOAD_ENCRYPTION_KEYS" in message or "payload encrypted with key id" in message:
            fix = (
                "add the payload key named above to PAYLOAD_ENCRYPTION_KEYS of every worker and "
                "restart them; the task then retries by itself"
            )
        else:
            fix = _reset(wid) + "  # after deploying a worker that fixes the failure"
        why = f"its workflow task failed {task.attempt - 1} times: {message}"
        return Kind.WORKFLOW_TASK_FAILING, why, fix
    if (
        task is not None
        and task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
        and (now - task.scheduled_time.ToDatetime(tzinfo=UTC)).total_seconds() > UNTAKEN_SECONDS
    ):
        queue = described.task_queue
        waited = _ago(now, task.scheduled_time.ToDatetime(tzinfo=UTC))
        why = (
            f"no worker has taken its workflow task for {waited}: "
            f"is any worker polling task queue {queue!r}?"
        )
        return (
            Kind.WORKFLOW_TASK_UNTAKEN,
            why,
            _cli("task-queue", "describe", "--task-queue", queue),
        )
    for activity in raw.pending_activities:
        if activity.attempt < 2 and not activity.HasField("last_failure"):
            continue
        last = activity.last_failure.message if activity.HasField("last_failure") else "timed out"
        why = (
            f"activity {activity.activity_type.name} (id {activity.activity_id}) is on attempt "
            f"{activity.attempt}; last error: {last}"
        )
        fix = _cli("activity", "reset", "--workflow-id", wid, "--activity-id", activity.activity_id)
        return Kind.ACTIVITY_RETRYING, why, fix + "  # retry now, once the cause is fixed"
    return None


async def _last_task_failure(temporal: Client, workflow_id: str) -> str:
    message = "no failure recorded yet"
    async for event in temporal.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            message = event.workflow_task_failed_event_attributes.failure.message
    return " ".join(message.split())[:500]


async def _reported_problems(temporal: Client, *, limit: int) -> list[StuckRefund]:
    """Running refund workflows Temporal flags as having failing workflow tasks."""
    found: list[StuckRefund] = []
    now = utcnow()
    async for execution in temporal.list_workflows(PROBLEMS_QUERY, limit=limit):
        refund_id = execution.id.removeprefix(PREFIX) if execution.id.startswith(PREFIX) else None
        described = await temporal.get_workflow_handle(execution.id).describe()
        cause = await _temporal_cause(temporal, described, now)
        if cause is None:  # recovered since the last visibility update
            continue
        kind, why, fix = cause
        found.append(
            StuckRefund(
                refund_id=refund_id,
                workflow_id=execution.id,
                status=None,
                kind=kind,
                since=execution.start_time,
                why=why,
                fix=fix,
            )
        )
    return found


async def start_missing(
    sessions: SessionFactory, temporal: Client, *, task_queue: str, limits: StageLimits
) -> list[str]:
    """Start the workflow of every refund stored but never started (what the worker's
    sweeper does every 15 s); the workflow id makes a repeat harmless."""
    now = utcnow()
    async with sessions() as session:
        rows = await figures.stuck_refunds(session, now=now, limits=limits, limit=1000)
    started: list[str] = []
    for row in rows:
        if row.kind != StuckKind.NEVER_STARTED:
            continue
        async with sessions() as session:
            await ensure_started(session, temporal, row.refund_id, task_queue=task_queue)
        started.append(row.refund_id)
    return started


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"

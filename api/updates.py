"""People's actions delivered to a refund's workflow as Updates, for the HTML pages (the
reviewer console and the buyer's progress page): the workflow's validator is the only judge,
and its answer comes back as a typed outcome a page can word, never as an exception page.

The JSON API keeps its own mapping to problem+json (`api.routers.refunds`); both ask the
same Updates, so the pages and the API cannot disagree about what a refund accepts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from domain.refund import RefundBody
from workflows.refund import RefundWorkflow

# How long a page waits for the workflow to carry an action out before saying "under way".
PAGE_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Outcome:
    """`taken`: the workflow accepted the action (`body`: the refund right after it, None when
    it is still being carried out). Otherwise `problem` says why not: a validator's refusal
    (`wrong-status`, `claimed-by-another`, `second-reviewer-needed`, `invalid-amount`...),
    `refund-closed` (the workflow has finished) or `unavailable` (Temporal did not answer)."""

    taken: bool
    body: RefundBody | None = None
    problem: str = ""
    reason: str = ""


async def deliver(
    temporal: Client,
    workflow_id: str,
    update: UpdateMethodMultiParam[[RefundWorkflow, Any], Any],
    req: BaseModel,
    *,
    wait: float = PAGE_WAIT_SECONDS,
) -> Outcome:
    handle = temporal.get_workflow_handle_for(RefundWorkflow.run, workflow_id)
    try:
        pending = await handle.start_update(
            update, req, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        body: RefundBody = await asyncio.wait_for(pending.result(), wait)
    except TimeoutError:
        return Outcome(taken=True)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            details = cause.details[0] if cause.details else {}
            problem = str(details.get("problem") or "wrong-status") if details else "wrong-status"
            return Outcome(taken=False, problem=problem, reason=cause.message)
        return Outcome(taken=False, problem="wrong-status", reason=str(cause))
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return Outcome(taken=False, problem="refund-closed", reason=err.message)
        return Outcome(taken=False, problem="unavailable", reason=err.message)
    return Outcome(taken=True, body=body)

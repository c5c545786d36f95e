"""IncidentWorkflow on the time-skipping server, its steps faked under their real names: the
dry run then a second person's confirm, batches at the declared rate, continue-as-new that
carries counts and a position (never the orders) and starts no order twice, pause and
cancel as Updates judged by their validators. Histories of these runs are kept for the
replay test (tests/histories/incident/)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.incident import IncidentDeclaration, IncidentSelection, PlanSummary
from domain.incident_run import (
    ConfirmIncident,
    IncidentOutcomes,
    IncidentReport,
    IncidentState,
    IncidentView,
    PauseIncident,
    ResumeIncident,
    StopIncident,
)
from domain.policy import IncidentPolicy
from tests.workflows.support import HISTORIES, REGENERATE
from workflows.incident import IncidentWorkflow
from workflows.incident_messages import (
    BatchAnswer,
    BatchRequest,
    IncidentInput,
    IncidentRecord,
    OutcomesRequest,
    PlanAnswer,
    PlanRequest,
)

INCIDENT_HISTORIES = HISTORIES / "incident"


@dataclass
class FakeIncidentWorld:
    """`orders` matched orders at positions 1..orders, all to refund; records every batch."""

    orders: int
    started: list[int] = field(default_factory=list)  # positions, in the order started
    records: list[IncidentState] = field(default_factory=list)
    batch_started: asyncio.Event = field(default_factory=asyncio.Event)

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="plan_incident")
        async def plan_incident(req: PlanRequest) -> PlanAnswer:
            return PlanAnswer(
                summary=PlanSummary(
                    matched=self.orders,
                    matched_amounts={"CNY": 5000 * self.orders},
                    to_refund=self.orders,
                    amounts={"CNY": 5000 * self.orders},
                ),
                limits=IncidentPolicy(max_orders=10_000),
            )

        @activity.defn(name="start_incident_refunds")
        async def start_incident_refunds(req: BatchRequest) -> BatchAnswer:
            batch = list(
                range(req.after_position + 1, min(req.after_position + req.limit, self.orders) + 1)
            )
            self.started += batch
            self.batch_started.set()
            return BatchAnswer(
                started=len(batch),
                last_position=batch[-1] if batch else req.after_position,
                exhausted=req.after_position + req.limit >= self.orders,
                outcomes=self.outcomes(),
            )

        @activity.defn(name="incident_outcomes")
        async def incident_outcomes(req: OutcomesRequest) -> IncidentOutcomes:
            return self.outcomes()

        @activity.defn(name="incident_report")
        async def incident_report(req: OutcomesRequest) -> IncidentReport:
            n = len(set(self.started))
            return IncidentReport(
                incident_id=req.incident_id,
                matched=self.orders,
                planned=self.orders,
                started=n,
                refunds={"refunded": n},
                refunded=n,
                refunded_amounts={"CNY": 5000 * n},
            )

        @activity.defn(name="record_incident")
        async def record_incident(record: IncidentRecord) -> None:
            self.records.append(record.status.state)

        return [
            plan_incident,
            start_incident_refunds,
            incident_outcomes,
            incident_report,
            record_incident,
        ]

    def outcomes(self) -> IncidentOutcomes:
        n = len(set(self.started))
        return IncidentOutcomes(by_status={"refunded": n}, refunded_amounts={"CNY": 5000 * n})


@asynccontextmanager
async def running_incident(
    env: WorkflowEnvironment, world: FakeIncidentWorld, *, rate: float, batches_per_run: int = 200
) -> AsyncIterator[WorkflowHandle[IncidentWorkflow, IncidentView]]:
    task_queue = f"incidents-{uuid.uuid4().hex[:8]}"
    declaration = IncidentDeclaration(
        incident_id=f"inc-{uuid.uuid4().hex[:8]}",
        declared_by="sam",
        selection=IncidentSelection(batch_id="B-1"),
        reason="bad batch",
        rate_per_second=rate,
    )
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow],
        activities=world.activities(),
    ):
        handle = await env.client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(
                declaration=declaration,
                declared_at=datetime.now(UTC),
                batches_per_run=batches_per_run,
            ),
            id=f"incident-{declaration.incident_id}",
            task_queue=task_queue,
        )
        yield handle


async def _until(
    handle: WorkflowHandle[IncidentWorkflow, IncidentView], state: IncidentState
) -> None:
    for _ in range(500):
        if (await handle.query(IncidentWorkflow.progress)).state is state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never {state}")


async def test_batches_continue_as_new_and_start_each_order_once(env: WorkflowEnvironment) -> None:
    world = FakeIncidentWorld(orders=23)
    async with running_incident(env, world, rate=2, batches_per_run=3) as handle:
        await _until(handle, IncidentState.AWAITING_CONFIRMATION)
        refused = handle.execute_update(IncidentWorkflow.confirm, ConfirmIncident(by="Sam"))
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await refused
        assert "second person" in str(err.value.cause)
        assert world.started == []

        await handle.execute_update(IncidentWorkflow.confirm, ConfirmIncident(by="lee"))
        view = await asyncio.wait_for(handle.result(), 60)

    assert world.started == list(range(1, 24))  # each once, in the dry run's order
    assert view.state is IncidentState.COMPLETED
    assert view.progress.started == 23 and view.progress.batches == 12  # two a batch at 2/s
    assert view.progress.runs == 4  # 3 batches a run
    assert view.report is not None and view.report.refunded == 23
    assert world.records[-1] is IncidentState.COMPLETED
    if REGENERATE:
        first = env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        await _write_history(first, "continued_as_new_first_run")
        await _write_history(handle, "continued_as_new_final_run")


async def test_pause_holds_batches_and_cancel_starts_nothing_more(env: WorkflowEnvironment) -> None:
    world = FakeIncidentWorld(orders=50)
    async with running_incident(env, world, rate=1) as handle:
        await _until(handle, IncidentState.AWAITING_CONFIRMATION)
        await handle.execute_update(IncidentWorkflow.confirm, ConfirmIncident(by="lee"))
        await world.batch_started.wait()

        paused = await handle.execute_update(IncidentWorkflow.pause, PauseIncident(by="lee"))
        assert paused.state is IncidentState.PAUSED
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(IncidentWorkflow.pause, PauseIncident(by="lee"))
        held = len(world.started)
        await env.sleep(3600)  # an hour of server time: nothing starts while paused
        assert len(world.started) == held

        too_fast = ResumeIncident(by="kim", rate_per_second=10_000 / 10)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(IncidentWorkflow.resume, too_fast)
        assert "at most" in str(err.value.cause)
        await handle.execute_update(IncidentWorkflow.resume, ResumeIncident(by="kim"))
        await env.sleep(2)
        cancelled = await handle.execute_update(IncidentWorkflow.cancel, StopIncident(by="kim"))
        assert cancelled.state in (IncidentState.CANCELLING, IncidentState.CANCELLED)
        view = await asyncio.wait_for(handle.result(), 60)

    assert view.state is IncidentState.CANCELLED and view.cancelled_by == "kim"
    assert held < len(world.started) < 50
    assert world.started == list(range(1, len(world.started) + 1))
    if REGENERATE:
        await _write_history(handle, "pause_resume_cancel")


async def _write_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    history = await handle.fetch_history()
    INCIDENT_HISTORIES.mkdir(exist_ok=True, parents=True)
    (INCIDENT_HISTORIES / f"{name}.json").write_text(history.to_json() + "\n", encoding="utf-8")

"""The steps the IncidentWorkflow asks of the outside world, declared by name and types only
(as `workflows.steps` declares the RefundWorkflow's): the worker registers the
implementations, `activities.incidents.IncidentSteps`, under the same names and types
(`tests/test_workflow_surface.py` checks one against the other)."""

from __future__ import annotations

from temporalio import activity

from domain.incident_run import IncidentOutcomes, IncidentReport
from workflows.incident_messages import (
    BatchAnswer,
    BatchRequest,
    IncidentRecord,
    OutcomesRequest,
    PlanAnswer,
    PlanRequest,
)
from workflows.steps import Undeclared

__all__ = [
    "incident_outcomes",
    "incident_report",
    "plan_incident",
    "record_incident",
    "start_incident_refunds",
]


@activity.defn(name="plan_incident")
async def plan_incident(req: PlanRequest) -> PlanAnswer:
    """The dry run: every matched order judged (refund which items, or skip it and why),
    the verdicts stored; answers their summary and the policy's limits."""
    raise Undeclared


@activity.defn(name="start_incident_refunds")
async def start_incident_refunds(req: BatchRequest) -> BatchAnswer:
    """Store the next orders' refunds as intake stores a buyer's, and start their
    RefundWorkflows by id (`workflow_api.starter`); safe to repeat."""
    raise Undeclared


@activity.defn(name="incident_outcomes")
async def incident_outcomes(req: OutcomesRequest) -> IncidentOutcomes:
    raise Undeclared


@activity.defn(name="incident_report")
async def incident_report(req: OutcomesRequest) -> IncidentReport:
    raise Undeclared


@activity.defn(name="record_incident")
async def record_incident(record: IncidentRecord) -> None:
    """Write the incident's state where the API reads it."""
    raise Undeclared

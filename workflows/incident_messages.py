"""What the IncidentWorkflow takes, sends its activities and gets back: one model each way.

Pure models (domain words only), shared by the workflow, its activities' implementations and
the API. Nothing here holds an order list: the dry run's verdicts live in the database
(`incident_orders`), so however many orders an incident touches, its history carries counts
and positions, never the orders themselves."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from domain.incident import IncidentDeclaration, IncidentSelection, PlanSummary, SkipReason
from domain.incident_run import IncidentOutcomes, IncidentStatus
from domain.model import Model
from domain.policy import IncidentPolicy
from domain.types import Destination, RefundReason

__all__ = [
    "BatchAnswer",
    "BatchRequest",
    "IncidentInput",
    "IncidentRecord",
    "OutcomesRequest",
    "PlanAnswer",
    "PlanRequest",
]


class IncidentInput(Model):
    """The workflow's start argument, and what it carries into its next run."""

    declaration: IncidentDeclaration
    declared_at: datetime
    # Continue-as-new: where the previous run stood (None on the first run).
    carried: IncidentStatus | None = None
    carried_seq: int = 0
    carried_limits: IncidentPolicy | None = None
    # Batches one run starts before it continues as new (tests make it small).
    batches_per_run: int = Field(default=200, ge=1, le=10_000)


class PlanRequest(Model):
    """The dry run: match the selection, judge every order, store the verdicts."""

    incident_id: str
    selection: IncidentSelection


class PlanAnswer(Model):
    summary: PlanSummary
    # The policy's limits in force when the dry run ran: the workflow judges with them.
    limits: IncidentPolicy


class BatchRequest(Model):
    """Start the refunds of the next `limit` orders after `after_position`."""

    incident_id: str
    after_position: int
    limit: int
    reason: str
    destination: Destination
    refund_reason: RefundReason


class BatchAnswer(Model):
    started: int = 0
    skipped: dict[SkipReason, int] = Field(default_factory=dict)
    last_position: int
    exhausted: bool  # no order left to start after this batch
    outcomes: IncidentOutcomes = Field(default_factory=IncidentOutcomes)


class OutcomesRequest(Model):
    incident_id: str


class IncidentRecord(Model):
    """The incident's state as the workflow reports it to the database (ordered by `seq`)."""

    incident_id: str
    seq: int
    status: IncidentStatus

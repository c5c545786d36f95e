"""A running incident (`domain.incident` declares one): its states, what its workflow reports
as it goes (progress, the final report) and what the people running it may do when —
confirm (a second person, never the declarer), pause, resume, cancel. The IncidentWorkflow's
Update validators ask the `may_*` functions, and nothing else decides."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from domain.acceptance import Refusal
from domain.incident import IncidentDeclaration, PlanSummary, RatePerSecond, SkipReason
from domain.model import Identifier, LongText, Model
from domain.policy import IncidentPolicy
from domain.wording import money_en

__all__ = [
    "ConfirmIncident",
    "IncidentOutcomes",
    "IncidentProgress",
    "IncidentReport",
    "IncidentState",
    "IncidentStatus",
    "IncidentView",
    "PauseIncident",
    "ResumeIncident",
    "StopIncident",
    "may_cancel",
    "may_confirm",
    "may_pause",
    "may_resume",
    "same_person",
]


class IncidentState(StrEnum):
    PLANNING = "planning"  # the dry run is working out what to refund
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # a second person must confirm
    RUNNING = "running"
    PAUSED = "paused"
    FINISHING = "finishing"  # every refund started; waiting for them to end
    CANCELLING = "cancelling"  # no new refunds; waiting for those started to end
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # the dry run found nothing to do, or too much without an override

    @property
    def is_terminal(self) -> bool:
        return self in (IncidentState.COMPLETED, IncidentState.CANCELLED, IncidentState.REFUSED)


class IncidentOutcomes(Model):
    """The incident's refunds as they stand (from the database)."""

    by_status: dict[str, int] = Field(default_factory=dict)
    refunded_amounts: dict[str, int] = Field(default_factory=dict)
    commissions_clawed_back: dict[str, int] = Field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        """Refunds still moving on their own (not ended, not waiting for a person)."""
        resting = {"pending_review", "needs_attention", "refunded", "rejected", "failed"}
        resting |= {"redirected_to_support", "cancelled", "replaced"}
        return sum(n for status, n in self.by_status.items() if status not in resting)


class IncidentProgress(Model):
    started: int = 0
    # Skipped when their turn came (a buyer's own refund opened after the dry run, say).
    skipped_at_start: dict[SkipReason, int] = Field(default_factory=dict)
    position: int = 0  # the dry-run position of the last order whose refund was started
    batches: int = 0
    runs: int = 1  # this incident's workflow runs (continue-as-new keeps histories short)
    outcomes: IncidentOutcomes = Field(default_factory=IncidentOutcomes)


class IncidentReport(Model):
    """What the incident did, from the database: the dry run's verdicts, the refunds it
    started and where each stands, the money returned and the commissions clawed back."""

    incident_id: str
    matched: int = 0
    planned: int = 0
    started: int = 0
    skipped: dict[SkipReason, int] = Field(default_factory=dict)
    refunds: dict[str, int] = Field(default_factory=dict, description="refunds by status")
    refunded: int = 0
    failed: int = 0
    waiting_for_a_person: int = Field(default=0, description="in pending_review or needs_attention")
    in_flight: int = 0
    refunded_amounts: dict[str, int] = Field(default_factory=dict)
    commissions_clawed_back: dict[str, int] = Field(default_factory=dict)

    def in_words(self) -> str:
        money = ", ".join(money_en(a, c) for c, a in sorted(self.refunded_amounts.items()))
        return (
            f"{self.refunded} refunded ({money or 'nothing'}), {self.failed} failed, "
            f"{self.waiting_for_a_person} waiting for a person, "
            f"{sum(self.skipped.values())} skipped"
        )


class IncidentStatus(Model):
    """What the IncidentWorkflow knows and reports as it goes (the declaration aside)."""

    state: IncidentState
    rate_per_second: float
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None
    paused_by: str | None = None
    cancelled_by: str | None = None
    summary: PlanSummary | None = None
    progress: IncidentProgress = Field(default_factory=IncidentProgress)
    message: str = ""
    report: IncidentReport | None = None
    updated_at: datetime


class IncidentView(IncidentStatus):
    """An incident as the API, the CLI and the workflow's `progress` query show it."""

    incident_id: str
    declaration: IncidentDeclaration
    declared_at: datetime
    workflow_id: str


class ConfirmIncident(Model):
    """The second person's go-ahead after reading the dry run."""

    by: Identifier
    note: LongText = ""


class PauseIncident(Model):
    by: Identifier
    note: LongText = ""


class ResumeIncident(Model):
    by: Identifier
    # A new pace from here on (at most the policy's `incidents.max_rate_per_second`).
    rate_per_second: RatePerSecond | None = None


class StopIncident(Model):
    """Cancel: no new refunds; those already started finish (one paying is never stopped)."""

    by: Identifier
    note: LongText = ""


def same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _now_state(view: IncidentView, what: str) -> Refusal:
    return Refusal(f"cannot {what} an incident that is {view.state.value}")


def may_confirm(view: IncidentView, req: ConfirmIncident) -> Refusal | None:
    """Only after the dry run, only once, and never by the person who declared it."""
    if view.state is not IncidentState.AWAITING_CONFIRMATION:
        if view.state is IncidentState.PLANNING:
            return Refusal("the dry run is not finished yet; read it before confirming")
        return _now_state(view, "confirm")
    if same_person(req.by, view.declaration.declared_by):
        return Refusal(
            f"{view.declaration.declared_by} declared this incident; a second person must "
            "confirm it",
            "second-person-needed",
            "by",
        )
    return None


def may_pause(view: IncidentView, req: PauseIncident) -> Refusal | None:
    if view.state is not IncidentState.RUNNING:
        return _now_state(view, "pause")
    return None


def may_resume(view: IncidentView, req: ResumeIncident, limits: IncidentPolicy) -> Refusal | None:
    if view.state is not IncidentState.PAUSED:
        return _now_state(view, "resume")
    if req.rate_per_second is not None and req.rate_per_second > limits.max_rate_per_second:
        return Refusal(
            f"at most {limits.max_rate_per_second} refunds per second "
            "(incidents.max_rate_per_second)",
            "invalid-rate",
            "rate_per_second",
        )
    return None


def may_cancel(view: IncidentView, req: StopIncident) -> Refusal | None:
    if view.state in (
        IncidentState.PLANNING,
        IncidentState.AWAITING_CONFIRMATION,
        IncidentState.RUNNING,
        IncidentState.PAUSED,
    ):
        return None
    return _now_state(view, "cancel")

"""The steps the RefundWorkflow asks of the outside world, declared by name and types only.

The workflow calls these declarations (`workflow.execute_activity(steps.send_payout, ...)`),
so it imports nothing that does I/O: the API can import the workflow class for typed
Update calls without dragging in the database or the gateways. The worker registers the
implementations — methods of the classes in `activities/` carrying the same activity names
and types, which `tests/test_activity_declarations.py` checks one against the other."""

from __future__ import annotations

from temporalio import activity

from domain.refund import PayoutView, RiskAssessment
from workflows.messages import (
    AbandonPayout,
    AbnormalRescue,
    CaseFile,
    CaseRequest,
    CommissionAnswer,
    CommissionRequest,
    KeysAnswer,
    KeysRequest,
    OpenCaseRequest,
    OpenedCase,
    PayoutRequest,
    ProgressReport,
    RecordWithCommissions,
    ReplacementRequest,
    ReservationAnswer,
    RiskRequest,
    SettlementQuery,
)

__all__ = [
    "abandon_payout",
    "assess_risk",
    "confirm_replacement_key",
    "find_replacement_key",
    "load_case",
    "lock_card_keys",
    "move_commissions",
    "open_case",
    "query_key_redemption",
    "query_payout",
    "record_progress",
    "record_with_commissions",
    "rescue_abnormal_payout",
    "reserve_replacement_key",
    "send_payout",
]


class Undeclared(NotImplementedError):
    """Raised if a declaration itself is ever run: the worker registers the implementation."""


# --- the case file and progress reports (activities.records.RefundRecords, local) -------------


@activity.defn(name="load_case")
async def load_case(req: CaseRequest) -> CaseFile:
    """The order as stored now, what other refunds took, and the policy in force."""
    raise Undeclared


@activity.defn(name="record_progress")
async def record_progress(report: ProgressReport) -> None:
    """Write the refund body, its new timeline entries, alerts, audit and notifications."""
    raise Undeclared


@activity.defn(name="open_case")
async def open_case(req: OpenCaseRequest) -> OpenedCase:
    """load_case, assess_risk and the commission freeze in one step (one history marker)."""
    raise Undeclared


@activity.defn(name="record_with_commissions")
async def record_with_commissions(req: RecordWithCommissions) -> CommissionAnswer:
    """A progress report and the commission move it announces, in one transaction."""
    raise Undeclared


# --- risk and commissions (activities.risk.RiskChecks, activities.commissions; local) ---------


@activity.defn(name="assess_risk")
async def assess_risk(req: RiskRequest) -> RiskAssessment:
    raise Undeclared


@activity.defn(name="move_commissions")
async def move_commissions(req: CommissionRequest) -> CommissionAnswer:
    """Freeze, claw back (pro rata) or release the distributors' commissions."""
    raise Undeclared


# --- card keys at the supplier (activities.supplier.CardKeyChecks) ----------------------------


@activity.defn(name="query_key_redemption")
async def query_key_redemption(req: KeysRequest) -> KeysAnswer:
    raise Undeclared


@activity.defn(name="lock_card_keys")
async def lock_card_keys(req: KeysRequest) -> KeysAnswer:
    """Void the keys so they cannot be redeemed while the money moves."""
    raise Undeclared


# --- a fresh key instead of money (activities.replacement.Replacements) ----------------------


@activity.defn(name="reserve_replacement_key")
async def reserve_replacement_key(req: ReplacementRequest) -> ReservationAnswer:
    """Hold a fresh key at the supplier under the refund's idempotency key."""
    raise Undeclared


@activity.defn(name="find_replacement_key")
async def find_replacement_key(req: ReplacementRequest) -> ReservationAnswer:
    """The reservation made under the refund's idempotency key, if any (`none`)."""
    raise Undeclared


@activity.defn(name="confirm_replacement_key")
async def confirm_replacement_key(req: ReplacementRequest) -> ReservationAnswer:
    """Hand the reserved key (`req.reservation_id`) to the buyer."""
    raise Undeclared


# --- money (activities.payouts.Payouts) -------------------------------------------------------


@activity.defn(name="send_payout")
async def send_payout(req: PayoutRequest) -> PayoutView:
    """Ask a route for one refund under its idempotency key."""
    raise Undeclared


@activity.defn(name="query_payout")
async def query_payout(req: SettlementQuery) -> PayoutView:
    """The gateway's verified word on a payout (re-sent under the same number if lost)."""
    raise Undeclared


@activity.defn(name="rescue_abnormal_payout")
async def rescue_abnormal_payout(req: AbnormalRescue) -> PayoutView:
    raise Undeclared


@activity.defn(name="abandon_payout")
async def abandon_payout(req: AbandonPayout) -> PayoutView:
    raise Undeclared

"""An in-memory stand-in for everything RefundWorkflow's activities reach (database,
supplier, gateways), registered under the real activity names (samples-python style).

Each test gets a fresh `FakeBackend`, scripts what the outside world answers (the order,
the supplier's key states, the gateway's payout states) and afterwards asserts on what the
workflow asked for: every call is recorded in order, with its input model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.order import Order
from domain.policy import Policy, load_policy
from domain.refund import CommissionView, PayoutView, RiskAssessment
from domain.types import CommissionState, KeyState, PayoutState
from workflows.messages import (
    AbandonPayout,
    AbnormalRescue,
    CaseFile,
    CaseRequest,
    CommissionAction,
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

DEFAULT_POLICY = load_policy(None)

COMMISSION_STATES = {
    CommissionAction.FREEZE: CommissionState.FROZEN,
    CommissionAction.CLAW_BACK: CommissionState.CLAWED_BACK,
    CommissionAction.RELEASE: CommissionState.RELEASED,
}


@dataclass
class Call:
    """One activity invocation as the fake saw it."""

    name: str
    arg: Any
    # The server's clock when the activity was scheduled (skipped time included), for
    # regular activities; local activities have no schedule time of their own.
    scheduled: datetime | None = None


@dataclass
class FakeBackend:
    order: Order
    policy: Policy = DEFAULT_POLICY
    risk: RiskAssessment = field(default_factory=RiskAssessment)
    # What the supplier says at the check; a key not listed is unredeemed.
    key_states: dict[str, KeyState] = field(default_factory=dict)
    # What the supplier answers to the lock; a key not listed is locked.
    lock_states: dict[str, KeyState] = field(default_factory=dict)
    # The gateway's first answer per attempt number; not listed: succeeded.
    send_states: dict[int, PayoutState] = field(default_factory=dict)
    # The gateway's answers to successive settlement queries; once used up: `settles_to`.
    query_states: list[PayoutState] = field(default_factory=list)
    settles_to: PayoutState = PayoutState.SUCCEEDED
    # What the abnormal-refund call answers (WeChat: the refund goes back to processing).
    rescue_state: PayoutState = PayoutState.PROCESSING
    # When set, lock_card_keys announces itself on `lock_started` and answers only once
    # `lock_gate` is set: a test can act while the supplier is being asked.
    lock_gate: asyncio.Event | None = None
    lock_started: asyncio.Event = field(default_factory=asyncio.Event)
    # `lock_fails`: the supplier refuses the lock for good (a failure no retry mends).
    lock_fails: bool = False
    # The supplier's answers to a replacement (补发): the reservation, then the confirmation;
    # `confirm_fails`: the confirmation fails for good (whether the key was handed over is
    # then unknown, as after a budget of timeouts).
    reservation: ReservationAnswer = field(
        default_factory=lambda: ReservationAnswer(
            state="reserved", reservation_id="RSV-1", card_key_id="RK-1"
        )
    )
    confirm_state: str = "confirmed"
    confirm_fails: bool = False
    # `reserve_fails`: the reservation call fails for good; the lookup then finds `found`.
    reserve_fails: bool = False
    found: ReservationAnswer = field(default_factory=lambda: ReservationAnswer(state="none"))
    calls: list[Call] = field(default_factory=list)

    # ---------------------------------------------------------------- what was asked
    def called(self, name: str) -> list[Any]:
        return [c.arg for c in self.calls if c.name == name]

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    @property
    def reports(self) -> list[ProgressReport]:
        return [r for r in self.called("record_progress") if isinstance(r, ProgressReport)]

    @property
    def payouts(self) -> list[PayoutRequest]:
        return [p for p in self.called("send_payout") if isinstance(p, PayoutRequest)]

    @property
    def commission_actions(self) -> list[CommissionAction]:
        return [r.action for r in self.called("move_commissions")]

    def stages(self) -> list[str]:
        """Every timeline stage the workflow reported, in order."""
        return [e.stage for r in self.reports for e in r.new_entries]

    def alerts(self) -> list[str]:
        return [a for r in self.reports for a in r.alerts]

    def _moved(self, req: CommissionRequest) -> CommissionAnswer:
        state = COMMISSION_STATES[req.action]
        return CommissionAnswer(
            commissions=[
                CommissionView(
                    beneficiary_id=c.beneficiary_id,
                    level=c.level,
                    amount=c.amount * req.refund_amount // max(req.order_amount, 1),
                    state=state,
                )
                for c in self.order.commissions
            ]
        )

    def _record(self, name: str, arg: Any, *, local: bool = False) -> None:
        scheduled = None if local else activity.info().scheduled_time
        self.calls.append(Call(name, arg, scheduled))

    # ---------------------------------------------------------------- the activities
    def activities(self) -> Sequence[Callable[..., Any]]:
        @activity.defn(name="load_case")
        async def load_case(req: CaseRequest) -> CaseFile:
            self._record("load_case", req, local=True)
            order = self.order if req.order_id == self.order.order_id else None
            return CaseFile(order=order, policy=self.policy, policy_version=self.policy.version)

        @activity.defn(name="record_progress")
        async def record_progress(report: ProgressReport) -> None:
            self._record("record_progress", report, local=True)

        @activity.defn(name="open_case")
        async def open_case(req: OpenCaseRequest) -> OpenedCase:
            self._record("open_case", req, local=True)
            if req.order_id != self.order.order_id:
                return OpenedCase(
                    order=None, policy=self.policy, policy_version=self.policy.version
                )
            return OpenedCase(
                order=self.order,
                policy=self.policy,
                policy_version=self.policy.version,
                risk=self.risk,
            )

        @activity.defn(name="record_with_commissions")
        async def record_with_commissions(req: RecordWithCommissions) -> CommissionAnswer:
            moved = CommissionAnswer(commissions=req.report.body.commissions)
            if req.commissions is not None:
                self._record("move_commissions", req.commissions, local=True)
                moved = self._moved(req.commissions)
            self._record("record_progress", req.report, local=True)
            return moved

        @activity.defn(name="assess_risk")
        async def assess_risk(req: RiskRequest) -> RiskAssessment:
            self._record("assess_risk", req, local=True)
            return self.risk

        @activity.defn(name="move_commissions")
        async def move_commissions(req: CommissionRequest) -> CommissionAnswer:
            self._record("move_commissions", req, local=True)
            return self._moved(req)

        @activity.defn(name="query_key_redemption")
        async def query_key_redemption(req: KeysRequest) -> KeysAnswer:
            self._record("query_key_redemption", req)
            return KeysAnswer(
                states={
                    k.card_key_id: self.key_states.get(k.card_key_id, KeyState.UNREDEEMED)
                    for k in req.keys
                }
            )

        @activity.defn(name="lock_card_keys")
        async def lock_card_keys(req: KeysRequest) -> KeysAnswer:
            self._record("lock_card_keys", req)
            self.lock_started.set()
            if self.lock_gate is not None:
                await self.lock_gate.wait()
            if self.lock_fails:
                raise ApplicationError("supplier refused the lock", non_retryable=True)
            return KeysAnswer(
                states={
                    k.card_key_id: self.lock_states.get(k.card_key_id, KeyState.LOCKED)
                    for k in req.keys
                }
            )

        @activity.defn(name="send_payout")
        async def send_payout(req: PayoutRequest) -> PayoutView:
            self._record("send_payout", req)
            state = self.send_states.get(req.attempt, PayoutState.SUCCEEDED)
            return _payout(req, state)

        @activity.defn(name="query_payout")
        async def query_payout(req: SettlementQuery) -> PayoutView:
            self._record("query_payout", req)
            state = self.query_states.pop(0) if self.query_states else self.settles_to
            sent = next(p for p in self.payouts if p.out_refund_no == req.out_refund_no)
            return _payout(sent, state)

        @activity.defn(name="rescue_abnormal_payout")
        async def rescue_abnormal_payout(req: AbnormalRescue) -> PayoutView:
            self._record("rescue_abnormal_payout", req)
            sent = next(p for p in self.payouts if p.out_refund_no == req.out_refund_no)
            return _payout(sent, self.rescue_state)

        @activity.defn(name="abandon_payout")
        async def abandon_payout(req: AbandonPayout) -> PayoutView:
            self._record("abandon_payout", req)
            sent = next(p for p in self.payouts if p.out_refund_no == req.out_refund_no)
            return _payout(sent, PayoutState.FAILED)

        @activity.defn(name="reserve_replacement_key")
        async def reserve_replacement_key(req: ReplacementRequest) -> ReservationAnswer:
            self._record("reserve_replacement_key", req, local=True)
            if self.reserve_fails:
                raise _refused()
            return self.reservation

        @activity.defn(name="find_replacement_key")
        async def find_replacement_key(req: ReplacementRequest) -> ReservationAnswer:
            self._record("find_replacement_key", req, local=True)
            return self.found if self.reserve_fails else self.reservation

        @activity.defn(name="confirm_replacement_key")
        async def confirm_replacement_key(req: ReplacementRequest) -> ReservationAnswer:
            self._record("confirm_replacement_key", req, local=True)
            if self.confirm_fails:
                raise _refused()
            return self.reservation.model_copy(update={"state": self.confirm_state})

        return [
            load_case,
            record_progress,
            open_case,
            record_with_commissions,
            assess_risk,
            move_commissions,
            query_key_redemption,
            lock_card_keys,
            send_payout,
            query_payout,
            rescue_abnormal_payout,
            abandon_payout,
            reserve_replacement_key,
            find_replacement_key,
            confirm_replacement_key,
        ]


def _refused() -> ApplicationError:
    """What a supplier's final "no" looks like to the workflow (`peers.supplier`)."""
    return ApplicationError(
        "supplier refused the request: HTTP 401", type="SupplierRejected", non_retryable=True
    )


def _payout(req: PayoutRequest, state: PayoutState) -> PayoutView:
    return PayoutView(
        channel=req.channel,
        amount=req.amount,
        state=state,
        gateway_refund_id=f"gw-{req.out_refund_no}" if state is PayoutState.SUCCEEDED else None,
        out_refund_no=req.out_refund_no,
        payment_id=req.payment_id,
        attempt=req.attempt,
    )

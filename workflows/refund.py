"""RefundWorkflow: one per refund, id `refund-{refund_id}`, from the buyer's click to
money back (or a clear no), as DOMAIN.md describes.

The workflow holds the refund's state as the contract body (`self.view`) and reports
it to the database through the `record_progress` local activity at every stage, so
the API, webhooks and the `status` query all show the same thing. It does no I/O and
reads the clock only through `workflow.now()`; the decision is the pure
`domain.rules.decide`, called right here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.commissions import Commissions
    from activities.messages import (
        AbandonPayout,
        AbnormalRescue,
        AuditEvent,
        CaseRequest,
        CommissionAction,
        CommissionRequest,
        GatewayNotice,
        KeysAnswer,
        KeysRequest,
        PayoutRequest,
        ProgressReport,
        RefundInput,
        RiskRequest,
        SettlementQuery,
    )
    from activities.payouts import Payouts
    from activities.records import RefundRecords
    from activities.risk import RiskChecks
    from activities.supplier import CardKeyChecks
    from domain import rules
    from domain.decision import Decision, DecisionCase
    from domain.order import CardKeyRef, Order, Payment
    from domain.policy import PayoutPolicy, Policy
    from domain.refund import (
        AppealRequest,
        ApproveRequest,
        CancelRequest,
        DecisionView,
        EvidenceRequest,
        PayoutView,
        RefundBody,
        RefundItemRequest,
        RefundItemView,
        RejectRequest,
        ResolveAction,
        ResolveRequest,
        ReviewView,
        TimelineEntry,
        refundable_now,
        workflow_id_for,
    )
    from domain.types import (
        Destination,
        KeyState,
        Outcome,
        PaymentChannel,
        PayoutState,
        RefundStatus,
        RiskLevel,
    )
    from domain.wording import channel_name, reason_for_buyer

# Search attributes (CONTRACT "Temporal surface"): SREs find refunds by these.
REFUND_STATUS = SearchAttributeKey.for_keyword("RefundStatus")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
MERCHANT_ID = SearchAttributeKey.for_keyword("MerchantId")
BUYER_ID = SearchAttributeKey.for_keyword("BuyerId")
REFUND_AMOUNT = SearchAttributeKey.for_int("RefundAmount")
RISK_LEVEL = SearchAttributeKey.for_keyword("RiskLevel")
REVIEW_DEADLINE = SearchAttributeKey.for_datetime("ReviewDeadline")

# Database steps: retried until the database is back, however long that takes; a refund
# never gives up because the database blinked.
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)
DB_TIMEOUT = timedelta(seconds=15)
# A supplier that does not answer three quick tries is "unreachable": a person decides.
SUPPLIER_QUERY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_attempts=3,
    maximum_interval=timedelta(seconds=2),
)
# Locking must happen before money moves: keep trying for a while, then ask a person.
SUPPLIER_LOCK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
SUPPLIER_LOCK_BUDGET = timedelta(minutes=30)
# Money calls carry an idempotency key, so retrying them forever is safe; refusals are typed
# and not retried.
PAYOUT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["GatewayRefused", "UnknownChannel", "UnknownPayout"],
)
PAYOUT_TIMEOUT = timedelta(seconds=30)
# How long one send or query keeps retrying transient failures (timeouts, 5xx, system
# errors) before the workflow takes the outcome as unknown and checks it by query.
PAYOUT_SEND_BUDGET = timedelta(minutes=10)
PAYOUT_QUERY_BUDGET = timedelta(minutes=2)
# The payout activities heartbeat every second: a worker that dies mid-call is noticed in
# seconds and the call retried (same idempotency key) on a live one.
PAYOUT_HEARTBEAT = timedelta(seconds=3)
# "Processing" refunds: WeChat suggests querying after 1 min, then 5/10/20/30 min; Alipay
# after >= 10 s. A notification signal cuts any wait short.
SETTLEMENT_BACKOFF = [
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=10),
    timedelta(minutes=20),
    timedelta(minutes=30),
]
# An answer that could not be verified is re-checked sooner: nothing is slow, something is
# wrong (a signature, a key, a clock), and a signed query may settle it at once.
VERIFY_BACKOFF = [
    timedelta(seconds=2),
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=10),
]
DEFAULT_APPEAL_WINDOW = timedelta(days=7)
# Before this patch an ABNORMAL payout fell back to balance (paying twice once the
# abnormal refund was resolved); histories recorded before it replay that way.
ABNORMAL_TO_A_PERSON = "abnormal-needs-a-person"


class Next(StrEnum):
    REVIEW = "review"
    PAY = "pay"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    DONE = "done"


@workflow.defn(name="RefundWorkflow")
class RefundWorkflow:
    @workflow.init
    def __init__(self, inp: RefundInput) -> None:
        self.inp = inp
        self.view = RefundBody(
            refund_id=inp.refund_id,
            order_id=inp.order_id,
            buyer_id=inp.buyer_id,
            merchant_id=inp.merchant_id,
            status=RefundStatus.SUBMITTED,
            amount=inp.amount,
            currency=inp.currency,
            reason=inp.reason,
            reason_text=inp.reason_text,
            evidence=list(inp.evidence),
            timeline=[TimelineEntry(stage="submitted", at=inp.created_at)],
            workflow_id=workflow_id_for(inp.refund_id),
            created_at=inp.created_at,
            updated_at=inp.created_at,
        )
        self.reported_entries = 1  # the API wrote "submitted" with the refund
        self.report_seq = 1
        self.order: Order | None = None
        self.policy: Policy | None = None
        self.case: DecisionCase | None = None
        self.decision: Decision | None = None
        self.approval: ApproveRequest | None = None
        self.rejection: RejectRequest | None = None
        self.cancel_request: CancelRequest | None = None
        self.appeal: AppealRequest | None = None
        self.notices: dict[str, GatewayNotice] = {}
        self.unreported = False  # a signal changed the view; report it at the next chance
        self.audit: list[AuditEvent] = []
        self.alerts: list[str] = []
        self.commissions_frozen = False
        self.keys_locked = False
        self.items_repriced = False
        self.payout_attempts = 0
        # Requests to resolve a refund that needs attention, and how many were carried out:
        # an update returns once its own request is done.
        self.resolutions: list[ResolveRequest] = []
        self.resolutions_taken = 0
        self.resolutions_done = 0
        self.attention: PayoutView | None = None  # the payout a person is asked about

    # ------------------------------------------------------------------ run
    @workflow.run
    async def run(self, inp: RefundInput) -> RefundBody:
        step = await self._check_and_decide()
        while step is not Next.DONE:
            if step is Next.REVIEW:
                step = await self._review()
            elif step is Next.PAY:
                step = await self._pay()
            elif step is Next.REJECTED:
                step = await self._rejected()
            elif step is Next.CANCELLED:
                step = await self._finish(
                    RefundStatus.CANCELLED, "cancelled", "cancelled by the buyer"
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view

    async def _check_and_decide(self) -> Next:
        case = await workflow.execute_local_activity_method(
            RefundRecords.load_case,
            CaseRequest(refund_id=self.inp.refund_id, order_id=self.inp.order_id),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        if case.order is None:
            return await self._finish(RefundStatus.FAILED, "failed", "the order no longer exists")
        self.order = case.order
        self.policy = case.policy
        self.view.items = _priced(case.order, self.inp.items)
        await self._move_commissions(CommissionAction.FREEZE)
        self._set_status(RefundStatus.CHECKING, "checking_card_key", "asking the supplier")
        await self._report()

        risk = await workflow.execute_local_activity_method(
            RiskChecks.assess_risk,
            RiskRequest(
                refund_id=self.inp.refund_id,
                order_id=self.inp.order_id,
                buyer_id=self.inp.buyer_id,
                client=self.inp.client,
                card_key_ids=[k.card_key_id for k in self._keys()],
                skus=sorted({i.sku for i in case.order.items}),
                at=workflow.now(),
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self.view.risk = risk
        states = await self._query_keys()
        self.case = DecisionCase(
            order=case.order,
            items=self.inp.items,
            already_refunded=case.already_refunded,
            key_states=states,
            risk=risk,
            reason=self.inp.reason,
            reason_text=self.inp.reason_text,
            now=workflow.now(),
        )
        decision = rules.decide(self.case, self.policy)
        self._apply_decision(decision, actor="rules")
        self._entry("card_key_checked", _describe_keys(states))
        self._entry("decided", decision.explanation_zh or decision.explanation)
        workflow.upsert_search_attributes(
            [RISK_LEVEL.value_set(risk.level.value), REFUND_AMOUNT.value_set(decision.amount)]
        )
        return await self._route(decision)

    async def _route(self, decision: Decision) -> Next:
        outcome = decision.outcome
        if outcome is Outcome.CANCEL_UNPAID:
            return await self._finish(
                RefundStatus.CANCELLED,
                "order_cancelled",
                "unpaid order cancelled",
                cancel_order=True,
            )
        if outcome is Outcome.REDIRECT_TO_SUPPORT:
            return await self._finish(
                RefundStatus.REDIRECTED_TO_SUPPORT, "redirected_to_support", decision.explanation
            )
        if outcome is Outcome.REJECT:
            return Next.REJECTED
        if outcome is Outcome.REVIEW:
            return Next.REVIEW
        return Next.PAY

    # --------------------------------------------------------------- review
    async def _review(self) -> Next:
        """Wait for a person under a deadline; escalate when it passes."""
        assert self.decision is not None and self.policy is not None
        deadline = workflow.now() + timedelta(hours=self.decision.review_deadline_hours)
        appealed = self.view.review.appealed if self.view.review else False
        appeal_text = self.view.review.appeal_text if self.view.review else None
        self.view.review = ReviewView(deadline=deadline, appealed=appealed, appeal_text=appeal_text)
        self.approval = self.rejection = None
        until = deadline.strftime("%Y-%m-%d %H:%M UTC")
        self._set_status(RefundStatus.PENDING_REVIEW, "waiting_for_review", f"until {until}")
        workflow.upsert_search_attributes([REVIEW_DEADLINE.value_set(deadline)])
        await self._report()

        wake_at = deadline
        while True:
            answered = await self._wait(
                lambda: (
                    self.approval is not None
                    or self.rejection is not None
                    or self.cancel_request is not None
                ),
                until=wake_at,
            )
            if self.cancel_request is not None:
                return Next.CANCELLED
            if self.rejection is not None:
                r = self.rejection
                self.view.review.reviewer = r.reviewer
                self.view.review.note = r.reason
                self.audit.append(
                    AuditEvent(
                        key=f"{self.inp.refund_id}:reject:{self.report_seq}",
                        actor=f"reviewer:{r.reviewer}",
                        action="refund.rejected",
                        payload={"reason": r.reason},
                    )
                )
                return Next.REJECTED
            if self.approval is not None:
                a = self.approval
                self.view.review.reviewer = a.reviewer
                self.view.review.note = a.note
                self._approve_amount(a.amount)
                self.audit.append(
                    AuditEvent(
                        key=f"{self.inp.refund_id}:approve:{self.report_seq}",
                        actor=f"reviewer:{a.reviewer}",
                        action="refund.approved",
                        payload={"amount": self.view.amount, "note": a.note},
                    )
                )
                self._entry("approved", f"approved by {a.reviewer}")
                return Next.PAY
            if not answered:
                wake_at = await self._review_deadline_passed(wake_at)
                if self.approval is not None:
                    continue

    async def _review_deadline_passed(self, woke_for: datetime) -> datetime:
        """The deadline passed: escalate, and let the policy decide what happens next."""
        assert self.view.review is not None and self.case is not None and self.decision is not None
        assert self.policy is not None
        realert = timedelta(hours=self.policy.review.realert_hours)
        if not self.view.review.escalated:
            self.view.review.escalated = True
            self._entry("review_escalated", "review deadline passed; supervisors alerted")
            self.alerts.append(f"refund {self.inp.refund_id}: review deadline passed")
            expired = rules.on_review_expired(self.case, self.decision, self.policy)
            if expired.outcome is Outcome.AUTO_APPROVE:
                self._apply_decision(expired, actor="policy")
                self.approval = ApproveRequest(reviewer="system", note=expired.explanation)
        else:
            self._entry("review_reminder", "still waiting for a reviewer")
            self.alerts.append(f"refund {self.inp.refund_id}: still waiting for review")
        await self._report()
        return woke_for + realert

    def _approve_amount(self, amount: int | None) -> None:
        """A reviewer may approve less than asked, never more than is refundable."""
        refundable = refundable_now(self.view)
        self.view.amount = min(amount, refundable) if amount else refundable

    async def _rejected(self) -> Next:
        """Rejected: commissions go back; the buyer may appeal once within the window."""
        await self._move_commissions(CommissionAction.RELEASE)
        already_appealed = bool(self.view.review and self.view.review.appealed)
        detail = self.view.review.note if self.view.review and self.view.review.note else ""
        self._set_status(RefundStatus.REJECTED, "rejected", detail or self._explanation())
        await self._report(release_claims=already_appealed)
        if already_appealed:
            return Next.DONE
        self.appeal = None
        appealed = await self._wait(
            lambda: self.appeal is not None,
            until=workflow.now() + self._appeal_window(),
        )
        if not appealed or self.appeal is None:
            await self._report(release_claims=True)
            return Next.DONE
        review = self.view.review or ReviewView(deadline=workflow.now())
        review.appealed = True
        review.appeal_text = self.appeal.text
        self.view.review = review
        self._entry("appealed", self.appeal.text)
        await self._move_commissions(CommissionAction.FREEZE)
        return Next.REVIEW

    def _appeal_window(self) -> timedelta:
        return (
            timedelta(hours=self.policy.appeal_window_hours)
            if self.policy
            else DEFAULT_APPEAL_WINDOW
        )

    # ------------------------------------------------------------------ pay
    async def _pay(self) -> Next:
        assert self.order is not None
        if self.cancel_request is not None:
            return Next.CANCELLED
        self._set_status(RefundStatus.APPROVED, "approved_for_payout", self._explanation())
        await self._report()

        locked = await self._lock_keys()
        if locked is not None:
            return locked
        if self.cancel_request is not None:
            # It came while the keys were being voided: they are void now, so the buyer's
            # only way back to the money is the refund itself.
            self.cancel_request = None
            self._entry("cancel_refused", "the card key is already voided; the refund goes on")

        # From here money moves: the buyer can no longer cancel.
        self._set_status(RefundStatus.REFUNDING, "refunding", "")
        await self._report()
        for channel, payment, amount in self._payout_plan():
            if not await self._pay_part(channel, payment, amount):
                # Say so rather than leave a refund "refunding" forever; an SRE takes over.
                return await self._finish(
                    RefundStatus.FAILED, "failed", "the refund could not be paid out"
                )
        await self._move_commissions(CommissionAction.CLAW_BACK)
        return await self._finish(RefundStatus.REFUNDED, "money_arrived", self._money_summary())

    async def _lock_keys(self) -> Next | None:
        """Void the keys at the supplier before money moves, so a key cannot be redeemed
        between the check and the refund. A key redeemed meanwhile sends it to a person."""
        keys = self._keys()
        if not keys:
            return None
        try:
            answer: KeysAnswer = await workflow.execute_activity_method(
                CardKeyChecks.lock_card_keys,
                KeysRequest(refund_id=self.inp.refund_id, keys=keys),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=SUPPLIER_LOCK_BUDGET,
                retry_policy=SUPPLIER_LOCK_RETRY,
            )
        except ActivityError:
            self._entry(
                "card_key_lock_failed", "the supplier could not lock the key; a person decides"
            )
            return self._back_to_review(
                "card_key.lock_failed",
                "the supplier could not lock the card key; a person decides",
                "供应商暂时无法锁定卡密，已转人工审核。",
            )
        if self.case is not None:  # what the supplier says now is what the rules must see
            self.case = self.case.model_copy(
                update={"key_states": {**self.case.key_states, **answer.states}}
            )
        redeemed = [k for k, s in answer.states.items() if s is KeyState.REDEEMED]
        if redeemed:
            self._entry("card_key_redeemed", ", ".join(redeemed))
            return self._back_to_review(
                "card_key.redeemed_at_lock",
                f"key(s) {', '.join(redeemed)} were redeemed before they could be voided; "
                "a person decides",
                "卡密在作废前已被使用，已转人工审核。",
            )
        self.keys_locked = True
        self._entry("card_key_locked", ", ".join(sorted(answer.states)))
        return None

    def _back_to_review(self, rule: str, why: str, why_zh: str) -> Next:
        assert self.decision is not None
        self.decision = self.decision.model_copy(
            update={
                "outcome": Outcome.REVIEW,
                "rule": rule,
                "explanation": why,
                "explanation_zh": why_zh,
            }
        )
        self.view.decision = _decision_view(self.decision)
        self.approval = None
        return Next.REVIEW

    def _payout_plan(self) -> list[tuple[PaymentChannel, Payment | None, int]]:
        """Which payments the money goes back through, and how much through each."""
        assert self.order is not None and self.decision is not None
        amount = self.view.amount
        if self.view.destination is Destination.BALANCE:
            return [(PaymentChannel.BALANCE, None, amount)]
        if self.decision.payment_ids:
            payments = [p for p in self.order.payments if p.payment_id in self.decision.payment_ids]
        else:
            duplicates = {p.payment_id for p in self.order.duplicate_payments}
            payments = [p for p in self.order.payments if p.payment_id not in duplicates]
        plan: list[tuple[PaymentChannel, Payment | None, int]] = []
        for p in payments:
            if amount <= 0:
                break
            part = min(amount, p.amount)
            plan.append((p.channel, p, part))
            amount -= part
        if amount > 0:  # nothing left on the original route: the rest to balance
            plan.append((PaymentChannel.BALANCE, None, amount))
        return plan

    async def _pay_part(
        self, channel: PaymentChannel, payment: Payment | None, amount: int
    ) -> bool:
        """Pay one part; False when not even the balance would take it.

        Only a verified refusal or a verified CLOSED lets the money go down another route;
        anything unknown is settled by query, or by a person, never by paying elsewhere."""
        payout = await self._send(channel, payment, amount)
        if payout is not None and not payout.state.settled:
            if payout.state is not PayoutState.ABNORMAL or workflow.patched(ABNORMAL_TO_A_PERSON):
                payout = await self._settle(payout, payment)
        if payout is None or payout.state is not PayoutState.SUCCEEDED:
            # Refused or closed route: the money goes to the buyer's balance instead,
            # recorded as a second payout.
            why = payout.state.value if payout else "refused"
            self._entry(
                "route_fallback", f"{channel_name(channel)} {why}; paying to platform balance"
            )
            fallback = await self._send(PaymentChannel.BALANCE, None, amount)
            if fallback is None or fallback.state is not PayoutState.SUCCEEDED:
                return False
        return True

    async def _send(
        self, channel: PaymentChannel, payment: Payment | None, amount: int
    ) -> PayoutView | None:
        """Ask the route for the refund; None on a verified refusal."""
        assert self.order is not None
        self.payout_attempts += 1
        request = PayoutRequest(
            refund_id=self.inp.refund_id,
            attempt=self.payout_attempts,
            channel=channel,
            payment_id=payment.payment_id if payment else None,
            transaction_id=payment.transaction_id if payment else None,
            amount=amount,
            payment_total=payment.amount if payment else amount,
            currency=self.order.currency,
            buyer_id=self.inp.buyer_id,
            merchant_id=self.inp.merchant_id,
            reason=reason_for_buyer(self.inp.reason),
        )
        try:
            payout: PayoutView = await workflow.execute_activity_method(
                Payouts.send_payout,
                request,
                start_to_close_timeout=PAYOUT_TIMEOUT,
                schedule_to_close_timeout=PAYOUT_SEND_BUDGET,
                heartbeat_timeout=PAYOUT_HEARTBEAT,
                retry_policy=PAYOUT_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "GatewayRefused":
                self._entry("refund_refused", f"{channel_name(channel)}: {cause.message}")
                return None
            # No answer at all within the budget: the refund may or may not exist at the
            # gateway. Unknown, to be checked by query under the same refund number.
            payout = PayoutView(
                channel=channel,
                amount=amount,
                state=PayoutState.UNKNOWN,
                out_refund_no=request.out_refund_no,
                payment_id=request.payment_id,
                attempt=request.attempt,
                gateway_status=_failure_words(err),
            )
        self._put_payout(payout)
        if payout.state is PayoutState.UNKNOWN:
            self._entry(
                "refund_unverified",
                f"{_yuan(amount)} to {channel_name(channel)}: the answer could not be verified "
                f"({payout.gateway_status}); checking with the gateway",
            )
        else:
            self._entry("refund_sent", f"{_yuan(amount)} to {channel_name(channel)}")
        if payout.state is not PayoutState.SUCCEEDED:
            # Money is on its way: let the buyer see that while it settles. A payout that
            # succeeded at once is reported with the refund's final state a moment later.
            await self._report()
        return payout

    async def _settle(self, payout: PayoutView, payment: Payment | None) -> PayoutView:
        """Settle a payout the gateway has not finished: query with back-off (a verified
        notification wakes the wait early) until a verified final state is known. ABNORMAL,
        or no verified answer within the policy's limits, goes to a person."""
        attempt = 0
        since = workflow.now()
        while not payout.state.settled:
            if payout.state is PayoutState.ABNORMAL:
                if not workflow.patched(ABNORMAL_TO_A_PERSON):
                    break
                payout = await self._needs_attention(payout, payment, _abnormal_words(payout))
                attempt, since = 0, workflow.now()
                continue
            if attempt and workflow.now() - since >= self._settle_limit(payout.state):
                payout = await self._needs_attention(
                    payout, payment, _overdue_words(payout, workflow.now() - since)
                )
                attempt, since = 0, workflow.now()
                continue
            backoff = (
                SETTLEMENT_BACKOFF if payout.state is PayoutState.PROCESSING else VERIFY_BACKOFF
            )
            wait = backoff[min(attempt, len(backoff) - 1)]
            attempt += 1
            no = payout.out_refund_no
            await self._wait(lambda no=no: no in self.notices, until=workflow.now() + wait)
            self.notices.pop(no, None)  # one arriving during the query wakes the next wait
            payout = await self._query(payout, payment)
        await self._report()
        return payout

    def _settle_limit(self, state: PayoutState) -> timedelta:
        limits = self.policy.payouts if self.policy else PayoutPolicy()
        if state is PayoutState.PROCESSING:
            return timedelta(minutes=limits.processing_limit_minutes)
        return timedelta(minutes=limits.verify_limit_minutes)

    async def _query(self, payout: PayoutView, payment: Payment | None) -> PayoutView:
        """The gateway's verified word on a payout; the payout as it was when none came."""
        try:
            answer: PayoutView = await workflow.execute_activity_method(
                Payouts.query_payout,
                SettlementQuery(
                    refund_id=self.inp.refund_id,
                    out_refund_no=payout.out_refund_no,
                    channel=payout.channel,
                    transaction_id=payment.transaction_id if payment else None,
                ),
                start_to_close_timeout=PAYOUT_TIMEOUT,
                schedule_to_close_timeout=PAYOUT_QUERY_BUDGET,
                heartbeat_timeout=PAYOUT_HEARTBEAT,
                retry_policy=PAYOUT_RETRY,
            )
        except ActivityError:
            return payout  # nothing learned this time
        self._put_payout(answer)
        return answer

    # ------------------------------------------------------------ attention
    async def _needs_attention(
        self, payout: PayoutView, payment: Payment | None, why: str
    ) -> PayoutView:
        """Where the money is cannot be known without a person: say so, alert supervisors,
        and wait for a resolution (or for the gateway to speak). No route pays meanwhile.
        Returns the payout once it is settled or verifiably under way again."""
        assert self.policy is not None
        self.attention = payout
        self._set_status(RefundStatus.NEEDS_ATTENTION, "needs_attention", why)
        self.alerts.append(f"refund {self.inp.refund_id} needs attention: {why}")
        await self._report()
        realert = timedelta(hours=self.policy.review.realert_hours)
        no = payout.out_refund_no
        while True:
            spoke = await self._wait(
                lambda: bool(self.resolutions) or no in self.notices,
                until=workflow.now() + realert,
            )
            done_with = 0
            if not spoke:
                self._entry("attention_reminder", "still waiting for a person")
                self.alerts.append(f"refund {self.inp.refund_id} still needs attention: {why}")
            elif no in self.notices:  # the gateway spoke: hear it from a signed query
                self.notices.pop(no)
                payout = await self._query(payout, payment)
                self._entry("gateway_notified", f"{channel_name(payout.channel)}: {payout.state}")
            else:
                payout = await self._resolve_with(self.resolutions.pop(0), payout, payment)
                done_with = 1
            self.attention = payout
            if payout.state.settled or payout.state is PayoutState.PROCESSING:
                break
            self.resolutions_done += done_with  # its caller sees the refund as it now stands
            await self._report()
        # Settled or verifiably under way again. Whatever else was asked meanwhile is moot:
        # every waiting caller gets the refund as it stands now.
        self.resolutions.clear()
        self.attention = None
        self._set_status(
            RefundStatus.REFUNDING,
            "attention_resolved",
            f"{channel_name(payout.channel)}: {payout.state.value}",
        )
        self.resolutions_done = self.resolutions_taken
        await self._report()
        return payout

    async def _resolve_with(
        self, req: ResolveRequest, payout: PayoutView, payment: Payment | None
    ) -> PayoutView:
        """Carry out one person's resolution; every one is audited under their name."""
        self.audit.append(
            AuditEvent(
                key=f"{self.inp.refund_id}:resolve:{self.resolutions_done + 1}",
                actor=f"operator:{req.operator}",
                action=f"refund.resolve.{req.action.value}",
                payload={"out_refund_no": payout.out_refund_no, "note": req.note},
            )
        )
        who = req.operator
        if req.action is ResolveAction.VERIFY:
            payout = await self._query(payout, payment)
            self._entry("attention_verified", f"{who}: the gateway says {payout.state.value}")
        elif req.action is ResolveAction.ABNORMAL_REFUND:
            try:
                payout = await workflow.execute_activity_method(
                    Payouts.rescue_abnormal_payout,
                    AbnormalRescue(
                        refund_id=self.inp.refund_id,
                        out_refund_no=payout.out_refund_no,
                        to=req.to.value if req.to else "",
                        bank_type=req.bank_type,
                        bank_account=req.bank_account,
                        real_name=req.real_name,
                        encrypted_with=req.encrypted_with,
                    ),
                    start_to_close_timeout=PAYOUT_TIMEOUT,
                    schedule_to_close_timeout=PAYOUT_QUERY_BUDGET,
                    heartbeat_timeout=PAYOUT_HEARTBEAT,
                    retry_policy=PAYOUT_RETRY,
                )
            except ActivityError as err:
                self._entry("abnormal_refund_failed", f"{who}: {_failure_words(err)}")
                return payout
            self._put_payout(payout)
            self._entry("abnormal_refund_requested", f"{who}: to {req.to}; {payout.state.value}")
        else:
            payout = await workflow.execute_activity_method(
                Payouts.abandon_payout,
                AbandonPayout(
                    refund_id=self.inp.refund_id,
                    out_refund_no=payout.out_refund_no,
                    operator=who,
                    note=req.note,
                ),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
            self._put_payout(payout)
            self._entry("route_abandoned", f"{who}: {req.note}")
        return payout

    def _resolve_refusal(self, req: ResolveRequest) -> str | None:
        """Why this refund cannot take `req` now (None: it can)."""
        if self.view.status is not RefundStatus.NEEDS_ATTENTION or self.attention is None:
            return f"the refund is {self.view.status.value}, not needs_attention"
        if (
            req.action is ResolveAction.ABNORMAL_REFUND
            and self.attention.state is not PayoutState.ABNORMAL
        ):
            return f"the payout is {self.attention.state.value}, not abnormal"
        return None

    # ------------------------------------------------------------- helpers
    async def _finish(
        self, status: RefundStatus, stage: str, detail: str, *, cancel_order: bool = False
    ) -> Next:
        if status in (
            RefundStatus.CANCELLED,
            RefundStatus.FAILED,
            RefundStatus.REDIRECTED_TO_SUPPORT,
        ):
            await self._move_commissions(CommissionAction.RELEASE)
        self._set_status(status, stage, detail)
        await self._report(release_claims=True, cancel_order=cancel_order)
        return Next.DONE

    async def _wait(self, done: object, *, until: datetime) -> bool:
        """Wait for `done()` until a deadline, reporting signal-made changes (evidence) as
        they come. Returns False when the deadline passed first."""
        assert callable(done)
        while True:
            remaining = (until - workflow.now()).total_seconds()
            if remaining <= 0:
                return bool(done())
            try:
                await workflow.wait_condition(
                    lambda: bool(done()) or self.unreported, timeout=remaining
                )
            except TimeoutError:
                return bool(done())
            if self.unreported:
                await self._report()
            if done():
                return True

    async def _query_keys(self) -> dict[str, KeyState]:
        keys = self._keys()
        if not keys:
            return {}
        try:
            answer: KeysAnswer = await workflow.execute_activity_method(
                CardKeyChecks.query_key_redemption,
                KeysRequest(refund_id=self.inp.refund_id, keys=keys),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=SUPPLIER_QUERY_RETRY,
            )
        except ActivityError:
            return {k.card_key_id: KeyState.UNREACHABLE for k in keys}
        return dict(answer.states)

    def _keys(self) -> list[CardKeyRef]:
        """The card keys of the items this refund is for."""
        if self.order is None:
            return []
        wanted = {i.item_id for i in self.inp.items}
        return [k for item in self.order.items if item.item_id in wanted for k in item.card_keys]

    async def _move_commissions(self, action: CommissionAction) -> None:
        assert self.order is not None or action is CommissionAction.RELEASE
        if self.order is None or not self.order.commissions:
            return
        if action is CommissionAction.FREEZE and self.commissions_frozen:
            return
        if action is not CommissionAction.FREEZE and not self.commissions_frozen:
            return
        answer = await workflow.execute_local_activity_method(
            Commissions.move_commissions,
            CommissionRequest(
                refund_id=self.inp.refund_id,
                order_id=self.order.order_id,
                merchant_id=self.order.merchant_id,
                currency=self.order.currency,
                action=action,
                refund_amount=self.view.amount,
                order_amount=self.order.amount,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self.commissions_frozen = action is CommissionAction.FREEZE
        self.view.commissions = answer.commissions

    def _apply_decision(self, decision: Decision, *, actor: str) -> None:
        self.decision = decision
        self.view.decision = _decision_view(decision)
        if decision.amount or decision.outcome in (Outcome.AUTO_APPROVE, Outcome.REVIEW):
            self.view.amount = decision.amount
        self.view.destination = decision.destination
        if decision.items:
            self.view.items = list(decision.items)
            self.items_repriced = True
        self.audit.append(
            AuditEvent(
                key=f"{self.inp.refund_id}:decision:{actor}:{self.report_seq}",
                actor=actor,
                action="refund.decided",
                payload=self.view.decision.model_dump(mode="json"),
            )
        )

    def _set_status(self, status: RefundStatus, stage: str, detail: str) -> None:
        self.view.status = status
        self._entry(stage, detail)
        workflow.upsert_search_attributes([REFUND_STATUS.value_set(status.value)])
        workflow.set_current_details(self._details())

    def _entry(self, stage: str, detail: str = "") -> None:
        self.view.timeline.append(TimelineEntry(stage=stage, at=workflow.now(), detail=detail))
        self.view.updated_at = workflow.now()

    def _put_payout(self, payout: PayoutView) -> None:
        self.view.payouts = [
            p for p in self.view.payouts if p.out_refund_no != payout.out_refund_no
        ]
        self.view.payouts.append(payout)

    async def _report(self, *, release_claims: bool = False, cancel_order: bool = False) -> None:
        self.report_seq += 1
        report = ProgressReport(
            seq=self.report_seq,
            body=self.view,
            first_entry=self.reported_entries + 1,
            release_claims=release_claims,
            cancel_order=cancel_order,
            reprice_items=self.items_repriced,
            alerts=self.alerts,
            audit=self.audit,
        )
        self.unreported = self.items_repriced = False
        self.alerts, self.audit = [], []
        await workflow.execute_local_activity_method(
            RefundRecords.record_progress,
            report,
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self.reported_entries = len(self.view.timeline)

    def _explanation(self) -> str:
        d = self.view.decision
        return d.explanation if d else ""

    def _money_summary(self) -> str:
        done = [p for p in self.view.payouts if p.state is PayoutState.SUCCEEDED]
        return "; ".join(f"{_yuan(p.amount)} via {channel_name(p.channel)}" for p in done)

    def _details(self) -> str:
        """What the Temporal UI shows for this refund right now."""
        v = self.view
        lines = [
            f"**{v.status.value}** · {_yuan(v.amount)} · order {v.order_id} · buyer {v.buyer_id}",
        ]
        if v.decision:
            lines.append(f"rule `{v.decision.rule}`: {v.decision.explanation}")
        if v.risk and v.risk.level is not RiskLevel.LOW:
            lines.append(f"risk {v.risk.level.value}: " + ", ".join(s.code for s in v.risk.signals))
        if v.review and v.status is RefundStatus.PENDING_REVIEW:
            esc = " (escalated)" if v.review.escalated else ""
            lines.append(f"review deadline {v.review.deadline.isoformat()}{esc}")
        return "\n\n".join(lines)

    # -------------------------------------------------------------- signals
    @workflow.signal(name="approve")
    def on_approve(self, body: ApproveRequest) -> None:
        if self.view.status is RefundStatus.PENDING_REVIEW and self.approval is None:
            self.approval = body

    @workflow.signal(name="reject")
    def on_reject(self, body: RejectRequest) -> None:
        if self.view.status is RefundStatus.PENDING_REVIEW and self.approval is None:
            self.rejection = body

    @workflow.signal(name="evidence")
    def on_evidence(self, body: EvidenceRequest) -> None:
        if self.view.status.is_terminal:
            return
        self.view.evidence.extend(body.evidence)
        self._entry("evidence_added", f"{len(body.evidence)} item(s)")
        self.unreported = True

    @workflow.signal(name="cancel")
    def on_cancel(self, body: CancelRequest) -> None:
        if body.buyer_id != self.inp.buyer_id:
            return
        if self.view.status.is_terminal or self.view.status.money_moving or self.keys_locked:
            return
        self.cancel_request = body

    @workflow.signal(name="appeal")
    def on_appeal(self, body: AppealRequest) -> None:
        if body.buyer_id != self.inp.buyer_id or self.view.status is not RefundStatus.REJECTED:
            return
        if self.view.review and self.view.review.appealed:
            return  # once only
        self.appeal = body

    @workflow.update(name="resolve")
    async def resolve(self, req: ResolveRequest) -> RefundBody:
        """A supervisor's or SRE's resolution of a refund that needs attention; returns the
        refund once it has been carried out."""
        ticket = self._take_resolution(req)
        await workflow.wait_condition(lambda: self.resolutions_done >= ticket)
        return self.view

    @resolve.validator
    def _validate_resolve(self, req: ResolveRequest) -> None:
        refusal = self._resolve_refusal(req)
        if refusal is not None:
            raise ApplicationError(refusal, type="NotAccepted")

    @workflow.signal(name="resolve")
    def on_resolve(self, req: ResolveRequest) -> None:
        if self._resolve_refusal(req) is None:
            self._take_resolution(req)

    def _take_resolution(self, req: ResolveRequest) -> int:
        self.resolutions.append(req)
        self.resolutions_taken += 1
        return self.resolutions_taken

    @workflow.signal(name="gateway_notification")
    def on_gateway_notification(self, notice: GatewayNotice) -> None:
        self.notices[notice.out_refund_no] = notice

    @workflow.query(name="status")
    def status(self) -> RefundBody:
        return self.view


def _priced(order: Order, items: list[RefundItemRequest]) -> list[RefundItemView]:
    prices = {i.item_id: i.unit_price for i in order.items}
    return [
        RefundItemView(
            item_id=i.item_id, quantity=i.quantity, amount=prices.get(i.item_id, 0) * i.quantity
        )
        for i in items
    ]


def _decision_view(d: Decision) -> DecisionView:
    return DecisionView(
        outcome=d.outcome,
        rule=d.rule,
        explanation=d.explanation,
        explanation_zh=d.explanation_zh,
        policy_version=d.policy_version,
        refundable_amount=d.amount,
    )


def _describe_keys(states: dict[str, KeyState]) -> str:
    return ", ".join(f"{k}: {s.value}" for k, s in sorted(states.items())) or "no card keys"


def _failure_words(err: ActivityError) -> str:
    """What an activity failure says, for the timeline: its type and message."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return f"{type(cause).__name__ if cause else 'no answer'}: {cause or err}"


def _abnormal_words(payout: PayoutView) -> str:
    return (
        f"{channel_name(payout.channel)} answered ABNORMAL: the money left the merchant but did "
        "not reach the buyer (e.g. a closed bank card); a supervisor sends it on"
    )


def _overdue_words(payout: PayoutView, waited: timedelta) -> str:
    minutes = int(waited.total_seconds() // 60)
    if payout.state is PayoutState.PROCESSING:
        what = "is still processing"
    else:
        what = f"has no verified answer ({payout.gateway_status or payout.state.value})"
    return f"{channel_name(payout.channel)} {what} after {minutes} min; a person checks"


def _yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def start_search_attributes(inp: RefundInput) -> TypedSearchAttributes:
    """What the API sets when it starts the workflow, so a refund is findable at once."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(REFUND_STATUS, RefundStatus.SUBMITTED.value),
            SearchAttributePair(ORDER_ID, inp.order_id),
            SearchAttributePair(MERCHANT_ID, inp.merchant_id),
            SearchAttributePair(BUYER_ID, inp.buyer_id),
            SearchAttributePair(REFUND_AMOUNT, inp.amount),
        ]
    )

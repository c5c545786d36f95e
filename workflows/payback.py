"""Paying the buyer back: the money stage of a refund, on its own type (as a fulfilment is
in an order workflow), so the RefundWorkflow reads as the business process.

Only a verified refusal or a verified CLOSED lets the money go down another route (the
platform balance). Anything unknown — an answer that does not verify, no answer, ABNORMAL —
is settled by signed queries, and past the policy's limits by a person (`needs_attention`,
resolved through the workflow's `resolve` update). A refund can therefore never pay twice
because a gateway's answer was ambiguous."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from domain.order import Order, Payment
from domain.payout_plan import plan_payouts
from domain.policy import PayoutPolicy, Policy
from domain.refund import PayoutView, ResolveAction, ResolveRequest
from domain.types import Destination, PaymentChannel, PayoutState, RefundStatus
from domain.wording import channel_name, reason_for_buyer, yuan
from workflows import steps
from workflows.messages import (
    AbandonPayout,
    AbnormalRescue,
    GatewayNotice,
    PayoutRequest,
    RefundInput,
    SettlementQuery,
)
from workflows.options import (
    DB_RETRY,
    DB_TIMEOUT,
    PAYOUT_HEARTBEAT,
    PAYOUT_QUERY_BUDGET,
    PAYOUT_RETRY,
    PAYOUT_SEND_BUDGET,
    PAYOUT_TIMEOUT,
    SETTLEMENT_BACKOFF,
    VERIFY_BACKOFF,
)
from workflows.progress import Progress

# Before this patch an ABNORMAL payout fell back to balance (paying twice once the
# abnormal refund was resolved); histories recorded before it replay that way.
ABNORMAL_TO_A_PERSON = "abnormal-needs-a-person"


class Payback:
    def __init__(self, inp: RefundInput, progress: Progress) -> None:
        self.inp = inp
        self.progress = progress
        self.attempts = 0  # part of each payout's idempotency key: never reused
        self.notices: dict[str, GatewayNotice] = {}  # verified gateway notifications
        # Requests to resolve a refund that needs attention, and how many were carried out:
        # an update returns once its own request is done.
        self.resolutions: list[ResolveRequest] = []
        self.resolutions_taken = 0
        self.resolutions_done = 0
        self.attention: PayoutView | None = None  # the payout a person is asked about

    async def pay(
        self, order: Order, policy: Policy, *, destination: Destination, payment_ids: list[str]
    ) -> bool:
        """Pay the refund's amount back; False when not even the balance would take it."""
        self.order, self.policy = order, policy
        plan = plan_payouts(
            order, self.progress.view.amount, destination=destination, payment_ids=payment_ids
        )
        for part in plan:
            if not await self._pay_part(part.channel, part.payment, part.amount):
                return False
        return True

    def take_resolution(self, req: ResolveRequest) -> int:
        self.resolutions.append(req)
        self.resolutions_taken += 1
        return self.resolutions_taken

    # ---------------------------------------------------------------- one part
    async def _pay_part(
        self, channel: PaymentChannel, payment: Payment | None, amount: int
    ) -> bool:
        payout = await self._send(channel, payment, amount)
        if payout is not None and not payout.state.settled:
            if payout.state is not PayoutState.ABNORMAL or workflow.patched(ABNORMAL_TO_A_PERSON):
                payout = await self._settle(payout, payment)
        if payout is None or payout.state is not PayoutState.SUCCEEDED:
            # Refused or closed route: the money goes to the buyer's balance instead,
            # recorded as a second payout.
            why = payout.state.value if payout else "refused"
            self.progress.entry(
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
        self.attempts += 1
        request = PayoutRequest(
            refund_id=self.inp.refund_id,
            attempt=self.attempts,
            channel=channel,
            payment_id=payment.payment_id if payment else None,
            transaction_id=payment.transaction_id if payment else None,
            amount=amount,
            payment_total=payment.amount if payment else amount,
            currency=self.order.currency,
            buyer_id=self.inp.buyer_id,
            merchant_id=self.inp.merchant_id,
            # An incident's refund tells the buyer what happened (the gateway's refund notice).
            reason=self.inp.incident.reason[:80]
            if self.inp.incident is not None
            else reason_for_buyer(self.inp.reason),
        )
        try:
            payout = await workflow.execute_activity(
                steps.send_payout,
                request,
                start_to_close_timeout=PAYOUT_TIMEOUT,
                schedule_to_close_timeout=PAYOUT_SEND_BUDGET,
                heartbeat_timeout=PAYOUT_HEARTBEAT,
                retry_policy=PAYOUT_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "GatewayRefused":
                self.progress.entry("refund_refused", f"{channel_name(channel)}: {cause.message}")
                # The refused payout stays on the refund, as its record does.
                code, sub_code = [*cause.details, None, None][:2]
                self.progress.put_payout(
                    PayoutView(
                        channel=channel,
                        amount=amount,
                        state=PayoutState.FAILED,
                        out_refund_no=request.out_refund_no,
                        payment_id=request.payment_id,
                        attempt=request.attempt,
                        gateway_status=f"{code}/{sub_code}" if sub_code else code,
                    )
                )
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
                gateway_status=failure_words(err),
            )
        self.progress.put_payout(payout)
        if payout.state is PayoutState.UNKNOWN:
            self.progress.entry(
                "refund_unverified",
                f"{yuan(amount)} to {channel_name(channel)}: the answer could not be verified "
                f"({payout.gateway_status}); checking with the gateway",
            )
        else:
            self.progress.entry("refund_sent", f"{yuan(amount)} to {channel_name(channel)}")
        if payout.state is not PayoutState.SUCCEEDED:
            # Money is on its way: let the buyer see that while it settles. A payout that
            # succeeded at once is reported with the refund's final state a moment later.
            await self.progress.report()
        return payout

    async def _settle(self, payout: PayoutView, payment: Payment | None) -> PayoutView:
        """Query with back-off (a verified notification wakes the wait early) until a
        verified final state is known. ABNORMAL, or no verified answer within the policy's
        limits, goes to a person."""
        attempt = 0
        since = workflow.now()
        no = payout.out_refund_no
        while not payout.state.settled:
            if payout.state is PayoutState.ABNORMAL:
                if not workflow.patched(ABNORMAL_TO_A_PERSON):
                    break
                payout = await self._needs_attention(payout, payment, abnormal_words(payout))
                attempt, since = 0, workflow.now()
                continue
            if attempt and workflow.now() - since >= self._limit(payout.state):
                waited = workflow.now() - since
                payout = await self._needs_attention(payout, payment, overdue_words(payout, waited))
                attempt, since = 0, workflow.now()
                continue
            backoff = (
                SETTLEMENT_BACKOFF if payout.state is PayoutState.PROCESSING else VERIFY_BACKOFF
            )
            wait = backoff[min(attempt, len(backoff) - 1)]
            attempt += 1
            await self.progress.wait(lambda: no in self.notices, until=workflow.now() + wait)
            self.notices.pop(no, None)  # one arriving during the query wakes the next wait
            payout = await self._query(payout, payment)
        await self.progress.report()
        return payout

    def _limit(self, state: PayoutState) -> timedelta:
        limits = self.policy.payouts if self.policy else PayoutPolicy()
        if state is PayoutState.PROCESSING:
            return timedelta(minutes=limits.processing_limit_minutes)
        return timedelta(minutes=limits.verify_limit_minutes)

    async def _query(self, payout: PayoutView, payment: Payment | None) -> PayoutView:
        """The gateway's verified word on a payout; the payout as it was when none came."""
        try:
            answer = await workflow.execute_activity(
                steps.query_payout,
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
        self.progress.put_payout(answer)
        return answer

    # ---------------------------------------------------------------- a person
    async def _needs_attention(
        self, payout: PayoutView, payment: Payment | None, why: str
    ) -> PayoutView:
        """Where the money is cannot be known without a person: say so, alert supervisors,
        and wait for a resolution (or for the gateway to speak). No route pays meanwhile.
        Returns the payout once it is settled or verifiably under way again."""
        progress = self.progress
        self.attention = payout
        progress.set_status(RefundStatus.NEEDS_ATTENTION, "needs_attention", why)
        progress.alert(f"refund {self.inp.refund_id} needs attention: {why}")
        await progress.report()
        realert = timedelta(hours=self.policy.review.realert_hours)
        no = payout.out_refund_no
        while True:
            spoke = await progress.wait(
                lambda: bool(self.resolutions) or no in self.notices,
                until=workflow.now() + realert,
            )
            done_with = 0
            if not spoke:
                progress.entry("attention_reminder", "still waiting for a person")
                progress.alert(f"refund {self.inp.refund_id} still needs attention: {why}")
            elif no in self.notices:  # the gateway spoke: hear it from a signed query
                self.notices.pop(no)
                payout = await self._query(payout, payment)
                progress.entry(
                    "gateway_notified", f"{channel_name(payout.channel)}: {payout.state.value}"
                )
            else:
                payout = await self._resolve_with(self.resolutions.pop(0), payout, payment)
                done_with = 1
            self.attention = payout
            if payout.state.settled or payout.state is PayoutState.PROCESSING:
                break
            self.resolutions_done += done_with  # its caller sees the refund as it now stands
            await progress.report()
        # Settled or verifiably under way again. Whatever else was asked meanwhile is moot:
        # every waiting caller gets the refund as it stands now.
        self.resolutions.clear()
        self.attention = None
        progress.set_status(
            RefundStatus.REFUNDING,
            "attention_resolved",
            f"{channel_name(payout.channel)}: {payout.state.value}",
        )
        self.resolutions_done = self.resolutions_taken
        await progress.report()
        return payout

    async def _resolve_with(
        self, req: ResolveRequest, payout: PayoutView, payment: Payment | None
    ) -> PayoutView:
        """Carry out one person's resolution; every one is audited under their name."""
        who = req.operator
        self.progress.audited(
            f"resolve:{self.resolutions_done + 1}",
            actor=f"operator:{who}",
            action=f"refund.resolve.{req.action.value}",
            payload={"out_refund_no": payout.out_refund_no, "note": req.note},
        )
        if req.action is ResolveAction.VERIFY:
            payout = await self._query(payout, payment)
            self.progress.entry(
                "attention_verified", f"{who}: the gateway says {payout.state.value}"
            )
            return payout
        try:
            if req.action is ResolveAction.ABNORMAL_REFUND:
                payout = await workflow.execute_activity(
                    steps.rescue_abnormal_payout,
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
                stage, detail = "abnormal_refund_requested", f"to {req.to}; {payout.state.value}"
            else:
                payout = await workflow.execute_activity(
                    steps.abandon_payout,
                    AbandonPayout(
                        refund_id=self.inp.refund_id,
                        out_refund_no=payout.out_refund_no,
                        operator=who,
                        note=req.note,
                    ),
                    start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=DB_RETRY,
                )
                stage, detail = "route_abandoned", req.note
        except ActivityError as err:
            self.progress.entry(f"{req.action.value}_failed", f"{who}: {failure_words(err)}")
            return payout
        self.progress.put_payout(payout)
        self.progress.entry(stage, f"{who}: {detail}")
        return payout


def failure_words(err: ActivityError) -> str:
    """What an activity failure says, for the timeline: its type and message."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return f"{type(cause).__name__ if cause else 'no answer'}: {cause or err}"


def abnormal_words(payout: PayoutView) -> str:
    return (
        f"{channel_name(payout.channel)} answered ABNORMAL: the money left the merchant but did "
        "not reach the buyer (e.g. a closed bank card); a supervisor sends it on"
    )


def overdue_words(payout: PayoutView, waited: timedelta) -> str:
    minutes = int(waited.total_seconds() // 60)
    if payout.state is PayoutState.PROCESSING:
        what = "is still processing"
    else:
        what = f"has no verified answer ({payout.gateway_status or payout.state.value})"
    return f"{channel_name(payout.channel)} {what} after {minutes} min; a person checks"

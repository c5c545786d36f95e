"""RefundWorkflow: one per refund, id `refund-{refund_id}`, from the buyer's click to
money back (or a clear no), as DOMAIN.md describes.

This module is the business process: check and decide, review, reject and appeal, pay.
Its bookkeeping lives beside it — the refund body and its reports (`progress`), paying back
(`payback`), card keys at the supplier (`card_keys`), step options (`options`), search
attributes (`search`) — and what people may do is judged by `domain.acceptance`, which the
Update validators and the signals of the same names both ask. The workflow does no I/O and
reads the clock only through `workflow.now()`; the decision is the pure `domain.rules`."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # `import workflows.x as x`, never `from workflows import x`: the sandbox re-imports the
    # `workflows` package with this module, and a from-import of a submodule would load the
    # submodule afresh inside it for every refund instead of passing it through.
    import workflows.before_lean as before_lean
    import workflows.card_keys as card_keys
    import workflows.replacement as replacement
    import workflows.steps as steps
    from domain import rules
    from domain.decision import Decision, DecisionCase, priced_items
    from domain.order import Order
    from domain.policy import Policy
    from domain.refund import (
        AppealRequest,
        ApproveRequest,
        CancelRequest,
        RefundBody,
        RejectRequest,
        ReviewView,
        RiskAssessment,
        refundable_now,
    )
    from domain.replacement import replaceable_item, replacement_mode, wants_replacement
    from domain.types import (
        KeyState,
        Outcome,
        RefundReason,
        RefundStatus,
        Remedy,
        ReplacementMode,
    )
    from domain.wording import describe_keys
    from workflows.before_lean import LEAN_REFUND
    from workflows.messages import (
        CommissionAction,
        CommissionRequest,
        OpenCaseRequest,
        RefundInput,
        ReplacementRequest,
    )
    from workflows.options import DB_RETRY, DB_TIMEOUT, DEFAULT_APPEAL_WINDOW
    from workflows.payback import Payback
    from workflows.progress import Progress
    from workflows.requests import RefundRequests
    from workflows.search import REFUND_AMOUNT, REVIEW_DEADLINE, RISK_LEVEL


class Next(StrEnum):
    REVIEW = "review"
    PAY = "pay"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    DONE = "done"


@workflow.defn(name="RefundWorkflow")
class RefundWorkflow(RefundRequests):
    @workflow.init
    def __init__(self, inp: RefundInput) -> None:
        self.inp = inp
        self.progress = Progress(inp)
        self.view = self.progress.view
        self.payback = Payback(inp, self.progress)
        self.order: Order | None = None
        self.policy: Policy | None = None
        self.case: DecisionCase | None = None
        self.decision: Decision | None = None
        self.approval: ApproveRequest | None = None
        self.rejection: RejectRequest | None = None
        self.cancel_request: CancelRequest | None = None
        self.appeal_request: AppealRequest | None = None
        self.commissions_frozen = False
        self.keys_locked = False
        self.lean = False  # set by `run`: whether this refund takes the lean path
        # Money or a fresh key for an invalid key: the buyer's choice (when asking, or on the
        # progress page while the refund waits); None: the policy's default.
        self.remedy: Remedy | None = inp.remedy
        self.replaced_keys: list[str] = []  # the order's keys that are replacements already

    @workflow.run
    async def run(self, inp: RefundInput) -> RefundBody:
        # Refunds started before the lean path replay the steps they recorded.
        self.lean = self.progress.batched = workflow.patched(LEAN_REFUND)
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

    # ------------------------------------------------------------ check and decide
    async def _check_and_decide(self) -> Next:
        opened = await (self._open_case() if self.lean else before_lean.open_case(self))
        if opened is None:
            return await self._finish(RefundStatus.FAILED, "failed", "the order no longer exists")
        assert self.order is not None and self.policy is not None
        taken, risk = opened
        self.view.risk = risk
        keys = card_keys.keys_of(self.order, self.inp.items)
        states = await card_keys.redemption_states(self.inp.refund_id, keys, local=self.lean)
        self.case = DecisionCase(
            order=self.order,
            items=self.inp.items,
            already_refunded=taken,
            key_states=states,
            risk=risk,
            reason=self.inp.reason,
            reason_text=self.inp.reason_text,
            now=workflow.now(),
            # An incident's refund: the rules treat it as the shop's fault. Only refunds an
            # incident started carry one, so no recorded history decides differently.
            incident=self.inp.incident,
            replaced_keys=self.replaced_keys,
        )
        decision = rules.decide(self.case, self.policy)
        self._apply_decision(decision, actor="rules")
        self.progress.entry("card_key_checked", describe_keys(states))
        self.progress.entry("decided", decision.explanation_zh or decision.explanation)
        self.progress.search(
            RISK_LEVEL.value_set(risk.level.value), REFUND_AMOUNT.value_set(decision.amount)
        )
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
        return {Outcome.REJECT: Next.REJECTED, Outcome.REVIEW: Next.REVIEW}.get(outcome, Next.PAY)

    async def _open_case(self) -> tuple[dict[str, int], RiskAssessment] | None:
        """The order, the policy in force, the risk, and the commissions frozen: one step."""
        opened = await workflow.execute_local_activity(
            steps.open_case,
            OpenCaseRequest(
                refund_id=self.inp.refund_id,
                order_id=self.inp.order_id,
                buyer_id=self.inp.buyer_id,
                client=self.inp.client,
                items=self.inp.items,
                amount=self.view.amount,
                at=workflow.now(),
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        if opened.order is None:
            return None
        self.order, self.policy = opened.order, opened.policy
        self.replaced_keys = list(opened.replaced_keys)
        # Shown to the buyer's page and the platform: whether a fresh key may be had instead.
        self.view.remedy = self.remedy
        self.view.replacement_offered = self._replacement_mode() is not ReplacementMode.OFF
        self.view.items = priced_items(opened.order, self.inp.items)
        await self._commissions(CommissionAction.FREEZE)  # made when the refund first rests
        self.progress.set_status(RefundStatus.CHECKING, "checking_card_key", "asking the supplier")
        return opened.already_refunded, opened.risk

    def _apply_decision(self, decision: Decision, *, actor: str) -> None:
        self.decision = decision
        self.view.decision = decision.view()
        if decision.amount or decision.outcome in (Outcome.AUTO_APPROVE, Outcome.REVIEW):
            self.view.amount = decision.amount
        self.view.destination = decision.destination
        if decision.items and decision.items != self.view.items:
            self.view.items = list(decision.items)
            self.progress.items_repriced = True
        self.progress.audited(
            f"decision:{actor}",
            actor=actor,
            action="refund.decided",
            payload=self.view.decision.model_dump(mode="json"),
        )

    # ------------------------------------------------------------ review
    async def _review(self) -> Next:
        """Wait for a person under a deadline; escalate when it passes."""
        assert self.decision is not None and self.policy is not None
        deadline = workflow.now() + timedelta(hours=self.decision.review_deadline_hours)
        before = self.view.review
        self.view.review = ReviewView(
            deadline=deadline,
            appealed=before.appealed if before else False,
            appeal_text=before.appeal_text if before else None,
        )
        self.approval = self.rejection = None
        until = deadline.strftime("%Y-%m-%d %H:%M UTC")
        self.progress.set_status(
            RefundStatus.PENDING_REVIEW, "waiting_for_review", f"until {until}"
        )
        self.progress.search(REVIEW_DEADLINE.value_set(deadline))
        await self.progress.report()

        wake_at = deadline
        while True:
            answered = await self.progress.wait(
                lambda: self._answered() or self.cancel_request is not None, until=wake_at
            )
            review = self.view.review
            if self.cancel_request is not None:
                return Next.CANCELLED
            if self.rejection is not None:
                r = self.rejection
                review.reviewer, review.note = r.reviewer, r.reason
                self.progress.audited(
                    "reject",
                    actor=f"reviewer:{r.reviewer}",
                    action="refund.rejected",
                    payload={"reason": r.reason},
                )
                return Next.REJECTED
            if self.approval is not None:
                a = self.approval
                review.reviewer, review.note = a.reviewer, a.note
                # A reviewer may approve less than asked, never more than is refundable.
                refundable = refundable_now(self.view)
                self.view.amount = min(a.amount, refundable) if a.amount else refundable
                self.progress.audited(
                    "approve",
                    actor=f"reviewer:{a.reviewer}",
                    action="refund.approved",
                    payload={"amount": self.view.amount, "note": a.note},
                )
                self.progress.entry("approved", f"approved by {a.reviewer}")
                return Next.PAY
            if not answered:
                wake_at = await self._review_deadline_passed(wake_at)

    async def _review_deadline_passed(self, woke_for: datetime) -> datetime:
        """The deadline passed: escalate, and let the policy decide what happens next."""
        assert self.view.review is not None and self.case is not None
        assert self.decision is not None and self.policy is not None
        if not self.view.review.escalated:
            self.view.review.escalated = True
            self.progress.entry("review_escalated", "review deadline passed; supervisors alerted")
            self.progress.alert(f"refund {self.inp.refund_id}: review deadline passed")
            expired = rules.on_review_expired(self.case, self.decision, self.policy)
            if expired.outcome is Outcome.AUTO_APPROVE:
                self._apply_decision(expired, actor="policy")
                self.approval = ApproveRequest(reviewer="system", note=expired.explanation)
        else:
            self.progress.entry("review_reminder", "still waiting for a reviewer")
            self.progress.alert(f"refund {self.inp.refund_id}: still waiting for review")
        await self.progress.report()
        return woke_for + timedelta(hours=self.policy.review.realert_hours)

    # ------------------------------------------------------------ rejected, appealed
    async def _rejected(self) -> Next:
        """Rejected: commissions go back; the buyer may appeal once within the window."""
        release = await self._commissions(CommissionAction.RELEASE)
        review = self.view.review
        already_appealed = bool(review and review.appealed)
        detail = review.note if review and review.note else self.progress.explanation()
        self.progress.set_status(RefundStatus.REJECTED, "rejected", detail)
        await self.progress.report(release_claims=already_appealed, commissions=release)
        if already_appealed:
            return Next.DONE
        self.appeal_request = None
        window = (
            timedelta(hours=self.policy.appeal_window_hours)
            if self.policy
            else DEFAULT_APPEAL_WINDOW
        )
        appealed = await self.progress.wait(
            lambda: self.appeal_request is not None, until=workflow.now() + window
        )
        if not appealed or self.appeal_request is None:
            await self.progress.report(release_claims=True)
            return Next.DONE
        review = self.view.review or ReviewView(deadline=workflow.now())
        review.appealed, review.appeal_text = True, self.appeal_request.text
        self.view.review = review
        self.progress.entry("appealed", self.appeal_request.text)
        await self._commissions(CommissionAction.FREEZE)
        return Next.REVIEW

    # ------------------------------------------------------------ pay
    async def _pay(self) -> Next:
        assert self.order is not None and self.policy is not None and self.decision is not None
        if self.cancel_request is not None:
            return Next.CANCELLED
        self.progress.set_status(
            RefundStatus.APPROVED, "approved_for_payout", self.progress.explanation()
        )
        if not self.lean:  # lean: the keys are voided in this same task, nothing to show yet
            await self.progress.report()

        locked = await self._lock_keys()
        if locked is not None:
            return locked
        if self.cancel_request is not None:
            # It came while the keys were being voided: they are void now, so the buyer's
            # only way back to the money is the refund itself.
            self.cancel_request = None
            self.progress.entry(
                "cancel_refused", "the card key is already voided; the refund goes on"
            )

        if self._wants_replacement():
            replaced = await self._replace()
            if replaced is not None:
                return replaced

        # From here money moves: the buyer can no longer cancel.
        self.progress.set_status(RefundStatus.REFUNDING, "refunding", "")
        await self._show_stage()
        paid = await self.payback.pay(
            self.order,
            self.policy,
            destination=self.view.destination,
            payment_ids=self.decision.payment_ids,
        )
        if not paid:
            # Say so rather than leave a refund "refunding" forever; an SRE takes over.
            return await self._finish(
                RefundStatus.FAILED, "failed", "the refund could not be paid out"
            )
        return await self._finish(
            RefundStatus.REFUNDED,
            "money_arrived",
            self.progress.money_summary(),
            commissions=CommissionAction.CLAW_BACK,
        )

    def _wants_replacement(self) -> bool:
        """A fresh key instead of the money: the product allows it and the buyer chose it (or
        did not choose money where it is the default). Refunds recorded before replacements
        existed never ask, so their histories replay unchanged."""
        if not wants_replacement(self.inp.reason, self._replacement_mode(), self.remedy):
            return False
        return workflow.patched(replacement.REPLACEMENT)

    def _replacement_mode(self) -> ReplacementMode:
        """What the policy allows this refund: a buyer's invalid key only, never a refund an
        incident started (the shop's own decision to pay back)."""
        if (
            self.order is None
            or self.policy is None
            or self.inp.incident is not None
            or self.inp.reason is not RefundReason.INVALID_KEY
        ):
            return ReplacementMode.OFF
        return replacement_mode(
            self.order, self.inp.items, self.policy, replaced_keys=self.replaced_keys
        )

    async def _replace(self) -> Next | None:
        """The old key is void: hand over a fresh one. Not possible (no stock, the supplier
        refused): the refund pays as before. Unknown whether the buyer got it: a person."""
        assert self.order is not None
        item = replaceable_item(self.order, self.inp.items, replaced_keys=self.replaced_keys)
        assert item is not None  # `_wants_replacement` said so
        old = item.card_keys[0]
        self.progress.entry("replacement_requested", f"a fresh key for {old.card_key_id}")
        attempt = await replacement.replace_key(
            ReplacementRequest(
                refund_id=self.inp.refund_id,
                order_id=self.order.order_id,
                buyer_id=self.inp.buyer_id,
                item_id=item.item_id,
                sku=item.sku,
                supplier=old.supplier,
                replaces=old.card_key_id,
            )
        )
        if attempt.delivered is not None:
            self.view.replacement = attempt.delivered
            return await self._finish(RefundStatus.REPLACED, attempt.stage, attempt.detail)
        self.remedy = Remedy.REFUND  # tried once: from here on the buyer is owed money
        self.progress.entry(attempt.stage, attempt.detail)
        if attempt.unsettled:
            return self._back_to_review(
                "replacement.unconfirmed",
                "a fresh key was reserved but the supplier did not confirm whether the buyer "
                "received it; a person decides",
                "补发卡密的结果暂未确认，已转人工审核。",
            )
        return None

    async def _show_stage(self) -> None:
        """Money is about to move: shown to SREs at once (`RefundStatus = "refunding"`); the
        database and the buyer hear of it with the outcome, or as soon as the money waits."""
        if self.lean:
            self.progress.publish()
        else:
            await self.progress.report()

    async def _lock_keys(self) -> Next | None:
        """Void the keys at the supplier before money moves, so a key cannot be redeemed
        between the check and the refund. A key redeemed meanwhile sends it to a person."""
        keys = card_keys.keys_of(self.order, self.inp.items)
        if not keys:
            return None
        answer = await card_keys.void(self.inp.refund_id, keys, local=self.lean)
        if answer is None:
            self.progress.entry(
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
            self.progress.entry("card_key_redeemed", ", ".join(redeemed))
            return self._back_to_review(
                "card_key.redeemed_at_lock",
                f"key(s) {', '.join(redeemed)} were redeemed before they could be voided; "
                "a person decides",
                "卡密在作废前已被使用，已转人工审核。",
            )
        self.keys_locked = True
        self.progress.entry("card_key_locked", ", ".join(sorted(answer.states)))
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
        self.view.decision = self.decision.view()
        self.approval = None
        return Next.REVIEW

    # ------------------------------------------------------------ endings, commissions
    async def _finish(
        self,
        status: RefundStatus,
        stage: str,
        detail: str,
        *,
        cancel_order: bool = False,
        commissions: CommissionAction = CommissionAction.RELEASE,
    ) -> Next:
        """The end: commissions clawed back (it paid) or released (it did not), reported with
        the outcome."""
        move = await self._commissions(commissions)
        self.progress.set_status(status, stage, detail)
        await self.progress.report(release_claims=True, cancel_order=cancel_order, commissions=move)
        return Next.DONE

    async def _commissions(self, action: CommissionAction) -> CommissionRequest | None:
        """Freeze the distributors' commissions while the refund is open; claw them back
        (pro rata) when it pays, release them when it does not.

        On the lean path every move goes into a report's transaction: a freeze into the first
        report of a refund that has to wait (review, a payout settling), the outcome's into
        the last. A refund that pays out before it ever waited was never frozen: its
        claw-back takes the commission straight back, and a release has nothing to do.
        Before the lean path, each move ran here, in a local activity of its own."""
        if self.order is None or not self.order.commissions:
            return None
        if (action is CommissionAction.FREEZE) is self.commissions_frozen:
            return None  # frozen once; clawed back or released only what was frozen
        if self.lean and action is not CommissionAction.FREEZE and self.progress.freeze_on_rest:
            # Never frozen: nothing to release; a claw-back takes it back directly.
            self.progress.freeze_on_rest = None
            self.commissions_frozen = False
            if action is CommissionAction.RELEASE:
                return None
        move = CommissionRequest(
            refund_id=self.inp.refund_id,
            order_id=self.order.order_id,
            merchant_id=self.order.merchant_id,
            currency=self.order.currency,
            action=action,
            refund_amount=self.view.amount,
            order_amount=self.order.amount,
        )
        self.commissions_frozen = action is CommissionAction.FREEZE
        if self.lean:
            if action is CommissionAction.FREEZE:
                self.progress.freeze_on_rest = move
                return None
            return move
        answer = await workflow.execute_local_activity(
            steps.move_commissions,
            move,
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self.view.commissions = answer.commissions
        return None

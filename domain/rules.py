"""The rules engine: one refund request in, one decision out.

`decide(case, policy)` is pure and deterministic: no I/O, no clock (time is `case.now`), no
randomness, no dependence on dict order. The workflow calls it directly; tests and
`refundctl explain` call it without Temporal. Every decision names the rule that decided it
(stable dotted ids, see `RULES`) and explains the concrete facts in English and Chinese.

How a case is decided, in order:

1. The order: unpaid (or cancelled without payment) -> `cancelled_unpaid`; the requested
   items must exist and not exceed what remains refundable (`domain.requested_items`).
2. An incident refund (the shop refunds on its own initiative, `case.incident`) is the
   shop's fault: refunded, unless a key was redeemed since the dry run (a person decides);
   only a blacklist still sends it to a person (no velocity, limit or fast-lane gates).
   A duplicate charge (the classified reason) refunds the duplicate payments themselves.
3. Otherwise each requested item is judged on its own (`domain.item_rules`, first match wins):
   shop faults (undelivered, supplier-confirmed invalid key, failed top-up) are refunded;
   non-refundable products and consumed goods (redeemed key, succeeded top-up) are refused;
   the cooling-off refunds for any reason; technical complaints go to support; an expired
   window is refused; unverifiable keys and the review period go to a person; inside the
   conditional window low usage is refunded and high usage goes to a person.
   The strictest item outcome wins (reject > review > redirect > auto) and is explained.
4. Gates on an automatic approval: a blocked buyer and a high-risk buyer go to a person
   (never `rejected`: a person can still refund an invalid key to a blacklisted buyer, and
   the review-expiry policy never approves a blocked buyer), then the automatic amount
   limit (scaled by the buyer's history, `risk.auto_limit_pct`).
5. The fast lane: a small review for a low-risk buyer, caused only by usage or by the
   review period, is refunded at once to the platform balance.

Precedence choices worth knowing: shop faults beat everything (even a technical complaint,
a non-refundable product or an expired window); a redeemed key is refused even with a
technical complaint (the supplier accepted it, so the key worked); the cooling-off beats a
technical complaint (DOMAIN: "any reason"); a technical complaint beats an expired window
(support first, DOMAIN's "视频无法播放" seed).

When a review's deadline passes, `on_review_expired` (`domain.review_expiry`, re-exported
here with the item rules' names) applies the policy's expiry rule to the decision.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from domain.decision import Decision, DecisionCase, Draft
from domain.incident import INCIDENT_RULE, INCIDENT_RULE_REDEEMED
from domain.item_rules import (
    ITEM_CHECKS,
    ItemContext,
    Line,
    Phase,
    Unit,
    Verdict,
    item_units,
    judge_item,
    usage_findings,
    window_phase,
)
from domain.order import Order
from domain.policy import Policy, risk_rank
from domain.reasons import classify
from domain.refund import RiskAssessment
from domain.replacement import REPLACEMENT_INVALID_RULE, replacement_reported_invalid
from domain.requested_items import requested_lines
from domain.review_expiry import on_review_expired
from domain.types import (
    Destination,
    OrderStatus,
    Outcome,
    PaymentChannel,
    RefundReason,
    RiskLevel,
)
from domain.wording import elapsed_en, elapsed_zh, money_en, money_zh

__all__ = [
    "ITEM_CHECKS",
    "RULES",
    "Draft",
    "ItemContext",
    "Line",
    "Phase",
    "Unit",
    "Verdict",
    "automatic_limit",
    "classified_reason",
    "decide",
    "elapsed_en",
    "elapsed_zh",
    "item_units",
    "judge_item",
    "money_en",
    "money_zh",
    "on_review_expired",
    "usage_findings",
    "window_phase",
]

RULES: dict[str, Outcome] = {
    "order.unpaid": Outcome.CANCEL_UNPAID,
    "order.cancelled_paid": Outcome.REVIEW,
    "item.unknown": Outcome.REJECT,
    "quantity.exceeds_refundable": Outcome.REJECT,
    "duplicate_charge.auto": Outcome.AUTO_APPROVE,
    "duplicate_charge.unconfirmed": Outcome.REVIEW,
    "delivery.not_delivered": Outcome.AUTO_APPROVE,
    "card_key.invalid_confirmed": Outcome.AUTO_APPROVE,
    "topup.failed": Outcome.AUTO_APPROVE,
    "product.non_refundable": Outcome.REJECT,
    "card_key.redeemed": Outcome.REJECT,
    "topup.succeeded": Outcome.REJECT,
    "window.cooling_off": Outcome.AUTO_APPROVE,
    "reason.technical_redirect": Outcome.REDIRECT_TO_SUPPORT,
    "reason.support_redirect": Outcome.REDIRECT_TO_SUPPORT,
    "window.expired": Outcome.REJECT,
    "card_key.supplier_unreachable": Outcome.REVIEW,
    "topup.pending": Outcome.REVIEW,
    "window.review_period": Outcome.REVIEW,
    "card_key.revealed": Outcome.REVIEW,
    "window.conditional_usage_high": Outcome.REVIEW,
    "card_key.unredeemed": Outcome.AUTO_APPROVE,
    "window.conditional_low_usage": Outcome.AUTO_APPROVE,
    "risk.blocked": Outcome.REVIEW,
    "risk.high": Outcome.REVIEW,
    "amount.above_auto_limit": Outcome.REVIEW,
    "fast_lane.balance": Outcome.AUTO_APPROVE,
    "review.expired_auto_approve": Outcome.AUTO_APPROVE,
    "review.expired_wait": Outcome.REVIEW,
    INCIDENT_RULE: Outcome.AUTO_APPROVE,
    INCIDENT_RULE_REDEEMED: Outcome.REVIEW,
    REPLACEMENT_INVALID_RULE: Outcome.REVIEW,
}
"""Every rule id `decide` and `on_review_expired` can answer, with the outcome it carries."""

# Strictest item outcome wins.
_SEVERITY = {
    Outcome.AUTO_APPROVE: 0,
    Outcome.REDIRECT_TO_SUPPORT: 1,
    Outcome.REVIEW: 2,
    Outcome.REJECT: 3,
    Outcome.CANCEL_UNPAID: 4,
}
_MONEY_OUTCOMES = (Outcome.AUTO_APPROVE, Outcome.REVIEW)


# --- the order as a whole ------------------------------------------------------------------


def _unpaid_order(order: Order) -> Draft | None:
    if order.status is OrderStatus.PAID:
        return None
    if order.status is OrderStatus.UNPAID or order.paid_total == 0:
        return Draft(
            Outcome.CANCEL_UNPAID,
            "order.unpaid",
            f"Order {order.order_id} is {order.status.value} and nothing was paid: nothing to "
            "refund, the order is simply cancelled.",
            "订单未付款，无需退款，订单将直接取消。",
        )
    return None


def _cancelled_paid_order(order: Order, lines: list[Line]) -> Draft | None:
    if order.status is not OrderStatus.CANCELLED:
        return None
    amount = min(sum(line.amount for line in lines), order.paid_total)
    paid = order.paid_total
    return Draft(
        Outcome.REVIEW,
        "order.cancelled_paid",
        f"Order {order.order_id} is cancelled but shows payments of "
        f"{money_en(paid, order.currency)}; a person checks where the money went.",
        f"订单已取消但有 {money_zh(paid, order.currency)} 的付款记录，转人工核实。",
        amount=amount,
    )


def _duplicate_charge(order: Order, lines: list[Line], reason: RefundReason) -> Draft | None:
    if reason is not RefundReason.DUPLICATE_CHARGE:
        return None
    duplicates = order.duplicate_payments
    if not duplicates:
        paid = money_en(order.paid_total, order.currency)
        return Draft(
            Outcome.REVIEW,
            "duplicate_charge.unconfirmed",
            f"The buyer reports a duplicate charge, but order {order.order_id} shows "
            f"{len(order.payments)} payment(s) totalling {paid} for an order of "
            f"{money_en(order.amount, order.currency)}; a person checks.",
            "您反馈重复扣款，但系统未找到重复的付款记录，已转人工核实。",
            amount=sum(line.amount for line in lines),
        )
    amount = sum(payment.amount for payment in duplicates)
    ids = tuple(payment.payment_id for payment in duplicates)
    to_balance = all(payment.channel is PaymentChannel.BALANCE for payment in duplicates)
    return Draft(
        Outcome.AUTO_APPROVE,
        "duplicate_charge.auto",
        f"Order {order.order_id} of {money_en(order.amount, order.currency)} was paid "
        f"{len(order.payments)} times; the duplicate payment(s) {', '.join(ids)} "
        f"({money_en(amount, order.currency)}) are refunded automatically.",
        f"订单被重复扣款，多扣的 {money_zh(amount, order.currency)} 将自动原路退回。",
        amount=amount,
        payment_ids=ids,
        destination=Destination.BALANCE if to_balance else Destination.ORIGINAL,
    )


def _incident(order: Order, lines: list[Line], case: DecisionCase) -> Draft | None:
    """The shop refunds this order itself (an incident): its fault, so refunded whatever the
    reason, the window, the usage or the product's refundability — unless the supplier says
    a key was redeemed since the incident's dry run (then a person decides)."""
    mark = case.incident
    if mark is None:
        return None
    amount = sum(line.amount for line in lines)
    redeemed = [line for line in lines if line.worst is Unit.REDEEMED]
    if redeemed:
        return Draft(
            Outcome.REVIEW,
            INCIDENT_RULE_REDEEMED,
            f"Incident {mark.incident_id} ({mark.reason}): the supplier reports a card key of "
            f"{', '.join(line.label_en for line in redeemed)} redeemed; a person decides.",
            f"因{mark.reason}，平台为您发起退款；卡密显示已被使用，已转人工核实。",
            amount=amount,
        )
    return Draft(
        Outcome.AUTO_APPROVE,
        INCIDENT_RULE,
        f"Incident {mark.incident_id} ({mark.reason}): the shop's fault, so the shop refunds "
        f"{money_en(amount, order.currency)} on its own initiative, whatever the window, the "
        "usage or the buyer's history.",
        f"因{mark.reason}，平台已主动为您退款 {money_zh(amount, order.currency)}，无需申请。",
        amount=amount,
        destination=mark.destination,
    )


# --- all items: the strictest verdict wins --------------------------------------------------


def _judge_items(lines: list[Line], ctx: ItemContext) -> Draft:
    verdicts = [judge_item(line, ctx) for line in lines]
    deciding_index = max(range(len(verdicts)), key=lambda i: (_SEVERITY[verdicts[i].outcome], -i))
    deciding, line = verdicts[deciding_index], lines[deciding_index]
    en, zh = deciding.en, deciding.zh
    if len(lines) > 1:
        summary = ", ".join(
            f"{ln.item.item_id}: {v.rule}" for ln, v in zip(lines, verdicts, strict=True)
        )
        en += (
            f" Of {len(lines)} items the strictest outcome wins, so item {line.item.item_id} "
            f"decides ({summary})."
        )
        zh += f"本次共 {len(lines)} 件商品，按最严格的结果处理，由{line.label_zh}决定。"
    fast_lane_ok = all(
        v.outcome is Outcome.AUTO_APPROVE or (v.outcome is Outcome.REVIEW and v.fast_lane_ok)
        for v in verdicts
    )
    return Draft(
        deciding.outcome,
        deciding.rule,
        en,
        zh,
        amount=sum(ln.amount for ln in lines),
        fast_lane_ok=fast_lane_ok and deciding.outcome is Outcome.REVIEW,
    )


# --- gates on an automatic approval, and the fast lane -------------------------------------


def _signal_summary(risk: RiskAssessment) -> str:
    return "; ".join(f"{s.code}: {s.detail}" if s.detail else s.code for s in risk.signals) or (
        "no signal details"
    )


def _risk_gate(draft: Draft, risk: RiskAssessment, *, only_blocked: bool = False) -> Draft:
    """Blocked and high-risk buyers never get money without a person. The buyer's text does
    not name the signals (they are for reviewers, not for abusers to learn from).
    `only_blocked`: the shop refunds on its own initiative (an incident), so the buyer's
    velocity and history say nothing; a blacklist still sends it to a person."""
    if draft.outcome is not Outcome.AUTO_APPROVE:
        return draft
    if risk.level is RiskLevel.BLOCKED:
        rule, why = "risk.blocked", "the buyer, device or IP is blacklisted"
    elif risk.level is RiskLevel.HIGH and not only_blocked:
        rule, why = "risk.high", "the risk level is high"
    else:
        return draft
    return replace(
        draft,
        outcome=Outcome.REVIEW,
        rule=rule,
        en=f"Would be refunded automatically ({draft.rule}: {draft.en}), but {why} "
        f"({_signal_summary(risk)}); a person decides.",
        zh="您的退款申请需要人工审核，请耐心等待审核结果。",
        fast_lane_ok=False,
    )


def automatic_limit(lines: list[Line], risk: RiskAssessment) -> int | None:
    """The strictest automatic limit of the requested items, scaled by the buyer's history;
    None when no item has a limit."""
    limits = [line.rules.auto_approve_max_amount for line in lines]
    known = [limit for limit in limits if limit is not None]
    if not known:
        return None
    return min(known) * risk.auto_limit_pct // 100


def _amount_gate(draft: Draft, lines: list[Line], risk: RiskAssessment, currency: str) -> Draft:
    limit = automatic_limit(lines, risk)
    if draft.outcome is not Outcome.AUTO_APPROVE or limit is None or draft.amount <= limit:
        return draft
    return replace(
        draft,
        outcome=Outcome.REVIEW,
        rule="amount.above_auto_limit",
        en=f"Would be refunded automatically ({draft.rule}: {draft.en}), but "
        f"{money_en(draft.amount, currency)} is above the automatic limit of "
        f"{money_en(limit, currency)} (history factor {risk.auto_limit_pct}%); a person decides.",
        zh=f"退款金额 {money_zh(draft.amount, currency)} 超过自动退款上限，已转人工审核。",
        fast_lane_ok=False,
    )


def _fast_lane(
    draft: Draft, lines: list[Line], risk: RiskAssessment, policy: Policy, order: Order
) -> Draft:
    lane = policy.fast_lane_for(order.merchant_id)
    eligible = (
        draft.outcome is Outcome.REVIEW
        and draft.fast_lane_ok
        and lane.enabled
        and all(line.rules.fast_lane for line in lines)
        and 0 < draft.amount <= lane.max_amount
        and risk_rank(risk.level) <= risk_rank(lane.max_risk)
    )
    if not eligible:
        return draft
    to = "the platform balance" if lane.destination is Destination.BALANCE else "the payment route"
    to_zh = "平台余额" if lane.destination is Destination.BALANCE else "原支付渠道"
    amount_en, amount_zh = (
        money_en(draft.amount, order.currency),
        money_zh(draft.amount, order.currency),
    )
    return replace(
        draft,
        outcome=Outcome.AUTO_APPROVE,
        rule="fast_lane.balance",
        en=f"Would go to a person ({draft.rule}: {draft.en}), but {amount_en} is within the "
        f"fast lane (up to {money_en(lane.max_amount, order.currency)}) for a "
        f"{risk.level.value}-risk buyer: refunded at once to {to}.",
        zh=f"小额快速退款：{amount_zh} 已为您即时退回{to_zh}。",
        destination=lane.destination,
        fast_lane_ok=False,
    )


# --- the decision --------------------------------------------------------------------------


def _destination(draft: Draft, order: Order) -> Destination:
    if draft.destination is not None:
        return draft.destination
    if order.payments and all(p.channel is PaymentChannel.BALANCE for p in order.payments):
        return Destination.BALANCE
    return Destination.ORIGINAL


def _finish(draft: Draft, lines: list[Line], case: DecisionCase, policy: Policy) -> Decision:
    pays_money = draft.outcome in _MONEY_OUTCOMES
    return Decision(
        outcome=draft.outcome,
        rule=draft.rule,
        explanation=draft.en,
        explanation_zh=draft.zh,
        amount=draft.amount if pays_money else 0,
        # A duplicate charge refunds payments, not goods: no item quantity is used up.
        items=[] if draft.payment_ids else [line.view() for line in lines],
        destination=_destination(draft, case.order),
        payment_ids=list(draft.payment_ids),
        review_deadline_hours=policy.review.deadline_hours,
        policy_version=policy.version,
    )


def classified_reason(case: DecisionCase, policy: Policy) -> RefundReason:
    """The reason the rules act on: the buyer's pick, corrected by the free text."""
    return classify(case.reason, case.reason_text, extra_keywords=policy.reasons.keywords)


def decide(case: DecisionCase, policy: Policy) -> Decision:
    """Decide one refund request. Pure and deterministic (see the module docstring)."""
    order = case.order
    lines, problem = requested_lines(case, policy)
    reason = classified_reason(case, policy)
    draft = (
        _unpaid_order(order)
        or problem
        or _cancelled_paid_order(order, lines)
        or _incident(order, lines, case)
        or _duplicate_charge(order, lines, reason)
        or replacement_reported_invalid(lines, case.replaced_keys, reason)
    )
    if draft is None:
        paid_at = order.paid_at or order.created_at
        elapsed = max(case.now - paid_at, timedelta(0))
        ctx = ItemContext(
            reason=reason, reason_text=case.reason_text, elapsed=elapsed, policy=policy
        )
        draft = _judge_items(lines, ctx)
    if case.incident is not None:
        # The incident's own limits and a second person's confirmation stand in for the
        # automatic limit; the fast lane has nothing to add.
        return _finish(_risk_gate(draft, case.risk, only_blocked=True), lines, case, policy)
    draft = _risk_gate(draft, case.risk)
    draft = _amount_gate(draft, lines, case.risk, order.currency)
    draft = _fast_lane(draft, lines, case.risk, policy, order)
    return _finish(draft, lines, case, policy)

"""The rules engine: one refund request in, one decision out.

`decide(case, policy)` is pure and deterministic: no I/O, no clock (time is `case.now`), no
randomness, no dependence on dict order. The workflow calls it directly; tests and
`refundctl explain` call it without Temporal. Every decision names the rule that decided it
(stable dotted ids, see `RULES`) and explains the concrete facts in English and Chinese.

How a case is decided, in order:

1. The order: unpaid (or cancelled without payment) -> `cancelled_unpaid`; the requested
   items must exist and not exceed what remains refundable.
2. A duplicate charge (the classified reason) refunds the duplicate payments themselves.
3. Otherwise each requested item is judged on its own (`_ITEM_CHECKS`, first match wins):
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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import IntEnum, StrEnum

from domain.decision import Decision, DecisionCase
from domain.order import CardKeyRef, Order, OrderItem
from domain.policy import Policy, ProductRules, Windows, risk_rank
from domain.reasons import classify
from domain.refund import RefundItemRequest, RefundItemView, RiskAssessment
from domain.types import (
    Destination,
    KeyState,
    OrderStatus,
    Outcome,
    PaymentChannel,
    ProductType,
    RefundReason,
    RiskLevel,
    TopupStatus,
)

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


# --- wording -------------------------------------------------------------------------------


def money_en(amount: int, currency: str = "CNY") -> str:
    return f"{amount // 100}.{amount % 100:02d} {currency}"


def money_zh(amount: int, currency: str = "CNY") -> str:
    unit = "元" if currency == "CNY" else f" {currency}"
    return f"{amount // 100}.{amount % 100:02d}{unit}"


def elapsed_en(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def elapsed_zh(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes}分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if hours else f"{days}天"


def _self_service_limit_en(windows: Windows) -> str:
    if windows.hard_limit_days is not None:
        return f"{windows.hard_limit_days} days"
    return f"{windows.conditional_hours} hours"


def _self_service_limit_zh(windows: Windows) -> str:
    if windows.hard_limit_days is not None:
        return f"{windows.hard_limit_days}天"
    return f"{windows.conditional_hours}小时"


# --- the requested items and what is known about them --------------------------------------


class Unit(IntEnum):
    """What is known about one unit of an item, from best to worst for a refund claim."""

    UNDELIVERED = 0
    INVALID = 1  # the supplier confirms the key is invalid
    UNUSED = 2  # unredeemed, locked or voided; or nothing to check (course access)
    UNKNOWN = 3  # the supplier did not answer, or was not asked about a card key
    REDEEMED = 4


_KEY_UNITS = {
    KeyState.UNREDEEMED: Unit.UNUSED,
    KeyState.LOCKED: Unit.UNUSED,
    KeyState.VOIDED: Unit.UNUSED,
    KeyState.INVALID: Unit.INVALID,
    KeyState.REDEEMED: Unit.REDEEMED,
    KeyState.UNREACHABLE: Unit.UNKNOWN,
}


def _key_unit(key: CardKeyRef, item: OrderItem, key_states: dict[str, KeyState]) -> Unit:
    if key.delivered_at is None:
        return Unit.UNDELIVERED
    state = key_states.get(key.card_key_id)
    if state is None:
        # Only a card key's own state decides its refund; other products rely on usage.
        return Unit.UNKNOWN if item.product_type is ProductType.CARD_KEY else Unit.UNUSED
    return _KEY_UNITS[state]


def item_units(item: OrderItem, key_states: dict[str, KeyState]) -> list[Unit]:
    """One state per unit of the item, best first. A card-key item without a delivered key
    is undelivered; other products without keys were delivered at payment (access)."""
    if not item.card_keys:
        missing = Unit.UNDELIVERED if item.product_type is ProductType.CARD_KEY else Unit.UNUSED
        return [missing] * item.quantity
    units = [_key_unit(key, item, key_states) for key in item.card_keys[: item.quantity]]
    units += [Unit.UNDELIVERED] * (item.quantity - len(units))
    return sorted(units)


@dataclass(frozen=True)
class Line:
    """One requested item: how many, under which rules, and the states of those units.

    Earlier refunds are assumed to have taken the best units, so what this request gets is
    never better than what is really left."""

    item: OrderItem
    quantity: int
    rules: ProductRules
    units: tuple[Unit, ...]

    @property
    def amount(self) -> int:
        return self.quantity * self.item.unit_price

    @property
    def worst(self) -> Unit:
        return max(self.units, default=Unit.UNUSED)

    def count(self, unit: Unit) -> int:
        return sum(1 for u in self.units if u is unit)

    @property
    def label_en(self) -> str:
        return f'item {self.item.item_id} "{self.item.title or self.item.sku}"'

    @property
    def label_zh(self) -> str:
        return f"商品「{self.item.title or self.item.sku}」"

    @property
    def topup_status(self) -> TopupStatus | None:
        if self.item.product_type is not ProductType.TOPUP:
            return None
        return self.item.usage.topup_status

    @property
    def topup_unconfirmed(self) -> bool:
        return self.item.product_type is ProductType.TOPUP and self.topup_status in (
            None,
            TopupStatus.PENDING,
        )

    def view(self) -> RefundItemView:
        return RefundItemView(item_id=self.item.item_id, quantity=self.quantity, amount=self.amount)


@dataclass(frozen=True)
class Draft:
    """A decision under construction; `_finish` turns it into a `Decision`."""

    outcome: Outcome
    rule: str
    en: str
    zh: str
    amount: int = 0
    # Whether the fast lane may turn this review into a refund to balance.
    fast_lane_ok: bool = False
    payment_ids: tuple[str, ...] = ()
    destination: Destination | None = None


def _merged_requests(case: DecisionCase) -> list[RefundItemRequest]:
    """The requested items in request order, one entry per item (quantities added up);
    the rest of the whole order when the buyer named none."""
    if not case.items:
        return [
            RefundItemRequest(item_id=item.item_id, quantity=_remaining(case, item))
            for item in case.order.items
            if _remaining(case, item) > 0
        ]
    quantities: dict[str, int] = {}
    for request in case.items:
        quantities[request.item_id] = quantities.get(request.item_id, 0) + request.quantity
    order = list(dict.fromkeys(request.item_id for request in case.items))
    return [RefundItemRequest(item_id=i, quantity=quantities[i]) for i in order]


def _already_refunded(case: DecisionCase, item: OrderItem) -> int:
    return min(max(case.already_refunded.get(item.item_id, 0), 0), item.quantity)


def _remaining(case: DecisionCase, item: OrderItem) -> int:
    return item.quantity - _already_refunded(case, item)


def _requested_lines(case: DecisionCase, policy: Policy) -> tuple[list[Line], Draft | None]:
    """The lines of the known requested items, and the first problem with the request."""
    order = case.order
    requests = _merged_requests(case)
    lines: list[Line] = []
    problem: Draft | None = None
    if not requests:
        problem = _nothing_left(order)
    for request in requests:
        item = order.item(request.item_id)
        if item is None:
            problem = problem or _unknown_item(order, request.item_id)
            continue
        done = _already_refunded(case, item)
        if request.quantity > item.quantity - done:
            problem = problem or _quantity_exceeded(item, request.quantity, done)
        rules = policy.rules_for(
            product_type=item.product_type, merchant_id=order.merchant_id, sku=item.sku
        )
        units = item_units(item, case.key_states)[done : done + request.quantity]
        lines.append(Line(item=item, quantity=request.quantity, rules=rules, units=tuple(units)))
    return lines, problem


def _nothing_left(order: Order) -> Draft:
    return Draft(
        Outcome.REJECT,
        "quantity.exceeds_refundable",
        f"Every item of order {order.order_id} is already refunded or being refunded.",
        "该订单的所有商品都已退款或正在退款中。",
    )


def _unknown_item(order: Order, item_id: str) -> Draft:
    return Draft(
        Outcome.REJECT,
        "item.unknown",
        f"Order {order.order_id} has no item {item_id}.",
        f"订单中没有商品 {item_id}。",
    )


def _quantity_exceeded(item: OrderItem, requested: int, done: int) -> Draft:
    left = item.quantity - done
    return Draft(
        Outcome.REJECT,
        "quantity.exceeds_refundable",
        f"Item {item.item_id}: {requested} requested, but only {left} of {item.quantity} "
        f"remain refundable ({done} already refunded or being refunded).",
        f"商品「{item.title or item.sku}」申请退款 {requested} 件，但仅剩 {left} 件可退"
        f"（共 {item.quantity} 件，已退或退款中 {done} 件）。",
    )


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


# --- one item ------------------------------------------------------------------------------


class Phase(StrEnum):
    COOLING_OFF = "cooling_off"
    CONDITIONAL = "conditional"
    REVIEW_PERIOD = "review_period"
    EXPIRED = "expired"


def window_phase(windows: Windows, elapsed: timedelta) -> Phase:
    """Where `elapsed` (time since payment) falls in the product's windows (ends inclusive)."""
    if windows.cooling_off_minutes > 0 and elapsed <= timedelta(
        minutes=windows.cooling_off_minutes
    ):
        return Phase.COOLING_OFF
    hard = timedelta(days=windows.hard_limit_days) if windows.hard_limit_days is not None else None
    conditional = (
        timedelta(hours=windows.conditional_hours)
        if windows.conditional_hours is not None
        else hard
    )
    if conditional is not None and hard is not None:
        conditional = min(conditional, hard)
    if conditional is None or elapsed <= conditional:
        return Phase.CONDITIONAL
    if hard is not None and elapsed <= hard:
        return Phase.REVIEW_PERIOD
    return Phase.EXPIRED


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    rule: str
    en: str
    zh: str
    fast_lane_ok: bool = False


@dataclass(frozen=True)
class ItemContext:
    reason: RefundReason
    reason_text: str
    elapsed: timedelta
    policy: Policy

    def phase(self, line: Line) -> Phase:
        return window_phase(line.rules.windows, self.elapsed)


def _shop_fault(line: Line, ctx: ItemContext) -> Verdict | None:
    """Paid but not delivered, a key the supplier calls invalid, a failed top-up: the shop's
    fault, refunded whatever the window, the reason or the product's refundability."""
    if line.worst is Unit.UNDELIVERED:
        return Verdict(
            Outcome.AUTO_APPROVE,
            "delivery.not_delivered",
            f"{line.label_en}: paid but never delivered ({line.quantity} unit(s) without a "
            "card key); refunded automatically.",
            f"{line.label_zh}已付款但未发货（未发放卡密），自动退款。",
        )
    if line.worst is Unit.INVALID:
        invalid = line.count(Unit.INVALID)
        return Verdict(
            Outcome.AUTO_APPROVE,
            "card_key.invalid_confirmed",
            f"{line.label_en}: the supplier confirms {invalid} card key(s) invalid; "
            "refunded automatically.",
            f"{line.label_zh}：供应商确认卡密无效，自动退款。",
        )
    if line.topup_status is TopupStatus.FAILED:
        return Verdict(
            Outcome.AUTO_APPROVE,
            "topup.failed",
            f"{line.label_en}: the top-up failed; refunded automatically.",
            f"{line.label_zh}充值失败，自动退款。",
        )
    return None


def _non_refundable(line: Line, ctx: ItemContext) -> Verdict | None:
    if line.rules.windows.refundable:
        return None
    return Verdict(
        Outcome.REJECT,
        "product.non_refundable",
        f"{line.label_en}: the shop marks this product non-refundable; no self-service "
        "refund (the buyer may appeal to a person).",
        f"{line.label_zh}为不支持退款的商品，无法自助退款；如有疑问可申请人工申诉。",
    )


def _consumed(line: Line, ctx: ItemContext) -> Verdict | None:
    if line.worst is Unit.REDEEMED:
        redeemed = line.count(Unit.REDEEMED)
        return Verdict(
            Outcome.REJECT,
            "card_key.redeemed",
            f"{line.label_en}: the supplier reports {redeemed} of {line.quantity} card key(s) "
            "already redeemed; no self-service refund (the buyer may appeal to a person).",
            f"{line.label_zh}：供应商显示卡密已被兑换使用，无法自助退款；如有疑问可申请人工申诉。",
        )
    if line.topup_status is TopupStatus.SUCCEEDED:
        return Verdict(
            Outcome.REJECT,
            "topup.succeeded",
            f"{line.label_en}: the top-up succeeded; no self-service refund (the buyer may "
            "appeal to a person).",
            f"{line.label_zh}已充值成功，无法自助退款；如有疑问可申请人工申诉。",
        )
    return None


def _unverified(line: Line) -> bool:
    return line.worst is Unit.UNKNOWN or line.topup_unconfirmed


def _cooling_off(line: Line, ctx: ItemContext) -> Verdict | None:
    if ctx.phase(line) is not Phase.COOLING_OFF or _unverified(line):
        return None
    minutes = line.rules.windows.cooling_off_minutes
    return Verdict(
        Outcome.AUTO_APPROVE,
        "window.cooling_off",
        f"{line.label_en}: requested {elapsed_en(ctx.elapsed)} after payment, within the "
        f"{minutes}-minute cooling-off period; refunded automatically, whatever the reason.",
        f"{line.label_zh}：付款后 {elapsed_zh(ctx.elapsed)} 申请，在 {minutes} 分钟冷静期内，"
        "无需理由，自动退款。",
    )


def _support_first(line: Line, ctx: ItemContext) -> Verdict | None:
    if ctx.reason not in ctx.policy.reasons.redirect_to_support:
        return None
    technical = ctx.reason is RefundReason.TECHNICAL_ISSUE
    quoted = f' ("{ctx.reason_text}")' if ctx.reason_text else ""
    what = "a technical problem" if technical else f"'{ctx.reason.value}'"
    return Verdict(
        Outcome.REDIRECT_TO_SUPPORT,
        "reason.technical_redirect" if technical else "reason.support_redirect",
        f"{line.label_en}: the reason points to {what}{quoted}; support helps first "
        "(troubleshooting) rather than a refund.",
        f"{line.label_zh}：您反馈的是使用问题，已为您转接客服优先排查解决；"
        "如客服确认无法解决，可再申请退款。",
    )


def _expired(line: Line, ctx: ItemContext) -> Verdict | None:
    if ctx.phase(line) is not Phase.EXPIRED:
        return None
    windows = line.rules.windows
    return Verdict(
        Outcome.REJECT,
        "window.expired",
        f"{line.label_en}: requested {elapsed_en(ctx.elapsed)} after payment, after the "
        f"self-service window of {_self_service_limit_en(windows)}; no self-service refund "
        "(the buyer may appeal to a person).",
        f"{line.label_zh}：付款已 {elapsed_zh(ctx.elapsed)}，超过 "
        f"{_self_service_limit_zh(windows)} 的自助退款期限，无法自助退款；可申请人工申诉。",
    )


def _needs_verification(line: Line, ctx: ItemContext) -> Verdict | None:
    if line.worst is Unit.UNKNOWN:
        unknown = line.count(Unit.UNKNOWN)
        return Verdict(
            Outcome.REVIEW,
            "card_key.supplier_unreachable",
            f"{line.label_en}: the supplier could not confirm the state of {unknown} card "
            "key(s), so the key cannot be locked before paying; a person decides.",
            f"{line.label_zh}：暂时无法向供应商确认卡密状态，已转人工审核。",
        )
    if line.topup_unconfirmed:
        return Verdict(
            Outcome.REVIEW,
            "topup.pending",
            f"{line.label_en}: the top-up result is not known yet; a person decides.",
            f"{line.label_zh}：充值结果尚未确认，已转人工审核。",
        )
    return None


def _review_period(line: Line, ctx: ItemContext) -> Verdict | None:
    if ctx.phase(line) is not Phase.REVIEW_PERIOD:
        return None
    windows = line.rules.windows
    return Verdict(
        Outcome.REVIEW,
        "window.review_period",
        f"{line.label_en}: requested {elapsed_en(ctx.elapsed)} after payment, after the "
        f"{windows.conditional_hours}-hour automatic window but within "
        f"{windows.hard_limit_days} days; a person decides.",
        f"{line.label_zh}：付款已 {elapsed_zh(ctx.elapsed)}，超过自动退款时限，已转人工审核。",
        fast_lane_ok=True,
    )


def usage_findings(line: Line) -> list[tuple[str, str]]:
    """Why the item's usage is not low, in English and Chinese; empty when it is low."""
    usage, limits = line.item.usage, line.rules.usage
    findings = []
    if limits.max_progress_pct is not None and usage.progress_pct >= limits.max_progress_pct:
        findings.append(
            (
                f"{usage.progress_pct}% used (automatic only below {limits.max_progress_pct}%)",
                f"已学习/使用 {usage.progress_pct}%（自动退款需低于 {limits.max_progress_pct}%）",
            )
        )
    if limits.downloaded_blocks and usage.downloaded:
        findings.append(("content downloaded", "内容已下载"))
    if limits.key_revealed_blocks and usage.key_revealed:
        findings.append(("card key revealed", "卡密已查看"))
    return findings


def _usage(line: Line, ctx: ItemContext) -> Verdict:
    findings = usage_findings(line)
    when_en = f"requested {elapsed_en(ctx.elapsed)} after payment"
    when_zh = f"付款后 {elapsed_zh(ctx.elapsed)} 申请"
    is_card_key = line.item.product_type is ProductType.CARD_KEY
    if findings:
        return Verdict(
            Outcome.REVIEW,
            "card_key.revealed" if is_card_key else "window.conditional_usage_high",
            f"{line.label_en}: {when_en}, but usage is not low: "
            f"{'; '.join(en for en, _ in findings)}; a person decides.",
            f"{line.label_zh}：{when_zh}，但{'，'.join(zh for _, zh in findings)}，已转人工审核。",
            fast_lane_ok=True,
        )
    if is_card_key:
        return Verdict(
            Outcome.AUTO_APPROVE,
            "card_key.unredeemed",
            f"{line.label_en}: the supplier confirms {line.quantity} card key(s) unredeemed, "
            f"{when_en} (limit {_self_service_limit_en(line.rules.windows)}); the key is voided "
            "and the refund is automatic.",
            f"{line.label_zh}：供应商确认卡密未使用，{when_zh}，作废卡密后自动退款。",
        )
    usage = line.item.usage
    return Verdict(
        Outcome.AUTO_APPROVE,
        "window.conditional_low_usage",
        f"{line.label_en}: {when_en}, within the automatic window, with low usage "
        f"({usage.progress_pct}% used, nothing downloaded, key not revealed); refunded "
        "automatically.",
        f"{line.label_zh}：{when_zh}，在自动退款时限内且使用很少（已使用 {usage.progress_pct}%），"
        "自动退款。",
    )


_ITEM_CHECKS: tuple[Callable[[Line, ItemContext], Verdict | None], ...] = (
    _shop_fault,
    _non_refundable,
    _consumed,
    _cooling_off,
    _support_first,
    _expired,
    _needs_verification,
    _review_period,
)


def judge_item(line: Line, ctx: ItemContext) -> Verdict:
    """The verdict for one requested item: the first check that applies."""
    for check in _ITEM_CHECKS:
        verdict = check(line, ctx)
        if verdict is not None:
            return verdict
    return _usage(line, ctx)


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


def _risk_gate(draft: Draft, risk: RiskAssessment) -> Draft:
    """Blocked and high-risk buyers never get money without a person. The buyer's text does
    not name the signals (they are for reviewers, not for abusers to learn from)."""
    if draft.outcome is not Outcome.AUTO_APPROVE:
        return draft
    if risk.level is RiskLevel.BLOCKED:
        rule, why = "risk.blocked", "the buyer, device or IP is blacklisted"
    elif risk.level is RiskLevel.HIGH:
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
    lines, problem = _requested_lines(case, policy)
    reason = classified_reason(case, policy)
    draft = (
        _unpaid_order(order)
        or problem
        or _cancelled_paid_order(order, lines)
        or _duplicate_charge(order, lines, reason)
    )
    if draft is None:
        paid_at = order.paid_at or order.created_at
        elapsed = max(case.now - paid_at, timedelta(0))
        ctx = ItemContext(
            reason=reason, reason_text=case.reason_text, elapsed=elapsed, policy=policy
        )
        draft = _judge_items(lines, ctx)
    draft = _risk_gate(draft, case.risk)
    draft = _amount_gate(draft, lines, case.risk, order.currency)
    draft = _fast_lane(draft, lines, case.risk, policy, order)
    return _finish(draft, lines, case, policy)


def _goods_consumed(lines: list[Line]) -> bool:
    return any(
        line.worst is Unit.REDEEMED or line.topup_status is TopupStatus.SUCCEEDED for line in lines
    )


def on_review_expired(case: DecisionCase, decision: Decision, policy: Policy) -> Decision:
    """What happens when a review's deadline passes without an answer (the workflow's timer).

    Small refunds (`review.on_expiry.auto_approve_max_amount`) for buyers at most
    `on_expiry.max_risk` approve themselves; everything else keeps waiting. Never approves a
    blocked buyer (the policy refuses `max_risk: blocked`) or consumed goods (an appeal of a
    redeemed key waits for a person). A decision that is not a review is returned as is.
    """
    if decision.outcome is not Outcome.REVIEW:
        return decision
    expiry = policy.review.on_expiry
    lines, problem = _requested_lines(case, policy)
    currency = case.order.currency
    amount = money_en(decision.amount, currency)
    hours = policy.review.deadline_hours
    # Re-checks after another deadline keep the original decision's explanation, once.
    before = f"{decision.rule}: {decision.explanation}"
    if decision.rule.startswith("review.expired_"):
        before = decision.explanation.split("Before: ", 1)[-1]
    approves = (
        problem is None
        and not _goods_consumed(lines)
        and 0 < decision.amount <= expiry.auto_approve_max_amount
        and risk_rank(case.risk.level) <= risk_rank(expiry.max_risk)
        and case.risk.level is not RiskLevel.BLOCKED
    )
    if approves:
        return decision.model_copy(
            update={
                "outcome": Outcome.AUTO_APPROVE,
                "rule": "review.expired_auto_approve",
                "explanation": f"No reviewer answered within {hours} h; {amount} is within the "
                f"expiry limit of {money_en(expiry.auto_approve_max_amount, currency)} for a "
                f"{case.risk.level.value}-risk buyer, so it is refunded. Before: {before}",
                "explanation_zh": f"审核超时未处理，{money_zh(decision.amount, currency)} 属于小额"
                "低风险退款，已自动通过。",
                "policy_version": policy.version,
            }
        )
    return decision.model_copy(
        update={
            "rule": "review.expired_wait",
            "explanation": f"No reviewer answered within {hours} h; {amount} at "
            f"{case.risk.level.value} risk does not approve itself (limit "
            f"{money_en(expiry.auto_approve_max_amount, currency)}, up to "
            f"{expiry.max_risk.value} risk, goods not consumed): escalated, still waiting. "
            f"Before: {before}",
            "explanation_zh": "审核已超时，已升级处理，请耐心等待人工审核结果。",
            "policy_version": policy.version,
        }
    )

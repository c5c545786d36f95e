"""The judgement of one requested item: what is known about its units (card-key states,
delivery), where the request falls in the product's windows, and how much it was used.

`judge_item(line, ctx)` runs the checks of `ITEM_CHECKS` in order (first match wins) and
falls back to the usage check; `domain.rules` combines the verdicts of all requested items.
Pure and deterministic: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum, StrEnum

from domain.order import CardKeyRef, OrderItem
from domain.policy import Policy, ProductRules, Windows
from domain.refund import RefundItemView
from domain.types import KeyState, Outcome, ProductType, RefundReason, TopupStatus
from domain.wording import elapsed_en, elapsed_zh, self_service_limit_en, self_service_limit_zh


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
        f"self-service window of {self_service_limit_en(windows)}; no self-service refund "
        "(the buyer may appeal to a person).",
        f"{line.label_zh}：付款已 {elapsed_zh(ctx.elapsed)}，超过 "
        f"{self_service_limit_zh(windows)} 的自助退款期限，无法自助退款；可申请人工申诉。",
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
            f"{when_en} (limit {self_service_limit_en(line.rules.windows)}); the key is voided "
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


ITEM_CHECKS: tuple[Callable[[Line, ItemContext], Verdict | None], ...] = (
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
    for check in ITEM_CHECKS:
        verdict = check(line, ctx)
        if verdict is not None:
            return verdict
    return _usage(line, ctx)

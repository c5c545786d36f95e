"""The operators' report computed from facts (see `store.reports`, which reads the facts):
refund rate and reasons by merchant and product, the share resolved without a person, time
to money, review deadlines met, each supplier's bad-key rate.

Pure functions over plain rows, tested without a database. Two populations:
- refunds *created* in the window: totals, reasons, automation, time to money, deadlines;
- the cohort of paid orders *created* in the window (orders.created_at) and every refund on
  them: refund rates, so a rate is refunds over the orders they could have come from.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.types import TERMINAL_STATUSES, RefundStatus

# --- rows read from the database ---------------------------------------------------------


@dataclass(frozen=True)
class RefundFact:
    """One refund created in the window, with what the report needs of it."""

    refund_id: str
    status: str
    amount: int
    currency: str
    reason: str
    outcome: str | None  # decision.outcome, None before the rules ran
    review: dict[str, Any] | None  # non-null once a person was asked
    created_at: datetime
    money_arrived_at: datetime | None = None


@dataclass(frozen=True)
class OrderFact:
    """A paid order created in the window, with the SKUs and product types it holds."""

    order_id: str
    merchant_id: str
    items: frozenset[tuple[str, str]]  # (sku, product_type)


@dataclass(frozen=True)
class CohortRefund:
    """A refund on a cohort order, with the items it touches."""

    refund_id: str
    order_id: str
    status: str
    reason: str
    items: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (sku, product_type)


@dataclass(frozen=True)
class PrecheckFact:
    """A buyer's pre-check made in the window, and whether a refund of the order followed."""

    outcome: str  # automatic | review | no | support
    followed_by_refund: bool


@dataclass(frozen=True)
class KeySold:
    """A card key delivered on a cohort order, and its supplier."""

    supplier: str
    card_key_id: str


@dataclass(frozen=True)
class KeyClaimed:
    """A key of a cohort order the supplier confirmed invalid, on a refund that paid for it
    (what opened a claim against the supplier: `store.supplier_claims`)."""

    supplier: str
    card_key_id: str
    refund_id: str


# --- the report --------------------------------------------------------------------------


class Window(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime


class Totals(BaseModel):
    refunds: int
    refunded: int = Field(description="refunds whose money was returned (status refunded)")
    refunded_amount: dict[str, int] = Field(
        description="money returned by refunds with status refunded, minor units per currency"
    )
    by_status: dict[str, int]


class RateRow(BaseModel):
    key: str = Field(description="merchant id, product type or SKU")
    paid_orders: int = Field(description="paid orders created in the window")
    refunds: int = Field(description="refunds (any status) on those orders")
    refunded: int = Field(description="of which the money was returned")
    refund_rate: float = Field(description="refunds / paid_orders")
    refunded_rate: float = Field(description="refunded / paid_orders")
    reasons: dict[str, int]


class Rates(BaseModel):
    paid_orders: int
    by_merchant: list[RateRow]
    by_product_type: list[RateRow]
    by_sku: list[RateRow]


class ReasonCount(BaseModel):
    reason: str
    refunds: int


class Automation(BaseModel):
    terminal: int = Field(description="refunds in a final status")
    without_person: int = Field(description="decided by the rules, no reviewer asked")
    with_person: int = Field(description="a reviewer was asked")
    share_without_person: float | None
    by_outcome: dict[str, int] = Field(description="terminal refunds by decision.outcome")


class TimeToMoney(BaseModel):
    refunds: int = Field(description="refunds whose money arrived")
    p50_seconds: float | None
    p90_seconds: float | None


class ReviewDeadlines(BaseModel):
    reviewed: int = Field(description="refunds that reached pending_review")
    met: int = Field(description="answered by a reviewer before the deadline")
    missed: int = Field(description="the deadline passed first (escalated)")
    waiting: int = Field(description="still waiting, deadline not yet passed")
    withdrawn: int = Field(description="cancelled by the buyer before an answer")
    share_met: float | None = Field(description="met / (met + missed)")


class PrecheckOutcomeCount(BaseModel):
    prechecks: int
    followed_by_refund: int


class Prechecks(BaseModel):
    """Pre-checks (`POST /v1/refunds/precheck`) made in the window and what buyers did next:
    a pre-check not followed by a refund of the order is a refund deflected (the self-help
    helped, or the buyer saw it would not be refunded)."""

    prechecks: int
    followed_by_refund: int
    not_followed: int
    deflection_rate: float | None = Field(description="not_followed / prechecks")
    by_outcome: dict[str, PrecheckOutcomeCount]


class SupplierKeys(BaseModel):
    supplier: str
    keys_sold: int = Field(description="card keys delivered on the cohort's paid orders")
    invalid_keys: int = Field(
        description="of which the supplier confirmed invalid on a refund that paid for them"
    )
    refunds: int = Field(description="refunds paid for those keys (each opened a claim)")
    bad_key_rate: float = Field(description="invalid_keys / keys_sold")


class Report(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    window: Window
    merchant_id: str | None = Field(description="the merchant reported on; null for all")
    totals: Totals
    rates: Rates
    reasons: list[ReasonCount]
    automation: Automation
    time_to_money: TimeToMoney
    review_deadlines: ReviewDeadlines
    prechecks: Prechecks
    suppliers: list[SupplierKeys] = Field(
        default_factory=list,
        description="per card-key supplier of the cohort: the keys it sold, and how many "
        "of them it confirmed invalid (its bad-key rate), worst first",
    )


# --- pure aggregation --------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile: an observed value, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def totals(refunds: Iterable[RefundFact]) -> Totals:
    by_status = {s.value: 0 for s in RefundStatus}
    amount: Counter[str] = Counter()
    count = 0
    for r in refunds:
        count += 1
        by_status[r.status] = by_status.get(r.status, 0) + 1
        if r.status == RefundStatus.REFUNDED:
            amount[r.currency] += r.amount
    return Totals(
        refunds=count,
        refunded=by_status[RefundStatus.REFUNDED.value],
        refunded_amount=dict(sorted(amount.items())),
        by_status=by_status,
    )


def reasons(refunds: Iterable[RefundFact]) -> list[ReasonCount]:
    counts = Counter(r.reason for r in refunds)
    return [
        ReasonCount(reason=k, refunds=v)
        for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def automation(refunds: Iterable[RefundFact]) -> Automation:
    terminal = [r for r in refunds if r.status in TERMINAL_STATUSES]
    with_person = sum(1 for r in terminal if r.review is not None)
    outcomes = Counter(r.outcome or "none" for r in terminal)
    return Automation(
        terminal=len(terminal),
        without_person=len(terminal) - with_person,
        with_person=with_person,
        share_without_person=_share(len(terminal) - with_person, len(terminal)),
        by_outcome=dict(sorted(outcomes.items())),
    )


def time_to_money(refunds: Iterable[RefundFact]) -> TimeToMoney:
    seconds = [
        (r.money_arrived_at - r.created_at).total_seconds()
        for r in refunds
        if r.money_arrived_at is not None
    ]
    return TimeToMoney(
        refunds=len(seconds),
        p50_seconds=percentile(seconds, 50),
        p90_seconds=percentile(seconds, 90),
    )


def review_deadlines(refunds: Iterable[RefundFact]) -> ReviewDeadlines:
    met = missed = waiting = withdrawn = 0
    for r in refunds:
        review = r.review
        if review is None:
            continue
        if review.get("escalated"):
            missed += 1
        elif r.status == RefundStatus.PENDING_REVIEW:
            waiting += 1
        elif review.get("reviewer"):
            met += 1
        else:
            withdrawn += 1
    return ReviewDeadlines(
        reviewed=met + missed + waiting + withdrawn,
        met=met,
        missed=missed,
        waiting=waiting,
        withdrawn=withdrawn,
        share_met=_share(met, met + missed),
    )


def prechecks(facts: Iterable[PrecheckFact]) -> Prechecks:
    total = followed = 0
    by_outcome: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f in facts:
        total += 1
        followed += f.followed_by_refund
        counts = by_outcome[f.outcome]
        counts[0] += 1
        counts[1] += f.followed_by_refund
    return Prechecks(
        prechecks=total,
        followed_by_refund=followed,
        not_followed=total - followed,
        deflection_rate=_share(total - followed, total),
        by_outcome={
            k: PrecheckOutcomeCount(prechecks=v[0], followed_by_refund=v[1])
            for k, v in sorted(by_outcome.items())
        },
    )


def _rows(orders: dict[str, set[str]], refunds: dict[str, list[CohortRefund]]) -> list[RateRow]:
    out = []
    for key, order_ids in orders.items():
        mine = refunds.get(key, [])
        refunded = sum(1 for r in mine if r.status == RefundStatus.REFUNDED)
        out.append(
            RateRow(
                key=key,
                paid_orders=len(order_ids),
                refunds=len(mine),
                refunded=refunded,
                refund_rate=round(len(mine) / len(order_ids), 4),
                refunded_rate=round(refunded / len(order_ids), 4),
                reasons=dict(sorted(Counter(r.reason for r in mine).items())),
            )
        )
    return sorted(out, key=lambda row: (-row.refund_rate, -row.refunds, row.key))


def rates(orders: Iterable[OrderFact], refunds: Iterable[CohortRefund]) -> Rates:
    by_id = {o.order_id: o for o in orders}
    merchant_orders: dict[str, set[str]] = defaultdict(set)
    type_orders: dict[str, set[str]] = defaultdict(set)
    sku_orders: dict[str, set[str]] = defaultdict(set)
    for o in by_id.values():
        merchant_orders[o.merchant_id].add(o.order_id)
        for sku, product_type in o.items:
            sku_orders[sku].add(o.order_id)
            type_orders[product_type].add(o.order_id)

    merchant_refunds: dict[str, list[CohortRefund]] = defaultdict(list)
    type_refunds: dict[str, list[CohortRefund]] = defaultdict(list)
    sku_refunds: dict[str, list[CohortRefund]] = defaultdict(list)
    for r in refunds:
        order = by_id.get(r.order_id)
        if order is None:  # not a paid order of the window
            continue
        merchant_refunds[order.merchant_id].append(r)
        # A refund names its items; one that names none is about the whole order.
        items = r.items or order.items
        for sku in sorted({sku for sku, _ in items}):
            sku_refunds[sku].append(r)
        for product_type in sorted({t for _, t in items}):
            type_refunds[product_type].append(r)

    return Rates(
        paid_orders=len(by_id),
        by_merchant=_rows(merchant_orders, merchant_refunds),
        by_product_type=_rows(type_orders, type_refunds),
        by_sku=_rows(sku_orders, sku_refunds),
    )


def bad_keys(sold: Iterable[KeySold], claimed: Iterable[KeyClaimed]) -> list[SupplierKeys]:
    """Per supplier, the share of the keys it sold that it confirmed invalid on a refund."""
    keys: dict[str, set[str]] = defaultdict(set)
    for k in sold:
        keys[k.supplier].add(k.card_key_id)
    invalid: dict[str, set[str]] = defaultdict(set)
    refunds: dict[str, set[str]] = defaultdict(set)
    for c in claimed:
        if c.card_key_id in keys.get(c.supplier, ()):
            invalid[c.supplier].add(c.card_key_id)
            refunds[c.supplier].add(c.refund_id)
    rows = [
        SupplierKeys(
            supplier=supplier,
            keys_sold=len(ids),
            invalid_keys=len(invalid[supplier]),
            refunds=len(refunds[supplier]),
            bad_key_rate=round(len(invalid[supplier]) / len(ids), 4),
        )
        for supplier, ids in keys.items()
    ]
    return sorted(rows, key=lambda r: (-r.bad_key_rate, -r.keys_sold, r.supplier))


def build_report(
    start: datetime,
    end: datetime,
    refunds: Sequence[RefundFact],
    orders: Sequence[OrderFact],
    cohort_refunds: Sequence[CohortRefund],
    merchant_id: str | None = None,
    precheck_facts: Sequence[PrecheckFact] = (),
    keys_sold: Sequence[KeySold] = (),
    keys_claimed: Sequence[KeyClaimed] = (),
) -> Report:
    return Report(
        window=Window(from_=start, to=end),
        merchant_id=merchant_id,
        totals=totals(refunds),
        rates=rates(orders, cohort_refunds),
        reasons=reasons(refunds),
        automation=automation(refunds),
        time_to_money=time_to_money(refunds),
        review_deadlines=review_deadlines(refunds),
        prechecks=prechecks(precheck_facts),
        suppliers=bad_keys(keys_sold, keys_claimed),
    )

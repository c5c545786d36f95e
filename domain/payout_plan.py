"""Which payments a refund's money goes back through, and how much through each.

Pure: the workflow calls it when money is about to move, tests call it without Temporal.
The original route first (DOMAIN: "refund to the original payment route first"), in the
order the payments were made; what the original payments cannot take goes to the platform
balance; a refund the decision sends to balance goes there whole. A duplicate charge names
its own payments (the decision's `payment_ids`); otherwise duplicates are never refunded
through as if they were part of the order."""

from __future__ import annotations

from dataclasses import dataclass

from domain.order import Order, Payment
from domain.types import Destination, PaymentChannel

__all__ = ["PlannedPayout", "plan_payouts"]


@dataclass(frozen=True)
class PlannedPayout:
    channel: PaymentChannel
    payment: Payment | None  # None: the platform balance
    amount: int


def plan_payouts(
    order: Order,
    amount: int,
    *,
    destination: Destination,
    payment_ids: list[str] | None = None,
) -> list[PlannedPayout]:
    if amount <= 0:
        return []
    if destination is Destination.BALANCE:
        return [PlannedPayout(PaymentChannel.BALANCE, None, amount)]
    if payment_ids:
        payments = [p for p in order.payments if p.payment_id in payment_ids]
    else:
        duplicates = {p.payment_id for p in order.duplicate_payments}
        payments = [p for p in order.payments if p.payment_id not in duplicates]
    plan: list[PlannedPayout] = []
    left = amount
    for payment in payments:
        if left <= 0:
            break
        part = min(left, payment.amount)
        if part > 0:
            plan.append(PlannedPayout(payment.channel, payment, part))
            left -= part
    if left > 0:  # nothing left on the original route: the rest to balance
        plan.append(PlannedPayout(PaymentChannel.BALANCE, None, left))
    return plan

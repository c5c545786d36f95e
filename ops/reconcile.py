"""Reconciliation: the service's payouts against the gateways' own records.

For every gateway payout of a day, ask the gateway (its refund query API) what it has
under our out_refund_no and compare state and amount; then check that no order touched
that day got back more than it paid, counting what the gateways hold as well as what we
recorded (`store.conservation`). A difference is reported and raised as a supervisor alert;
nothing is "fixed" silently. Beside them, every supplier's claims for the keys it confirmed
invalid: open, recovered and written off (`store.supplier_claims`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.model import utcnow
from domain.types import PayoutState
from peers.payouts import GatewayError, GatewayRefund, Gateways, RefundOrder
from store import supplier_claims
from store.conservation import Breach, breaches
from store.models import NotificationRow, PayoutRow, RefundRow
from store.outbox import SUPERVISOR, SUPERVISORS
from store.upsert import insert_ignore


@dataclass(frozen=True)
class Line:
    out_refund_no: str
    refund_id: str
    channel: str
    ours: str
    our_amount: int
    theirs: str
    their_amount: int | None
    verdict: str  # match | mismatch | missing | pending | unreachable
    note: str = ""


@dataclass
class Report:
    day: date
    lines: list[Line] = field(default_factory=list)
    # Orders that got back more than they paid (money conservation).
    over_refunds: list[Breach] = field(default_factory=list)
    # Every supplier's claims, as they stand (not the day's: a claim lives for weeks).
    claims: list[supplier_claims.SupplierClaims] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for line in self.lines if line.verdict == verdict)

    @property
    def problems(self) -> list[Line]:
        return [ln for ln in self.lines if ln.verdict in ("mismatch", "missing")]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.over_refunds


async def reconcile(session: AsyncSession, day: date, *, gateways: Gateways) -> Report:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    rows = (
        await session.execute(
            select(PayoutRow, RefundRow.order_id)
            .join(RefundRow, RefundRow.refund_id == PayoutRow.refund_id)
            .where(
                PayoutRow.created_at >= start,
                PayoutRow.created_at < start + timedelta(days=1),
            )
            .order_by(PayoutRow.created_at)
        )
    ).all()
    report = Report(day)
    gateway_says: dict[str, PayoutState] = {}
    for p, _ in rows:
        gateway = gateways[p.channel]
        if gateway.instant:
            continue  # our own books: nothing outside to compare with
        try:
            theirs = await gateway.query_refund(_order(p))
        except GatewayError as err:
            # Unreachable, refused or unverifiable: nothing learned, nothing assumed.
            report.lines.append(_line(p, None, "unreachable", str(err)))
            continue
        gateway_says[p.out_refund_no] = theirs.state
        report.lines.append(_line(p, theirs, _verdict(p, theirs)))
    report.over_refunds = await breaches(
        session, order_ids={order_id for _, order_id in rows}, gateway_says=gateway_says
    )
    report.claims = await supplier_claims.per_supplier(session)
    return report


def _order(p: PayoutRow) -> RefundOrder:
    return RefundOrder(
        out_refund_no=p.out_refund_no,
        transaction_id=p.transaction_id,
        amount=p.amount,
        payment_total=p.payment_total,
        currency=p.currency,
        reason=p.reason,
    )


def _verdict(p: PayoutRow, theirs: GatewayRefund) -> str:
    ours = p.state
    if theirs.state is PayoutState.PENDING:  # the gateway has nothing under this number
        return "pending" if ours is PayoutState.PENDING else "missing"
    if theirs.amount != p.amount:
        return "mismatch"
    if ours is theirs.state:
        return "match"
    if ours is PayoutState.PROCESSING and theirs.state is PayoutState.SUCCEEDED:
        return "pending"  # the workflow's next settlement query will catch up
    return "mismatch"


def _line(p: PayoutRow, theirs: GatewayRefund | None, verdict: str, note: str = "") -> Line:
    return Line(
        out_refund_no=p.out_refund_no,
        refund_id=p.refund_id,
        channel=p.channel,
        ours=p.state,
        our_amount=p.amount,
        theirs=theirs.state.value if theirs else "-",
        their_amount=theirs.amount if theirs else None,
        verdict=verdict,
        note=note or (theirs.raw_status if theirs else ""),
    )


async def raise_alerts(session: AsyncSession, report: Report) -> int:
    """One supervisor alert per problem line and per over-refunded order (idempotent per
    day and payout or order)."""
    now = utcnow()
    seq = -int(report.day.strftime("%Y%m%d"))  # a reconciliation, not a status report
    rows = [
        {
            "refund_id": ln.refund_id,
            "seq": seq,
            "channel": SUPERVISOR,
            "recipient": SUPERVISORS,
            "status": f"reconcile:{ln.verdict}",
            "body": {
                "message": f"reconciliation {report.day}: {ln.verdict} for {ln.out_refund_no}",
                "ours": {"state": ln.ours, "amount": ln.our_amount},
                "gateway": {"state": ln.theirs, "amount": ln.their_amount},
            },
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": now,
            "delivered_at": now,
        }
        for ln in report.problems
    ]
    # One step below the day's payout alerts, so both can concern the same refund.
    rows += [over_refund_alert(b, seq=seq * 10 - 1, now=now) for b in report.over_refunds]
    return await insert_ignore(session, NotificationRow, rows)


def over_refund_alert(breach: Breach, *, seq: int, now: datetime) -> dict[str, object]:
    """A supervisor alert row for an order that got back more than it paid."""
    return {
        # Alerts hang off a refund: the order's latest one.
        "refund_id": breach.payouts[-1].refund_id,
        "seq": seq,
        "channel": SUPERVISOR,
        "recipient": SUPERVISORS,
        "status": f"over_refund:{breach.order_id}"[:32],
        "body": {
            "message": f"money conservation breached: {breach.describe()}",
            "order_id": breach.order_id,
            "paid": breach.paid,
            "refunded": breach.refunded,
        },
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
        "delivered_at": now,
    }

"""Reconciliation: the service's payouts against the gateways' own records.

For every gateway payout of a day, ask the gateway (its refund query API) what it has
under our out_refund_no and compare state and amount. A difference is reported and
raised as a supervisor alert; nothing is "fixed" silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.model import utcnow
from domain.types import PaymentChannel, PayoutState
from peers.alipay import AlipayClient
from peers.payouts import GatewayRefund, GatewayRefused, GatewayUnavailable
from peers.wechatpay import WechatPayClient
from store.models import NotificationRow, PayoutRow
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

    def count(self, verdict: str) -> int:
        return sum(1 for line in self.lines if line.verdict == verdict)

    @property
    def problems(self) -> list[Line]:
        return [ln for ln in self.lines if ln.verdict in ("mismatch", "missing")]


async def reconcile(
    session: AsyncSession, day: date, *, alipay: AlipayClient, wechat: WechatPayClient
) -> Report:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    payouts = (
        await session.scalars(
            select(PayoutRow)
            .where(
                PayoutRow.created_at >= start,
                PayoutRow.created_at < start + timedelta(days=1),
                PayoutRow.channel.in_([PaymentChannel.ALIPAY.value, PaymentChannel.WECHAT.value]),
            )
            .order_by(PayoutRow.created_at)
        )
    ).all()
    report = Report(day)
    for p in payouts:
        try:
            if p.channel == PaymentChannel.ALIPAY.value:
                theirs = await alipay.query(
                    trade_no=p.transaction_id or "", out_request_no=p.out_refund_no
                )
            else:
                theirs = await wechat.query(out_refund_no=p.out_refund_no)
        except (GatewayUnavailable, GatewayRefused) as err:
            report.lines.append(_line(p, None, "unreachable", str(err)))
            continue
        report.lines.append(_line(p, theirs, _verdict(p, theirs)))
    return report


def _verdict(p: PayoutRow, theirs: GatewayRefund) -> str:
    ours = PayoutState(p.state)
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
    """One supervisor alert per problem line (idempotent per day and payout)."""
    now = utcnow()
    rows = [
        {
            "refund_id": ln.refund_id,
            "seq": -int(report.day.strftime("%Y%m%d")),  # a reconciliation, not a status report
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
    return await insert_ignore(session, NotificationRow, rows)

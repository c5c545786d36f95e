"""Paying the buyer back through the original route (Alipay, WeChat Pay) or to their
platform balance, exactly once.

The payout row is committed *before* the gateway is called and carries the gateway's
idempotency key (`out_refund_no`, from refund id and attempt). A worker that dies
after the gateway accepted but before this activity completed retries with the same
number, and the gateway answers with the refund it already made."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.crashpoints import crashpoint
from activities.heartbeat import heartbeating
from activities.messages import PayoutRequest, SettlementQuery
from domain.model import utcnow
from domain.refund import PayoutView
from domain.types import PaymentChannel, PayoutState
from peers.alipay import AlipayClient
from peers.payouts import GatewayRefund, GatewayRefused
from peers.wechatpay import WechatPayClient
from store import audit, ledger
from store.db import SessionFactory
from store.models import PayoutRow
from store.refunds import payout_view
from store.upsert import insert_ignore

SETTLED = {PayoutState.SUCCEEDED, PayoutState.CLOSED, PayoutState.ABNORMAL, PayoutState.FAILED}


class Payouts:
    def __init__(
        self,
        sessions: SessionFactory,
        *,
        alipay: AlipayClient,
        wechat: WechatPayClient,
        notify_url: str,
        reads: SessionFactory | None = None,
    ) -> None:
        self.sessions = sessions
        self.reads = reads or sessions
        self.alipay = alipay
        self.wechat = wechat
        self.notify_url = notify_url

    @activity.defn(name="send_payout")
    async def send_payout(self, req: PayoutRequest) -> PayoutView:
        async with heartbeating():
            return await self._send_payout(req)

    async def _send_payout(self, req: PayoutRequest) -> PayoutView:
        now = utcnow()
        async with self.sessions.begin() as session:
            await insert_ignore(session, PayoutRow, [_pending_row(req, now)])
            row = await session.get(PayoutRow, req.out_refund_no)
            assert row is not None
            if PayoutState(row.state) in SETTLED:
                return payout_view(row)  # a retry after the outcome was recorded
            if req.channel is PaymentChannel.BALANCE:
                await self._record(session, row, PayoutState.SUCCEEDED, None, now)
                return payout_view(row)
        # Committed: the intent is on record before any money can move.
        crashpoint("payout.before_gateway")
        try:
            answer = await self._call_gateway(row)
        except GatewayRefused as refused:
            async with self.sessions.begin() as session:
                row = await session.get(PayoutRow, req.out_refund_no)
                assert row is not None
                await self._record(
                    session, row, PayoutState.FAILED, None, utcnow(), note=refused.code
                )
            raise ApplicationError(
                refused.message or refused.code,
                refused.code,
                type="GatewayRefused",
                non_retryable=True,
            ) from refused
        crashpoint("payout.after_gateway")
        return await self._save(req.out_refund_no, answer)

    @activity.defn(name="query_payout")
    async def query_payout(self, req: SettlementQuery) -> PayoutView:
        async with heartbeating():
            return await self._query_payout(req)

    async def _query_payout(self, req: SettlementQuery) -> PayoutView:
        async with self.reads() as session:
            row = await session.get(PayoutRow, req.out_refund_no)
            if row is None:
                raise ApplicationError(
                    f"no payout {req.out_refund_no}", type="UnknownPayout", non_retryable=True
                )
            if PayoutState(row.state) in SETTLED:
                return payout_view(row)
        crashpoint("payout.during_settlement")
        if row.channel == PaymentChannel.ALIPAY.value:
            answer = await self.alipay.query(
                trade_no=row.transaction_id or "", out_request_no=row.out_refund_no
            )
        else:
            answer = await self.wechat.query(out_refund_no=row.out_refund_no)
        if answer.state is PayoutState.PENDING:
            # The gateway never received the refund call (lost before it arrived): send it again
            # under the same number, which cannot pay twice.
            answer = await self._call_gateway(row)
        return await self._save(req.out_refund_no, answer)

    async def _call_gateway(self, row: PayoutRow) -> GatewayRefund:
        if row.channel == PaymentChannel.ALIPAY.value:
            return await self.alipay.refund(
                trade_no=row.transaction_id or "",
                out_request_no=row.out_refund_no,
                amount=row.amount,
                reason=row.reason,
            )
        if row.channel == PaymentChannel.WECHAT.value:
            return await self.wechat.refund(
                transaction_id=row.transaction_id or "",
                out_refund_no=row.out_refund_no,
                amount=row.amount,
                total=row.payment_total,
                reason=row.reason,
                notify_url=self.notify_url,
            )
        raise ApplicationError(
            f"no gateway for {row.channel}", type="GatewayRefused", non_retryable=True
        )

    async def _save(self, out_refund_no: str, answer: GatewayRefund) -> PayoutView:
        async with self.sessions.begin() as session:
            row = await session.get(PayoutRow, out_refund_no)
            assert row is not None
            await self._record(session, row, answer.state, answer.gateway_refund_id, utcnow())
            return payout_view(row)

    async def _record(
        self,
        session: AsyncSession,
        row: PayoutRow,
        state: PayoutState,
        gateway_refund_id: str | None,
        now: datetime,
        *,
        note: str = "",
    ) -> None:
        if PayoutState(row.state) in SETTLED:
            return
        row.state = state.value
        row.gateway_refund_id = gateway_refund_id or row.gateway_refund_id
        row.updated_at = now
        if state not in SETTLED:
            return
        row.settled_at = now
        if state is PayoutState.SUCCEEDED:
            # The merchant funds the refund; the money leaves through the channel's clearing
            # account, or lands in the buyer's wallet.
            to = (
                ledger.buyer_balance(row.buyer_id)
                if row.channel == PaymentChannel.BALANCE.value
                else ledger.clearing(row.channel)
            )
            await ledger.post(
                session,
                f"refund:{row.refund_id}:payout:{row.attempt}",
                {ledger.merchant_settlement(row.merchant_id): -row.amount, to: row.amount},
                currency=row.currency,
                now=now,
                refund_id=row.refund_id,
                memo=f"refund paid via {row.channel}",
            )
        await audit.append(
            session,
            event_key=f"payout:{row.out_refund_no}:{state.value}",
            actor="worker",
            action=f"payout.{state.value}",
            subject=f"refund:{row.refund_id}",
            payload={
                "out_refund_no": row.out_refund_no,
                "channel": row.channel,
                "amount": row.amount,
                "gateway_refund_id": row.gateway_refund_id,
                "note": note,
            },
            at=now,
        )


def _pending_row(req: PayoutRequest, now: datetime) -> dict[str, object]:
    return {
        "out_refund_no": req.out_refund_no,
        "refund_id": req.refund_id,
        "attempt": req.attempt,
        "payment_id": req.payment_id,
        "transaction_id": req.transaction_id,
        "channel": req.channel.value,
        "amount": req.amount,
        "payment_total": req.payment_total,
        "currency": req.currency,
        "buyer_id": req.buyer_id,
        "merchant_id": req.merchant_id,
        "reason": req.reason[:80],
        "state": PayoutState.PENDING.value,
        "created_at": now,
        "updated_at": now,
        "settled_at": None,
    }

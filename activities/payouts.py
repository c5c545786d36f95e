"""Paying the buyer back through the original route (Alipay, WeChat Pay...) or to their
platform balance, exactly once — and never on a guess.

The payout row is committed *before* the gateway is called and carries the gateway's
idempotency key (`out_refund_no`, from refund id and attempt). A worker that dies
after the gateway accepted but before this activity completed retries with the same
number, and the gateway answers with the refund it already made.

What a gateway says is recorded as it was said: a verified refusal is FAILED (the only
answer besides a verified CLOSED that lets the workflow try another route); an answer that
cannot be verified (bad or missing signature) is UNKNOWN, and only a signed query settles
it; a transient failure is raised so Temporal retries under the same number. Which route
a payout takes is looked up in the `Gateways` registry; nothing here knows a channel by
name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.crashpoints import crashpoint
from activities.heartbeat import heartbeating
from domain.model import utcnow
from domain.refund import PayoutView
from domain.types import PayoutState
from peers.payouts import (
    AbnormalRefundRequest,
    AnswerUntrusted,
    GatewayError,
    GatewayRefund,
    GatewayRefused,
    Gateways,
    PayoutGateway,
    RefundOrder,
    RescuesAbnormalRefunds,
    UnknownChannel,
)
from store import audit, holds, ledger
from store.db import SessionFactory
from store.models import PayoutRow
from store.refunds import payout_view
from store.upsert import insert_ignore
from workflows.messages import AbandonPayout, AbnormalRescue, PayoutRequest, SettlementQuery


class Payouts:
    def __init__(
        self,
        sessions: SessionFactory,
        *,
        gateways: Gateways,
        reads: SessionFactory | None = None,
    ) -> None:
        self.sessions = sessions
        self.reads = reads or sessions
        self.gateways = gateways

    @activity.defn(name="send_payout")
    async def send_payout(self, req: PayoutRequest) -> PayoutView:
        async with heartbeating():
            return await self._send_payout(req)

    async def _send_payout(self, req: PayoutRequest) -> PayoutView:
        gateway = self._gateway(req.channel)
        now = utcnow()
        async with self.sessions.begin() as session:
            await insert_ignore(session, PayoutRow, [_pending_row(req, now)])
            row = await session.get(PayoutRow, req.out_refund_no)
            assert row is not None
            if row.state is not PayoutState.PENDING:
                return payout_view(row)  # a retry after an answer was recorded
            if gateway.instant:
                answer = await gateway.send_refund(_order(row))
                await self._record(session, row, gateway, answer.state, answer.raw_status, now)
                return payout_view(row)
        # Committed: the intent is on record before any money can move.
        crashpoint("payout.before_gateway")
        order = _order(row)
        try:
            answer = await gateway.send_refund(order)
        except GatewayRefused as refused:
            await self._save(gateway, order, PayoutState.FAILED, refused.codes)
            raise ApplicationError(
                str(refused),
                refused.code,
                refused.sub_code,
                type="GatewayRefused",
                non_retryable=True,
            ) from refused
        except AnswerUntrusted as untrusted:
            return await self._save(gateway, order, PayoutState.UNKNOWN, untrusted.codes)
        # GatewayUnavailable propagates: Temporal retries with the same number.
        crashpoint("payout.after_gateway")
        if answer.state is PayoutState.PROCESSING and activity.info().attempt > 1:
            answer = await self._settled_since(gateway, order, answer)
        return await self._save(gateway, order, answer.state, answer.raw_status, answer)

    @staticmethod
    async def _settled_since(
        gateway: PayoutGateway, order: RefundOrder, answer: GatewayRefund
    ) -> GatewayRefund:
        """A retried send (its worker died mid-call) that answers "processing" is most likely
        a repeat of a refund the gateway already made (Alipay: fund_change N): ask at once
        rather than after the settlement back-off. Any doubt leaves it processing."""
        try:
            found = await gateway.query_refund(order)
        except GatewayError:
            return answer
        return found if found.state.settled else answer

    @activity.defn(name="query_payout")
    async def query_payout(self, req: SettlementQuery) -> PayoutView:
        async with heartbeating():
            return await self._query_payout(req)

    async def _query_payout(self, req: SettlementQuery) -> PayoutView:
        row = await self._row(req.out_refund_no)
        if row.state.settled:
            return payout_view(row)
        gateway = self._gateway(row.channel)
        order = _order(row)
        crashpoint("payout.during_settlement")
        try:
            answer = await gateway.query_refund(order)
            if answer.state is PayoutState.PENDING:
                # The gateway never received the refund call (lost before it arrived): send it
                # again under the same number, which cannot pay twice.
                answer = await gateway.send_refund(order)
        except (GatewayRefused, AnswerUntrusted) as unknown:
            # A refused *query* or an unverifiable answer says nothing about the refund.
            return await self._save(gateway, order, PayoutState.UNKNOWN, unknown.codes)
        return await self._save(gateway, order, answer.state, answer.raw_status, answer)

    @activity.defn(name="rescue_abnormal_payout")
    async def rescue_abnormal_payout(self, req: AbnormalRescue) -> PayoutView:
        """Send an ABNORMAL refund to a bank card instead (WeChat's abnormal-refund call)."""
        async with heartbeating():
            row = await self._row(req.out_refund_no)
            if row.state is not PayoutState.ABNORMAL:
                return payout_view(row)  # it moved on meanwhile (or a retry after success)
            gateway = self._gateway(row.channel)
            if not isinstance(gateway, RescuesAbnormalRefunds) or not row.gateway_refund_id:
                raise ApplicationError(
                    f"{row.channel} has no abnormal-refund call",
                    type="RescueUnsupported",
                    non_retryable=True,
                )
            order = _order(row)
            request = AbnormalRefundRequest(
                to=req.to,
                bank_type=req.bank_type,
                bank_account=req.bank_account,
                real_name=req.real_name,
                encrypted_with=req.encrypted_with,
            )
            try:
                answer = await gateway.rescue_abnormal_refund(order, row.gateway_refund_id, request)
            except GatewayRefused as refused:
                raise ApplicationError(
                    str(refused),
                    refused.code,
                    refused.sub_code,
                    type="GatewayRefused",
                    non_retryable=True,
                ) from refused
            except AnswerUntrusted as untrusted:
                return await self._save(gateway, order, PayoutState.UNKNOWN, untrusted.codes)
            return await self._save(gateway, order, answer.state, answer.raw_status, answer)

    @activity.defn(name="abandon_payout")
    async def abandon_payout(self, req: AbandonPayout) -> PayoutView:
        """A person checked that the route moved no money and never will: the payout is
        FAILED on their word (who and why go to the audit log), so another route may pay."""
        async with self.sessions.begin() as session:
            row = await session.get(PayoutRow, req.out_refund_no)
            if row is None:
                raise ApplicationError(
                    f"no payout {req.out_refund_no}", type="UnknownPayout", non_retryable=True
                )
            await self._record(
                session,
                row,
                self._gateway(row.channel),
                PayoutState.FAILED,
                f"ABANDONED_BY:{req.operator}",
                utcnow(),
                actor=f"operator:{req.operator}",
                note=req.note,
            )
            return payout_view(row)

    # ------------------------------------------------------------------ helpers
    def _gateway(self, channel: str) -> PayoutGateway:
        try:
            return self.gateways[channel]
        except UnknownChannel as err:
            raise ApplicationError(str(err), type="UnknownChannel", non_retryable=True) from err

    async def _row(self, out_refund_no: str) -> PayoutRow:
        async with self.reads() as session:
            row = await session.get(PayoutRow, out_refund_no)
        if row is None:
            raise ApplicationError(
                f"no payout {out_refund_no}", type="UnknownPayout", non_retryable=True
            )
        return row

    async def _save(
        self,
        gateway: PayoutGateway,
        order: RefundOrder,
        state: PayoutState,
        status: str,
        answer: GatewayRefund | None = None,
    ) -> PayoutView:
        async with self.sessions.begin() as session:
            row = await session.get(PayoutRow, order.out_refund_no)
            assert row is not None
            await self._record(
                session,
                row,
                gateway,
                state,
                status,
                utcnow(),
                gateway_refund_id=answer.gateway_refund_id if answer else None,
            )
            return payout_view(row)

    async def _record(
        self,
        session: AsyncSession,
        row: PayoutRow,
        gateway: PayoutGateway,
        state: PayoutState,
        status: str,
        now: datetime,
        *,
        gateway_refund_id: str | None = None,
        actor: str = "worker",
        note: str = "",
    ) -> None:
        if row.state.settled:
            return  # a final state never changes (a late retry, a duplicate notification)
        previous = row.state
        row.state = state
        row.gateway_refund_id = gateway_refund_id or row.gateway_refund_id
        row.gateway_status = status[:128] or row.gateway_status
        row.updated_at = now
        if state.settled:
            row.settled_at = now
        if state is PayoutState.SUCCEEDED:
            # The merchant funds the refund; the money leaves through the channel's clearing
            # account, or lands in the buyer's wallet.
            # A balance payout takes the money its refund held first (`store.holds`).
            to = (
                ledger.buyer_balance(row.buyer_id)
                if gateway.instant
                else ledger.clearing(row.channel)
            )
            await holds.post_payout(
                session,
                txn_id=f"refund:{row.refund_id}:payout:{row.attempt}",
                refund_id=row.refund_id,
                merchant_id=row.merchant_id,
                to=to,
                amount=row.amount,
                currency=row.currency,
                from_hold=gateway.instant,
                now=now,
                memo=f"refund paid via {row.channel}",
            )
        if state is previous or state in (PayoutState.PROCESSING, PayoutState.PENDING):
            return
        await audit.append(
            session,
            event_key=f"payout:{row.out_refund_no}:{state.value}",
            actor=actor,
            action=f"payout.{state.value}",
            subject=f"refund:{row.refund_id}",
            payload={
                "out_refund_no": row.out_refund_no,
                "channel": row.channel,
                "amount": row.amount,
                "gateway_refund_id": row.gateway_refund_id,
                "gateway_status": row.gateway_status,
                "note": note,
            },
            at=now,
        )


def _order(row: PayoutRow) -> RefundOrder:
    return RefundOrder(
        out_refund_no=row.out_refund_no,
        transaction_id=row.transaction_id,
        amount=row.amount,
        payment_total=row.payment_total,
        currency=row.currency,
        reason=row.reason,
    )


def _pending_row(req: PayoutRequest, now: datetime) -> dict[str, object]:
    return {
        "out_refund_no": req.out_refund_no,
        "refund_id": req.refund_id,
        "attempt": req.attempt,
        "payment_id": req.payment_id,
        "transaction_id": req.transaction_id,
        "channel": req.channel,
        "amount": req.amount,
        "payment_total": req.payment_total,
        "currency": req.currency,
        "buyer_id": req.buyer_id,
        "merchant_id": req.merchant_id,
        "reason": req.reason[:80],
        "state": PayoutState.PENDING,
        "created_at": now,
        "updated_at": now,
        "settled_at": None,
        "gateway_status": None,
    }

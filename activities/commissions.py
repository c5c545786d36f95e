"""Distributors' commissions while a refund is open (`store.commissions` moves them)."""

from __future__ import annotations

from temporalio import activity

from domain.model import utcnow
from store import commissions
from store.db import SessionFactory
from workflows.messages import CommissionAnswer, CommissionRequest


class Commissions:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn(name="move_commissions")
    async def move_commissions(self, req: CommissionRequest) -> CommissionAnswer:
        async with self.sessions.begin() as session:
            moved = await commissions.move_commissions(
                session,
                refund_id=req.refund_id,
                order_id=req.order_id,
                merchant_id=req.merchant_id,
                currency=req.currency,
                action=req.action,
                refund_amount=req.refund_amount,
                order_amount=req.order_amount,
                now=utcnow(),
            )
            return CommissionAnswer(commissions=moved)

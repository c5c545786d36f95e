"""Risk: the facts from the database (`store.risk`), the level and signals from the pure
`domain.risk.assess`, so the same facts always give the same answer."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from domain.policy import Policy
from domain.refund import RiskAssessment
from domain.risk import assess
from store import risk
from store.db import SessionFactory
from workflows.messages import RiskRequest


class RiskChecks:
    def __init__(self, reads: SessionFactory, *, policy: Callable[[], Policy]) -> None:
        self.reads = reads
        self.policy = policy

    @activity.defn(name="assess_risk")
    async def assess_risk(self, req: RiskRequest) -> RiskAssessment:
        async with self.reads() as session:
            return await assess_refund(session, req, self.policy())


async def assess_refund(session: AsyncSession, req: RiskRequest, policy: Policy) -> RiskAssessment:
    """The refund's risk: facts from the database, judged by the pure `domain.risk.assess`."""
    facts = await risk.risk_facts(
        session,
        refund_id=req.refund_id,
        buyer_id=req.buyer_id,
        device_id=req.client.device_id if req.client else None,
        ip=req.client.ip if req.client else None,
        card_key_ids=req.card_key_ids,
        skus=req.skus,
        at=req.at,
    )
    return assess(facts, policy)

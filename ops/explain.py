"""Why would (or did) this order get this answer? Replays the decision for an order and a
hypothetical time, reason and items, without creating a refund: support staff answer
"why" with the same function the workflow decides with."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from domain import rules
from domain.decision import Decision, DecisionCase
from domain.model import Identifier, Model, ShortText, UtcDatetime, utcnow
from domain.order import CardKeyRef, Order
from domain.policy import Policy
from domain.refund import RefundItemRequest, RiskAssessment
from domain.replacement import replacement_mode
from domain.risk import assess
from domain.types import KeyState, RefundReason, ReplacementMode
from peers.supplier import SupplierClient
from store import orders, replacements
from store import refunds as refund_rows
from store.risk import risk_facts


class ExplainRequest(Model):
    order_id: Identifier
    reason: RefundReason
    reason_text: ShortText = ""
    items: list[RefundItemRequest] | None = Field(default=None, min_length=1, max_length=200)
    at: UtcDatetime | None = None  # default: now
    # Assume these supplier answers instead of asking the supplier.
    key_states: dict[Identifier, KeyState] | None = Field(default=None, max_length=1000)


class Explanation(Model):
    order_id: str
    at: datetime
    decision: Decision
    risk: RiskAssessment
    key_states: dict[str, KeyState]
    policy_version: str
    # For an invalid key: whether a fresh key may be had instead of money (`domain.replacement`).
    replacement: ReplacementMode = ReplacementMode.OFF


class UnknownOrder(LookupError):
    pass


async def explain(
    session: AsyncSession, supplier: SupplierClient | None, policy: Policy, req: ExplainRequest
) -> Explanation:
    order = await orders.load_order(session, req.order_id)
    if order is None:
        raise UnknownOrder(req.order_id)
    order, replaced_keys = await replacements.with_replacements(session, order)
    at = req.at or utcnow()
    items = req.items or [
        RefundItemRequest(item_id=i.item_id, quantity=i.quantity) for i in order.items
    ]
    keys = _keys(order, items)
    states = req.key_states if req.key_states is not None else await _ask_supplier(supplier, keys)
    facts = await risk_facts(
        session,
        refund_id="(explain)",
        buyer_id=order.buyer_id,
        device_id=order.client.device_id if order.client else None,
        ip=order.client.ip if order.client else None,
        card_key_ids=[k.card_key_id for k in keys],
        skus=sorted({i.sku for i in order.items}),
        at=at,
    )
    risk = assess(facts, policy)
    case = DecisionCase(
        order=order,
        items=items,
        already_refunded=await refund_rows.refunded_quantities(session, order.order_id),
        key_states=states,
        risk=risk,
        reason=req.reason,
        reason_text=req.reason_text,
        now=at,
        replaced_keys=replaced_keys,
    )
    offered = (
        replacement_mode(order, items, policy, replaced_keys=replaced_keys)
        if req.reason is RefundReason.INVALID_KEY
        else ReplacementMode.OFF
    )
    return Explanation(
        order_id=order.order_id,
        at=at,
        decision=rules.decide(case, policy),
        risk=risk,
        key_states=states,
        policy_version=policy.version,
        replacement=offered,
    )


def _keys(order: Order, items: list[RefundItemRequest]) -> list[CardKeyRef]:
    wanted = {i.item_id for i in items}
    return [k for item in order.items if item.item_id in wanted for k in item.card_keys]


async def _ask_supplier(
    supplier: SupplierClient | None, keys: list[CardKeyRef]
) -> dict[str, KeyState]:
    if supplier is None or not keys:
        return {k.card_key_id: KeyState.UNREACHABLE for k in keys}

    async def one(k: CardKeyRef) -> KeyState:
        try:
            return await supplier.query_key(k.supplier, k.card_key_id)
        except Exception:  # unreachable is an answer here, as it is for the workflow
            return KeyState.UNREACHABLE

    answers = await asyncio.gather(*(one(k) for k in keys))
    return {k.card_key_id: s for k, s in zip(keys, answers, strict=True)}

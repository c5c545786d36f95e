"""The IncidentWorkflow's steps: the dry run, starting a batch of refunds, and reading what
they became. Thin: the selection and the facts come from `store.incidents`, every verdict
from the pure `domain.incident`, every refund is stored by `store.refunds.insert_refund` and
started by `workflow_api.starter` — exactly as a buyer's refund is — so an incident has no
refund path of its own."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.client import Client

from activities.crashpoints import crashpoint
from domain.incident import (
    INCIDENT_CALLER,
    PlannedOrder,
    PlanSummary,
    SkipReason,
    affected_items,
    incident_idempotency_key,
    incident_refund_id,
    plan_order,
)
from domain.incident_run import IncidentOutcomes, IncidentReport
from domain.model import utcnow
from domain.order import CardKeyRef, Order
from domain.policy import Policy
from domain.refund import RefundItemRequest, RefundRequest
from domain.types import KeyState, OrderStatus
from peers.supplier import SupplierClient
from store import incidents, orders
from store import refunds as refund_rows
from store.db import SessionFactory
from store.incident_rows import IncidentOrderRow
from store.models import RefundRow
from workflow_api import starter
from workflows.incident_messages import (
    BatchAnswer,
    BatchRequest,
    IncidentRecord,
    OutcomesRequest,
    PlanAnswer,
    PlanRequest,
)
from workflows.messages import RefundInput

# The dry run reads and judges the matched orders a page at a time (one heartbeat each).
PLAN_PAGE = 500
# Supplier questions in flight at once during the dry run.
SUPPLIER_IN_FLIGHT = 32


class IncidentSteps:
    def __init__(
        self,
        sessions: SessionFactory,
        *,
        policy: Callable[[], Policy],
        supplier: SupplierClient | None,
        temporal: Client | None,
        task_queue: str,
        reads: SessionFactory | None = None,
    ) -> None:
        self.sessions = sessions
        self.reads = reads or sessions
        self.policy = policy
        self.supplier = supplier
        self.temporal = temporal
        self.task_queue = task_queue

    # ------------------------------------------------------------------ the dry run
    @activity.defn(name="plan_incident")
    async def plan_incident(self, req: PlanRequest) -> PlanAnswer:
        """Judge every matched order and store the verdicts (afresh: an earlier dry run of
        the same incident is forgotten, its refunds are not — they make orders skipped)."""
        policy = self.policy()
        async with self.reads() as session:
            order_ids = await incidents.matching_order_ids(session, req.selection)
        async with self.sessions.begin() as session:
            await incidents.clear_plan(session, req.incident_id)
        summary = PlanSummary()
        position = 0
        for first in range(0, len(order_ids), PLAN_PAGE):
            activity.heartbeat(first)
            page = order_ids[first : first + PLAN_PAGE]
            async with self.reads() as session:
                found = await orders.load_orders(session, page)
                taken = await incidents.refunded_quantities_of(session, page)
                held = await incidents.open_items_of(session, page)

            def judge(
                order: Order,
                states: dict[str, KeyState],
                taken: dict[str, dict[str, int]] = taken,
                held: dict[str, set[str]] = held,
            ) -> PlannedOrder:
                return plan_order(
                    order,
                    req.selection,
                    already_refunded=taken.get(order.order_id, {}),
                    open_items=held.get(order.order_id, set()),
                    key_states=states,
                )

            # Ask the supplier only about the keys of orders that would otherwise be refunded.
            keys = [
                key
                for order_id in page
                if (order := found.get(order_id)) is not None and judge(order, {}).skip is None
                for item in affected_items(order, req.selection)
                for key in item.card_keys
            ]
            states = await self._key_states(keys)
            planned: list[tuple[int, PlannedOrder]] = []
            for order_id in page:
                order = found.get(order_id)
                if order is None:
                    continue
                position += 1
                verdict = judge(order, states)
                summary.add(verdict, paid=order.amount)
                planned.append((position, verdict))
            async with self.sessions.begin() as session:
                await incidents.add_planned(session, req.incident_id, planned)
        return PlanAnswer(summary=summary, limits=policy.incidents)

    async def _key_states(self, keys: Sequence[CardKeyRef]) -> dict[str, KeyState]:
        """What the supplier says of each key; a key it cannot answer for does not block the
        incident (its refund asks again, and voids the key before paying)."""
        if self.supplier is None or not keys:
            return {}
        supplier = self.supplier
        gate = asyncio.Semaphore(SUPPLIER_IN_FLIGHT)

        async def one(key: CardKeyRef) -> KeyState:
            async with gate:
                try:
                    return await supplier.query_key(key.supplier, key.card_key_id)
                except Exception:  # unreachable is an answer here, as for `refundctl explain`
                    return KeyState.UNREACHABLE

        answers = await asyncio.gather(*(one(k) for k in keys))
        return {k.card_key_id: s for k, s in zip(keys, answers, strict=True)}

    # ------------------------------------------------------------------ starting refunds
    @activity.defn(name="start_incident_refunds")
    async def start_incident_refunds(self, req: BatchRequest) -> BatchAnswer:
        """Store the refunds of the next orders (one transaction) and start their workflows.

        Safe to repeat after a crash at any point: an order whose refund is stored keeps it
        (its id comes from the incident and the order), and starting a refund's workflow
        again finds the one already running."""
        assert self.temporal is not None, "the worker wires a Temporal client"
        now = utcnow()
        skipped: dict[SkipReason, int] = {}
        to_start: list[RefundInput] = []
        async with self.sessions.begin() as session:
            rows = await incidents.next_to_start(
                session, req.incident_id, after_position=req.after_position, limit=req.limit
            )
            found = await orders.load_orders(session, [r.order_id for r in rows])
            for row in rows:
                if row.refund_id is None:
                    why = await self._store_refund(session, req, row, found.get(row.order_id))
                    if why is not None:
                        row.skip_reason, row.skipped_at_start = why, True
                        skipped[why] = skipped.get(why, 0) + 1
                        continue
                    row.started_at = now
                assert row.refund_id is not None
                stored = await refund_rows.awaiting_start(session, row.refund_id)
                if stored is not None:
                    to_start.append(starter.refund_input(*stored))
        # After the commit, as intake does: the refunds exist before their workflows do. A
        # worker dying here leaves refunds stored but not started: the batch, repeated, finds
        # them (`next_to_start` still lists them) and starts them (tests/crash).
        crashpoint("incident.before_start")
        temporal = self.temporal

        async def start(inp: RefundInput) -> None:
            await starter.start(temporal, inp, task_queue=self.task_queue)
            activity.heartbeat()

        await asyncio.gather(*(start(inp) for inp in to_start))
        async with self.reads() as session:
            outcomes = await incidents.outcomes(session, req.incident_id)
        started = sum(1 for r in rows if r.refund_id is not None and r.skip_reason is None)
        return BatchAnswer(
            started=started,
            skipped=skipped,
            last_position=max((r.position for r in rows), default=req.after_position),
            exhausted=len(rows) < req.limit,
            outcomes=outcomes,
        )

    async def _store_refund(
        self, session: AsyncSession, req: BatchRequest, row: IncidentOrderRow, order: Order | None
    ) -> SkipReason | None:
        """Store the order's refund as intake would, unless the order changed since the dry
        run (paid back meanwhile, a buyer's own refund opened): then why it is skipped."""
        refund_id = incident_refund_id(req.incident_id, row.order_id)
        if await session.get(RefundRow, refund_id) is not None:
            # Made by an earlier declaration of this incident: that refund it stays.
            row.refund_id = refund_id
            return None
        if order is None or order.status is OrderStatus.CANCELLED:
            return SkipReason.ORDER_CANCELLED
        if order.status is OrderStatus.UNPAID:
            return SkipReason.UNPAID
        planned = incidents.planned_items(row)
        if await refund_rows.open_claim(session, order.order_id, [i.item_id for i in planned]):
            return SkipReason.REFUND_OPEN
        taken = await refund_rows.refunded_quantities(session, order.order_id)
        items = []
        for wanted in planned:
            item = order.item(wanted.item_id)
            left = item.quantity - taken.get(item.item_id, 0) if item is not None else 0
            if left > 0:
                items.append(
                    RefundItemRequest(item_id=wanted.item_id, quantity=min(left, wanted.quantity))
                )
        if not items:
            return SkipReason.ALREADY_REFUNDED
        request = RefundRequest(
            order_id=order.order_id,
            buyer_id=order.buyer_id,
            reason=req.refund_reason,
            reason_text=req.reason,
            items=items,
        )
        await refund_rows.insert_refund(
            session,
            refund_rows.NewRefund(
                refund_id=refund_id,
                request=request,
                order=order,
                items=items,
                caller=INCIDENT_CALLER,
                idempotency_key=incident_idempotency_key(req.incident_id, order.order_id),
                request_hash=_request_hash(request),
                now=utcnow(),
                incident_id=req.incident_id,
                destination=req.destination,
            ),
        )
        row.refund_id = refund_id
        return None

    # ------------------------------------------------------------------ outcomes, records
    @activity.defn(name="incident_outcomes")
    async def incident_outcomes(self, req: OutcomesRequest) -> IncidentOutcomes:
        async with self.reads() as session:
            return await incidents.outcomes(session, req.incident_id)

    @activity.defn(name="incident_report")
    async def incident_report(self, req: OutcomesRequest) -> IncidentReport:
        async with self.reads() as session:
            return await incidents.report(session, req.incident_id)

    @activity.defn(name="record_incident")
    async def record_incident(self, record: IncidentRecord) -> None:
        async with self.sessions.begin() as session:
            await incidents.record_status(
                session, record.incident_id, seq=record.seq, status=record.status, now=utcnow()
            )


def _request_hash(request: RefundRequest) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()

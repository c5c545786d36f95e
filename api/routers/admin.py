"""Operators' endpoints: blacklists for risk control, the policy in force, replaying a
decision ("why?"), and the ledger's and audit log's self-checks (with every supplier's claims
for its bad keys, as `refundctl reconcile` prints them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, StringConstraints
from sqlalchemy import delete, select

from api.deps import Admin, ReadSessionDep, Reviewer, SessionDep
from api.openapi import problem_responses
from api.problems import Problem
from domain.model import Identifier, utcnow
from domain.policy import CurrentPolicy
from ops.explain import ExplainRequest, Explanation, UnknownOrder, explain
from ops.reconcile import over_refund_alert
from store import audit, conservation, ledger
from store.models import BlacklistRow, NotificationRow
from store.supplier_claims import SupplierClaims, per_supplier
from store.upsert import insert_ignore

# The alert `GET /checks` raises for an over-refunded order: one per order, however often
# the checks run (reconciliation alerts use negative day numbers).
OVER_REFUND_ALERT_SEQ = -1

router = APIRouter(prefix="/v1/admin", tags=["admin"])

BlacklistKind = Literal["buyer", "device", "ip"]


class BlacklistEntry(BaseModel):
    kind: BlacklistKind
    value: str
    reason: str
    created_at: datetime


class BlacklistBody(BaseModel):
    # The column holds 500 characters (a longer reason was a 500 on PostgreSQL); no NUL.
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]


class Blacklist(BaseModel):
    entries: list[BlacklistEntry]


def _entry(row: BlacklistRow) -> BlacklistEntry:
    return BlacklistEntry.model_validate(
        {"kind": row.kind, "value": row.value, "reason": row.reason, "created_at": row.created_at}
    )


@router.get("/blacklist", summary="Blacklisted buyers, devices and IPs")
async def list_blacklist(
    session: ReadSessionDep, _: Admin, kind: BlacklistKind | None = None
) -> Blacklist:
    stmt = select(BlacklistRow).order_by(BlacklistRow.kind, BlacklistRow.value)
    if kind:
        stmt = stmt.where(BlacklistRow.kind == kind)
    return Blacklist(entries=[_entry(r) for r in await session.scalars(stmt)])


@router.put("/blacklist/{kind}/{value}", summary="Blacklist a buyer, device or IP")
async def put_blacklist(
    kind: BlacklistKind,
    value: Annotated[Identifier, Path()],
    body: BlacklistBody,
    session: SessionDep,
    _: Admin,
) -> BlacklistEntry:
    async with session.begin():
        row = await session.get(BlacklistRow, (kind, value))
        if row is None:
            row = BlacklistRow(kind=kind, value=value, reason=body.reason, created_at=utcnow())
            session.add(row)
        else:
            row.reason = body.reason
        await audit.append(
            session,
            event_key=f"blacklist:{kind}:{value}:{utcnow().isoformat()}",
            actor="admin",
            action="blacklist.put",
            subject=f"{kind}:{value}",
            payload={"reason": body.reason},
            at=utcnow(),
        )
    return _entry(row)


@router.delete(
    "/blacklist/{kind}/{value}",
    status_code=204,
    summary="Remove from the blacklist",
    responses=problem_responses(404),
)
async def delete_blacklist(
    kind: BlacklistKind, value: Annotated[Identifier, Path()], session: SessionDep, _: Admin
) -> Response:
    async with session.begin():
        result = await session.execute(
            delete(BlacklistRow).where(BlacklistRow.kind == kind, BlacklistRow.value == value)
        )
        if not getattr(result, "rowcount", 0):
            raise Problem(404, "not-found", "Not on the blacklist", f"{kind} {value}")
        await audit.append(
            session,
            event_key=f"blacklist:{kind}:{value}:del:{utcnow().isoformat()}",
            actor="admin",
            action="blacklist.delete",
            subject=f"{kind}:{value}",
            payload={},
            at=utcnow(),
        )
    return Response(status_code=204)


class PolicyStatus(BaseModel):
    version: str
    name: str
    path: str | None
    last_error: str | None


@router.get("/policy", summary="The decision policy in force (as this process reads it)")
async def policy_status(request: Request, _: Admin) -> PolicyStatus:
    current: CurrentPolicy = request.app.state.policy
    policy = current.get()
    return PolicyStatus(
        version=policy.version,
        name=policy.name,
        path=str(current.path) if current.path else None,
        last_error=current.last_error,
    )


@router.post(
    "/explain",
    summary="Replay the decision for an order without creating a refund",
    responses=problem_responses(404),
)
async def explain_decision(
    req: ExplainRequest, request: Request, session: ReadSessionDep, _: Reviewer
) -> Explanation:
    try:
        return await explain(
            session, request.app.state.supplier, request.app.state.policy.get(), req
        )
    except UnknownOrder:
        raise Problem(
            404,
            "not-found",
            "Unknown order",
            f"no order {req.order_id}",
            errors=[{"field": "order_id", "message": "unknown order"}],
        ) from None


class OverRefund(BaseModel):
    order_id: str
    paid: int
    refunded: int
    detail: str


class Checks(BaseModel):
    ledger_balanced: bool
    trial_balance: dict[str, int]
    audit_entries: int
    audit_ok: bool
    audit_problem: str
    # No order got back more than it paid, counting every route and every payout whose
    # outcome is not verified as "no money moved".
    money_conserved: bool
    over_refunds: list[OverRefund]
    # Per supplier, claims for the keys it confirmed invalid: open, recovered, written off.
    supplier_claims: list[SupplierClaims] = []


@router.get(
    "/checks",
    summary="Ledger trial balance, audit-chain verification, money conservation and claims "
    "against suppliers",
    description="An order that got back more than it paid also raises a supervisor alert.",
)
async def checks(session: ReadSessionDep, writes: SessionDep, _: Admin) -> Checks:
    totals = await ledger.trial_balance(session)
    verified = await audit.verify(session)
    over = await conservation.breaches(session)
    claims = await per_supplier(session)
    if over:
        now = utcnow()
        await insert_ignore(
            writes,
            NotificationRow,
            [over_refund_alert(b, seq=OVER_REFUND_ALERT_SEQ, now=now) for b in over],
        )
        await writes.commit()
    return Checks(
        ledger_balanced=all(v == 0 for v in totals.values()),
        trial_balance=totals,
        audit_entries=verified.entries,
        audit_ok=verified.ok,
        audit_problem=verified.problem,
        money_conserved=not over,
        over_refunds=[
            OverRefund(order_id=b.order_id, paid=b.paid, refunded=b.refunded, detail=b.describe())
            for b in over
        ],
        supplier_claims=claims,
    )

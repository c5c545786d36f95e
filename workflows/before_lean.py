"""How refunds recorded before the lean path (`LEAN_REFUND`) opened their case: four local
activities — the case file, the commission freeze, a "checking" report, the risk — where the
lean path takes one (`open_case`). Kept so that their histories replay exactly; new refunds
never come here. Delete once no refund started before the patch is still running."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

from domain.decision import priced_items
from domain.refund import RiskAssessment
from domain.types import CommissionAction, RefundStatus
from workflows import card_keys, steps
from workflows.messages import CaseRequest, RiskRequest
from workflows.options import DB_RETRY, DB_TIMEOUT

if TYPE_CHECKING:
    from workflows.refund import RefundWorkflow

# The patch that introduced the lean path: one local activity to open the case, the supplier
# asked in the workflow's own task, progress reported when the refund rests or ends, search
# attributes published once per stage.
LEAN_REFUND = "lean-refund"


async def open_case(wf: RefundWorkflow) -> tuple[dict[str, int], RiskAssessment] | None:
    inp = wf.inp
    case = await workflow.execute_local_activity(
        steps.load_case,
        CaseRequest(refund_id=inp.refund_id, order_id=inp.order_id),
        start_to_close_timeout=DB_TIMEOUT,
        retry_policy=DB_RETRY,
    )
    if case.order is None:
        return None
    wf.order, wf.policy = case.order, case.policy
    wf.view.items = priced_items(case.order, inp.items)
    await wf._commissions(CommissionAction.FREEZE)
    wf.progress.set_status(RefundStatus.CHECKING, "checking_card_key", "asking the supplier")
    await wf.progress.report()
    keys = card_keys.keys_of(case.order, inp.items)
    risk = await workflow.execute_local_activity(
        steps.assess_risk,
        RiskRequest(
            refund_id=inp.refund_id,
            order_id=inp.order_id,
            buyer_id=inp.buyer_id,
            client=inp.client,
            card_key_ids=[k.card_key_id for k in keys],
            skus=sorted({i.sku for i in case.order.items}),
            at=workflow.now(),
        ),
        start_to_close_timeout=DB_TIMEOUT,
        retry_policy=DB_RETRY,
    )
    return case.already_refunded, risk

"""`workflow_api` names the workflow without importing it; these keep the names and the
workflow's own in step, so a rename in one place fails here instead of in production."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.workflow import _Definition

from domain.refund import RefundItemRequest
from domain.types import RefundReason
from workflow_api import surface
from workflow_api.messages import RefundInput
from workflows import refund as workflow_module
from workflows.refund import RefundWorkflow


def test_the_type_name_is_the_workflows() -> None:
    assert _Definition.must_from_class(RefundWorkflow).name == surface.WORKFLOW_TYPE


def test_search_attribute_keys_match_the_workflows() -> None:
    for name in (
        "REFUND_STATUS",
        "ORDER_ID",
        "MERCHANT_ID",
        "BUYER_ID",
        "REFUND_AMOUNT",
        "RISK_LEVEL",
        "REVIEW_DEADLINE",
    ):
        ours, theirs = getattr(surface, name), getattr(workflow_module, name)
        assert (ours.name, ours.value_type) == (theirs.name, theirs.value_type), name


def test_start_search_attributes_match_the_workflows() -> None:
    inp = RefundInput(
        refund_id="rf_1",
        order_id="O-1",
        buyer_id="U-1",
        merchant_id="M-1",
        reason=RefundReason.OTHER,
        items=[RefundItemRequest(item_id="I-1", quantity=1)],
        amount=500,
        created_at=datetime(2026, 11, 20, tzinfo=UTC),
    )
    ours = surface.start_search_attributes(inp)
    theirs = workflow_module.start_search_attributes(inp)
    assert [(p.key.name, p.value) for p in ours] == [(p.key.name, p.value) for p in theirs]

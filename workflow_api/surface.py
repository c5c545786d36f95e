"""What an SRE and every caller know a refund's workflow by (CONTRACT "Temporal surface"):
its type, its id and its search attributes. Named here rather than taken from the workflow
class, so starting and finding a workflow never imports the activities it runs."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from domain.refund import workflow_id_for
from domain.types import RefundStatus
from workflow_api.messages import RefundInput

__all__ = [
    "BUYER_ID",
    "MERCHANT_ID",
    "ORDER_ID",
    "REFUND_AMOUNT",
    "REFUND_STATUS",
    "REVIEW_DEADLINE",
    "RISK_LEVEL",
    "WORKFLOW_TYPE",
    "start_search_attributes",
    "workflow_id_for",
]

# `@workflow.defn(name=...)` of RefundWorkflow; tests/test_workflow_api.py keeps them equal.
WORKFLOW_TYPE = "RefundWorkflow"

REFUND_STATUS = SearchAttributeKey.for_keyword("RefundStatus")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
MERCHANT_ID = SearchAttributeKey.for_keyword("MerchantId")
BUYER_ID = SearchAttributeKey.for_keyword("BuyerId")
REFUND_AMOUNT = SearchAttributeKey.for_int("RefundAmount")
RISK_LEVEL = SearchAttributeKey.for_keyword("RiskLevel")
REVIEW_DEADLINE = SearchAttributeKey.for_datetime("ReviewDeadline")


def start_search_attributes(inp: RefundInput) -> TypedSearchAttributes:
    """What the starter sets with the start, so a refund is findable at once."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(REFUND_STATUS, RefundStatus.SUBMITTED.value),
            SearchAttributePair(ORDER_ID, inp.order_id),
            SearchAttributePair(MERCHANT_ID, inp.merchant_id),
            SearchAttributePair(BUYER_ID, inp.buyer_id),
            SearchAttributePair(REFUND_AMOUNT, inp.amount),
        ]
    )

"""The search attributes SREs find refunds by (CONTRACT "Temporal surface")."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from domain.types import RefundStatus
from workflows.messages import RefundInput

# `@workflow.defn(name=...)` of RefundWorkflow, for starting one by name (the starter).
WORKFLOW_TYPE = "RefundWorkflow"

REFUND_STATUS = SearchAttributeKey.for_keyword("RefundStatus")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
MERCHANT_ID = SearchAttributeKey.for_keyword("MerchantId")
BUYER_ID = SearchAttributeKey.for_keyword("BuyerId")
REFUND_AMOUNT = SearchAttributeKey.for_int("RefundAmount")
RISK_LEVEL = SearchAttributeKey.for_keyword("RiskLevel")
REVIEW_DEADLINE = SearchAttributeKey.for_datetime("ReviewDeadline")

ALL = (REFUND_STATUS, ORDER_ID, MERCHANT_ID, BUYER_ID, REFUND_AMOUNT, RISK_LEVEL, REVIEW_DEADLINE)


def start_search_attributes(inp: RefundInput) -> TypedSearchAttributes:
    """What the API sets when it starts the workflow, so a refund is findable at once."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(REFUND_STATUS, RefundStatus.SUBMITTED.value),
            SearchAttributePair(ORDER_ID, inp.order_id),
            SearchAttributePair(MERCHANT_ID, inp.merchant_id),
            SearchAttributePair(BUYER_ID, inp.buyer_id),
            SearchAttributePair(REFUND_AMOUNT, inp.amount),
        ]
    )

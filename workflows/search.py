"""The search attributes SREs find refunds by (CONTRACT "Temporal surface"), and incidents
(`IncidentId` on an incident and on every refund it started, `IncidentState`)."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from domain.types import RefundStatus
from workflows.messages import RefundInput

# `@workflow.defn(name=...)` of RefundWorkflow, for starting one by name (the starter).
WORKFLOW_TYPE = "RefundWorkflow"
# ... and of IncidentWorkflow.
INCIDENT_WORKFLOW_TYPE = "IncidentWorkflow"

REFUND_STATUS = SearchAttributeKey.for_keyword("RefundStatus")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
MERCHANT_ID = SearchAttributeKey.for_keyword("MerchantId")
BUYER_ID = SearchAttributeKey.for_keyword("BuyerId")
REFUND_AMOUNT = SearchAttributeKey.for_int("RefundAmount")
RISK_LEVEL = SearchAttributeKey.for_keyword("RiskLevel")
REVIEW_DEADLINE = SearchAttributeKey.for_datetime("ReviewDeadline")
# The Temporal UI lists an incident's refunds with `IncidentId = "..."`.
INCIDENT_ID = SearchAttributeKey.for_keyword("IncidentId")
INCIDENT_STATE = SearchAttributeKey.for_keyword("IncidentState")

ALL = (
    REFUND_STATUS,
    ORDER_ID,
    MERCHANT_ID,
    BUYER_ID,
    REFUND_AMOUNT,
    RISK_LEVEL,
    REVIEW_DEADLINE,
    INCIDENT_ID,
    INCIDENT_STATE,
)


def start_search_attributes(inp: RefundInput) -> TypedSearchAttributes:
    """What the API sets when it starts the workflow, so a refund is findable at once."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(REFUND_STATUS, RefundStatus.SUBMITTED.value),
        SearchAttributePair(ORDER_ID, inp.order_id),
        SearchAttributePair(MERCHANT_ID, inp.merchant_id),
        SearchAttributePair(BUYER_ID, inp.buyer_id),
        SearchAttributePair(REFUND_AMOUNT, inp.amount),
    ]
    if inp.incident is not None:
        pairs.append(SearchAttributePair(INCIDENT_ID, inp.incident.incident_id))
    return TypedSearchAttributes(pairs)

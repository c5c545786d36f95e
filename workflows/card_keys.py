"""The card keys of a refund at their supplier: asked whether they were redeemed before the
decision, voided before any money moves."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as StepTimeout

from domain.order import CardKeyRef, Order
from domain.refund import RefundItemRequest
from domain.types import KeyState
from workflows import steps
from workflows.messages import KeysAnswer, KeysRequest
from workflows.options import (
    SUPPLIER_LOCK_BUDGET,
    SUPPLIER_LOCK_RETRY,
    SUPPLIER_LOCK_TIMEOUT,
    SUPPLIER_QUERY_RETRY,
    SUPPLIER_QUERY_TIMEOUT,
)

# A local activity that gives up (its retries spent, a failure its policy calls final, its
# budget passed) raises its cause itself — an ApplicationError or a TimeoutError — not the
# ActivityError a remote one raises. Before this patch only the latter was caught, so a
# supplier that failed the lean refund's quick query or its lock failed the whole refund.
LOCAL_SUPPLIER_FAILURES = "local-supplier-failures"


def _gave_up_locally() -> bool:
    """Whether this refund handles a local supplier step that gave up (not histories that
    failed on it before the patch: replaying them must fail them again)."""
    return workflow.patched(LOCAL_SUPPLIER_FAILURES)


def keys_of(order: Order | None, items: list[RefundItemRequest]) -> list[CardKeyRef]:
    """The card keys of the items a refund is for."""
    if order is None:
        return []
    wanted = {i.item_id for i in items}
    return [k for item in order.items if item.item_id in wanted for k in item.card_keys]


async def redemption_states(
    refund_id: str, keys: list[CardKeyRef], *, local: bool = False
) -> dict[str, KeyState]:
    """What the supplier says of each key; UNREACHABLE (no evidence either way) when it does
    not answer a few quick tries. `local`: a local activity — a few seconds at most, so it
    runs inside the workflow's own task instead of a round trip through the task queue."""
    if not keys:
        return {}
    request = KeysRequest(refund_id=refund_id, keys=keys)
    try:
        if local:
            answer = await workflow.execute_local_activity(
                steps.query_key_redemption,
                request,
                start_to_close_timeout=SUPPLIER_QUERY_TIMEOUT,
                retry_policy=SUPPLIER_QUERY_RETRY,
            )
        else:
            answer = await workflow.execute_activity(
                steps.query_key_redemption,
                request,
                start_to_close_timeout=SUPPLIER_QUERY_TIMEOUT,
                retry_policy=SUPPLIER_QUERY_RETRY,
            )
    except ActivityError:
        return {k.card_key_id: KeyState.UNREACHABLE for k in keys}
    except (ApplicationError, StepTimeout):
        if not _gave_up_locally():
            raise
        return {k.card_key_id: KeyState.UNREACHABLE for k in keys}
    return dict(answer.states)


async def void(refund_id: str, keys: list[CardKeyRef], *, local: bool = False) -> KeysAnswer | None:
    """Void the keys so they cannot be redeemed while money moves; None when the supplier
    could not do it within the lock budget. `local`: inside the workflow's own task (the
    supplier answers in milliseconds; a slow one is retried there with back-off, the
    supplier's idempotency key making a repeat harmless)."""
    request = KeysRequest(refund_id=refund_id, keys=keys)
    try:
        if local:
            return await workflow.execute_local_activity(
                steps.lock_card_keys,
                request,
                start_to_close_timeout=SUPPLIER_LOCK_TIMEOUT,
                schedule_to_close_timeout=SUPPLIER_LOCK_BUDGET,
                retry_policy=SUPPLIER_LOCK_RETRY,
            )
        return await workflow.execute_activity(
            steps.lock_card_keys,
            request,
            start_to_close_timeout=SUPPLIER_LOCK_TIMEOUT,
            schedule_to_close_timeout=SUPPLIER_LOCK_BUDGET,
            retry_policy=SUPPLIER_LOCK_RETRY,
        )
    except ActivityError:
        return None
    except (ApplicationError, StepTimeout):
        if not _gave_up_locally():
            raise
        return None

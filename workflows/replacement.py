"""A fresh key instead of money (补发), once the old key is voided: reserve one at the supplier
under the refund's idempotency key, hand it to the buyer, and say how it went.

Every way it can end is defined, and none pays or delivers twice:

- delivered: the supplier confirmed the fresh key for the buyer (the refund ends `replaced`);
- not replaced: out of stock, the supplier refused, or no reservation could be made or found
  within the budget; nothing was handed over, so the refund pays as it always did (a
  reservation left behind was never confirmed and lapses at the supplier);
- unsettled: a key was reserved but whether it reached the buyer could not be learnt; a
  person decides rather than paying on top of a key the buyer may hold.

The calls are local activities (the supplier answers in milliseconds; a worker that dies
mid-call hands the workflow task on after its short timeout and the call is made again,
under the same idempotency key)."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as StepTimeout

from domain.refund import ReplacementView
from workflows import steps
from workflows.messages import ReplacementRequest, ReservationAnswer
from workflows.options import (
    REPLACEMENT_CALL_TIMEOUT,
    REPLACEMENT_RESERVE_BUDGET,
    REPLACEMENT_RESERVE_RETRY,
    SUPPLIER_LOCK_BUDGET,
    SUPPLIER_LOCK_RETRY,
    SUPPLIER_QUERY_RETRY,
    SUPPLIER_QUERY_TIMEOUT,
)

__all__ = ["REPLACEMENT", "Attempt", "replace_key"]

# The patch that introduced replacements: refunds recorded before it never reach this code.
REPLACEMENT = "replacement-v1"
# How a failed local activity reaches the workflow: an ActivityError, or — a failure the
# retry policy calls final (`SupplierRejected`), or a timeout — the cause itself.
STEP_FAILED = (ActivityError, ApplicationError, StepTimeout)


@dataclass(frozen=True)
class Attempt:
    """How a replacement went: `delivered` is set when the buyer has the fresh key;
    otherwise `stage` and `detail` say why not for the timeline, and `unsettled` whether a
    person must find out where the key went."""

    delivered: ReplacementView | None
    stage: str
    detail: str
    unsettled: bool = False


async def replace_key(req: ReplacementRequest) -> Attempt:
    reserved = await _reserve(req)
    if reserved.state == "out_of_stock":
        return Attempt(None, "replacement_unavailable", "no fresh key in stock; refunding instead")
    if reserved.reservation_id is None or reserved.state not in ("reserved", "confirmed"):
        return Attempt(
            None,
            "replacement_unavailable",
            f"the supplier could not reserve a fresh key ({reserved.state}); refunding instead",
        )
    held = req.model_copy(update={"reservation_id": reserved.reservation_id})
    try:
        confirmed = await workflow.execute_local_activity(
            steps.confirm_replacement_key,
            held,
            start_to_close_timeout=REPLACEMENT_CALL_TIMEOUT,
            schedule_to_close_timeout=SUPPLIER_LOCK_BUDGET,
            retry_policy=SUPPLIER_LOCK_RETRY,
        )
    except STEP_FAILED:
        return Attempt(
            None,
            "replacement_unconfirmed",
            f"reservation {reserved.reservation_id}: the supplier did not say whether the fresh "
            "key reached the buyer; a person decides",
            unsettled=True,
        )
    if confirmed.state != "confirmed" or not confirmed.card_key_id:
        return Attempt(
            None,
            "replacement_unavailable",
            f"reservation {reserved.reservation_id} is {confirmed.state}; refunding instead",
        )
    return Attempt(
        ReplacementView(
            card_key_id=confirmed.card_key_id,
            supplier=req.supplier,
            replaced_card_key_id=req.replaces,
            item_id=req.item_id,
            reservation_id=reserved.reservation_id,
            delivered_at=workflow.now(),
        ),
        "replacement_delivered",
        f"fresh key {confirmed.card_key_id} replaces {req.replaces}",
    )


async def _reserve(req: ReplacementRequest) -> ReservationAnswer:
    """Reserve within the budget; when the outcome stays unknown, the reservation is looked
    up by its idempotency key before deciding: a timeout is not a refusal."""
    try:
        return await workflow.execute_local_activity(
            steps.reserve_replacement_key,
            req,
            start_to_close_timeout=REPLACEMENT_CALL_TIMEOUT,
            schedule_to_close_timeout=REPLACEMENT_RESERVE_BUDGET,
            retry_policy=REPLACEMENT_RESERVE_RETRY,
        )
    except STEP_FAILED:
        pass
    try:
        return await workflow.execute_local_activity(
            steps.find_replacement_key,
            req,
            start_to_close_timeout=SUPPLIER_QUERY_TIMEOUT,
            retry_policy=SUPPLIER_QUERY_RETRY,
        )
    except STEP_FAILED:
        # Neither made nor found: nothing can be handed over without a confirmation, which
        # only a reservation we know of gets.
        return ReservationAnswer(state="unknown")

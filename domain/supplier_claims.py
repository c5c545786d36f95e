"""Claims against a card-key supplier: a refund paid for a key the supplier itself confirmed
invalid is the supplier's loss, not the merchant's, so the shop claims the money back.

Which keys and how much, from what the workflow reported (pure; `store.supplier_claims`
keeps the claims and their ledger, `workers.supplier_claims` drives them at the supplier):

- a key is *confirmed invalid* when the supplier's latest word on it, at the check or a
  reviewer's re-check (the timeline's `describe_keys` words), was `invalid`;
- a claim is per refund and supplier, for the refunded amount of the items those keys
  belong to: an item's refunded amount times the share of its refunded units whose key is
  invalid (a partial approval claims only what it paid), never more than the refund paid.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from domain.refund import RefundBody
from domain.types import KeyState, RefundStatus
from domain.wording import KEY_CHECK_STAGES, read_keys


class ClaimState(StrEnum):
    OPEN = "open"  # ours: not (known to be) accepted by the supplier yet
    SUBMITTED = "submitted"  # the supplier holds it and has not credited or refused it
    RECOVERED = "recovered"  # the supplier credited it: the merchant has the money back
    WRITTEN_OFF = "written_off"  # refused by the supplier, or unpaid past the deadline

    @property
    def is_final(self) -> bool:
        return self in (ClaimState.RECOVERED, ClaimState.WRITTEN_OFF)


@dataclass(frozen=True)
class SoldKey:
    """A card key of the refunded order: which item it came with, from which supplier."""

    item_id: str
    card_key_id: str
    supplier: str


@dataclass(frozen=True)
class ClaimPlan:
    claim_id: str
    supplier: str
    card_key_ids: tuple[str, ...]
    amount: int


def claim_id_for(refund_id: str, supplier: str) -> str:
    """One claim per refund and supplier, named the same however often it is opened (it is
    also the supplier's idempotency key, so a resubmission is the same claim there)."""
    digest = hashlib.sha256(f"{refund_id}\n{supplier}".encode()).hexdigest()[:24]
    return f"clm_{digest}"


def confirmed_invalid(body: RefundBody) -> set[str]:
    """The keys whose latest check or re-check at the supplier answered `invalid`."""
    latest: dict[str, KeyState | None] = {}
    for entry in body.timeline:
        if entry.stage in KEY_CHECK_STAGES:
            latest.update(read_keys(entry.detail))
    return {key for key, state in latest.items() if state is KeyState.INVALID}


def plan_claims(body: RefundBody, keys: Iterable[SoldKey]) -> list[ClaimPlan]:
    """The claims a refund opens: none unless it was paid and a key was confirmed invalid."""
    if body.status is not RefundStatus.REFUNDED:
        return []
    invalid = confirmed_invalid(body)
    by_item: dict[str, list[SoldKey]] = defaultdict(list)
    for key in keys:
        if key.card_key_id in invalid:
            by_item[key.item_id].append(key)
    amounts: dict[str, int] = defaultdict(int)
    claimed_keys: dict[str, list[str]] = defaultdict(list)
    left = body.amount
    for item in sorted(body.items, key=lambda i: i.item_id):
        bad = sorted(by_item.get(item.item_id, []), key=lambda k: k.card_key_id)
        # Units refunded with an invalid key, at most the units this refund paid for.
        bad = bad[: item.quantity]
        if not bad or item.quantity <= 0:
            continue
        per_unit, spare = divmod(item.amount, item.quantity)
        for n, key in enumerate(bad):
            # The item's odd fen goes with its first units, so all units sum to its amount.
            share = min(per_unit + (1 if n < spare else 0), left)
            left -= share
            amounts[key.supplier] += share
            claimed_keys[key.supplier].append(key.card_key_id)
    return [
        ClaimPlan(
            claim_id=claim_id_for(body.refund_id, supplier),
            supplier=supplier,
            card_key_ids=tuple(claimed_keys[supplier]),
            amount=amounts[supplier],
        )
        for supplier in sorted(amounts)
        if amounts[supplier] > 0
    ]

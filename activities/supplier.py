"""The card-key supplier: was the key redeemed, and lock it before money moves."""

from __future__ import annotations

import asyncio

from temporalio import activity

from domain.types import KeyState
from peers.supplier import SupplierClient
from workflows.messages import KeysAnswer, KeysRequest


class CardKeyChecks:
    def __init__(self, supplier: SupplierClient) -> None:
        self.supplier = supplier

    @activity.defn(name="query_key_redemption")
    async def query_key_redemption(self, req: KeysRequest) -> KeysAnswer:
        """Ask about every key at once; any transient failure fails the attempt (retried)."""
        states = await asyncio.gather(
            *(self.supplier.query_key(k.supplier, k.card_key_id) for k in req.keys)
        )
        return KeysAnswer(states={k.card_key_id: s for k, s in zip(req.keys, states, strict=True)})

    @activity.defn(name="lock_card_keys")
    async def lock_card_keys(self, req: KeysRequest) -> KeysAnswer:
        """Void each key so it can no longer be redeemed. The idempotency key is the refund's
        and the key's, so a retried lock is the same lock. A key redeemed meanwhile comes
        back as REDEEMED, never as an error: the workflow sends that refund to a person."""
        states = await asyncio.gather(
            *(
                self.supplier.lock_key(
                    k.supplier,
                    k.card_key_id,
                    idempotency_key=f"{req.refund_id}-lock-{k.card_key_id}",
                )
                for k in req.keys
            )
        )
        return KeysAnswer(states={k.card_key_id: s for k, s in zip(req.keys, states, strict=True)})


__all__ = ["CardKeyChecks", "KeyState"]

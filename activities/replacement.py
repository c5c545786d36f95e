"""A fresh key instead of money (补发): reserve one at the supplier, find the reservation again
after a call whose outcome is unknown, and hand it to the buyer.

Every call carries the refund's own idempotency key (`ReplacementRequest.idempotency_key`),
so a retry after a timeout or a dead worker is the same reservation, never a second key.
Only ids come back: the key's secret stays with the supplier and the platform."""

from __future__ import annotations

from temporalio import activity

from activities.crashpoints import crashpoint
from peers.supplier import Reservation, SupplierClient
from workflows.messages import ReplacementRequest, ReservationAnswer


def _answer(reservation: Reservation) -> ReservationAnswer:
    return ReservationAnswer(
        state=reservation.state,
        reservation_id=reservation.reservation_id,
        card_key_id=reservation.card_key_id,
    )


class Replacements:
    def __init__(self, supplier: SupplierClient) -> None:
        self.supplier = supplier

    @activity.defn(name="reserve_replacement_key")
    async def reserve_replacement_key(self, req: ReplacementRequest) -> ReservationAnswer:
        """Reserve a fresh key. A retry first asks whether the attempt before it (which timed
        out, or died with its worker) reserved one: an unknown outcome is not a refusal, and
        a supplier out of stock *because of our own reservation* must not read as "none"."""
        if activity.info().attempt > 1:
            earlier = await self.supplier.find_reservation(
                req.supplier, idempotency_key=req.idempotency_key
            )
            if earlier is not None:
                return _answer(earlier)
        reservation = await self.supplier.reserve_key(
            req.supplier,
            sku=req.sku,
            order_id=req.order_id,
            replaces=req.replaces,
            idempotency_key=req.idempotency_key,
        )
        if reservation is None:
            return ReservationAnswer(state="out_of_stock")
        return _answer(reservation)

    @activity.defn(name="find_replacement_key")
    async def find_replacement_key(self, req: ReplacementRequest) -> ReservationAnswer:
        found = await self.supplier.find_reservation(
            req.supplier, idempotency_key=req.idempotency_key
        )
        return ReservationAnswer(state="none") if found is None else _answer(found)

    @activity.defn(name="confirm_replacement_key")
    async def confirm_replacement_key(self, req: ReplacementRequest) -> ReservationAnswer:
        """Hand the reserved key to the buyer; a repeat is answered the same."""
        if req.reservation_id is None:
            raise ValueError("confirm_replacement_key needs the reservation id")
        confirmed = await self.supplier.confirm_reservation(
            req.supplier, req.reservation_id, order_id=req.order_id, buyer_id=req.buyer_id
        )
        # The buyer has the key; the worker dies before anyone wrote it down.
        crashpoint("replacement.after_confirm")
        return _answer(confirmed)

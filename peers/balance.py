"""The platform balance as a payout route: the buyer's wallet is an account in our own
double-entry ledger, so a refund to it cannot be refused, processing or lost. The payout
activity records it settled in the same transaction as its intent (`instant`)."""

from __future__ import annotations

from domain.types import PaymentChannel, PayoutState
from peers.payouts import GatewayRefund, RefundOrder

__all__ = ["BalanceGateway"]


class BalanceGateway:
    channel = PaymentChannel.BALANCE
    instant = True

    async def send_refund(self, order: RefundOrder) -> GatewayRefund:
        return self._credited(order)

    async def query_refund(self, order: RefundOrder) -> GatewayRefund:
        return self._credited(order)

    @staticmethod
    def _credited(order: RefundOrder) -> GatewayRefund:
        return GatewayRefund(
            state=PayoutState.SUCCEEDED, amount=order.amount, raw_status="CREDITED"
        )

"""Refund orders for the WeChat Pay client tests, and the sandbox gateway's record of them."""

from __future__ import annotations

import httpx

from peers.payouts import RefundOrder

TX = "4200001234202611200000001"


def order(out_refund_no: str, amount: int = 1000) -> RefundOrder:
    return RefundOrder(
        out_refund_no=out_refund_no,
        transaction_id=TX,
        amount=amount,
        payment_total=5000,
        currency="CNY",
        reason="卡密无效，已为您退款",
    )


async def refunds_of(http: httpx.AsyncClient) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = (
        await http.get("/sandbox/refunds", params={"transaction_id": TX})
    ).json()["refunds"]
    return listed

"""Adapters for the service's outside peers: the card-key supplier and the payment gateways.

Each client receives its `httpx.AsyncClient` and settings in its constructor (no module-level
clients), speaks the peer's real protocol, and reports transient trouble as a plain exception
(`SupplierUnavailable`, `GatewayUnavailable`) so Temporal retries, and business refusals as
`GatewayRefused` so the activity can make them non-retryable.
"""

from peers.alipay import AlipayClient
from peers.payouts import (
    NOT_FOUND,
    GatewayRefund,
    GatewayRefused,
    GatewayUnavailable,
    SignatureInvalid,
    fen_to_yuan,
    yuan_to_fen,
)
from peers.supplier import SupplierClient, SupplierRejected, SupplierUnavailable
from peers.webhooks import sign_webhook, verify_webhook
from peers.wechatpay import RefundNotification, WechatPayClient

__all__ = [
    "NOT_FOUND",
    "AlipayClient",
    "GatewayRefund",
    "GatewayRefused",
    "GatewayUnavailable",
    "RefundNotification",
    "SignatureInvalid",
    "SupplierClient",
    "SupplierRejected",
    "SupplierUnavailable",
    "WechatPayClient",
    "fen_to_yuan",
    "sign_webhook",
    "verify_webhook",
    "yuan_to_fen",
]

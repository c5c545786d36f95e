"""What the sandbox WeChat Pay gateway writes: the refund document of its answers and the
REFUND.* notification envelope, with WeChat's field names, China-time timestamps and the
resource AES-256-GCM encrypted with the merchant's APIv3 key. Pure: the gateway
(`sandbox.wechatpay`) passes in the refund, its payment and the merchant's trade number.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from peers.signing import wechatpay_encrypt
from sandbox.ledger import ABNORMAL, CLOSED, SUCCESS, PaymentRecord, RefundRecord

__all__ = ["EVENTS", "notification_body", "received_account", "refund_document"]

_CST = timezone(timedelta(hours=8))
# The refund states WeChat announces, with the notification's event type and summary.
EVENTS = {
    SUCCESS: ("REFUND.SUCCESS", "退款成功"),
    CLOSED: ("REFUND.CLOSED", "退款关闭"),
    ABNORMAL: ("REFUND.ABNORMAL", "退款异常"),
}


def _wechat_time(moment: datetime | None) -> str | None:
    return moment.astimezone(_CST).isoformat(timespec="seconds") if moment else None


def received_account(record: RefundRecord) -> str:
    if record.rescue is None:
        return "支付用户零钱"
    if record.rescue["type"] == "MERCHANT_BANK_CARD":
        return "商户基本账户"
    return f"{record.rescue.get('bank_type', '')}{record.rescue.get('bank_account', '')[-4:]}"


def refund_document(
    record: RefundRecord, payment: PaymentRecord | None, *, out_trade_no: str
) -> dict[str, Any]:
    """The refund as the create, query and apply-abnormal-refund calls answer it."""
    total = payment.amount if payment else record.total
    return {
        "refund_id": record.gateway_refund_id,
        "out_refund_no": record.out_refund_no,
        "transaction_id": record.transaction_id,
        "out_trade_no": out_trade_no,
        "channel": "OTHER_BANKCARD" if record.rescue else "ORIGINAL",
        "user_received_account": received_account(record),
        "success_time": _wechat_time(record.success_time),
        "create_time": _wechat_time(record.created_at),
        "status": record.status,
        "funds_account": "AVAILABLE",
        "amount": {
            "total": total,
            "refund": record.amount,
            "from": [],
            "payer_total": total,
            "payer_refund": record.amount,
            "settlement_refund": record.amount,
            "settlement_total": total,
            "discount_refund": 0,
            "currency": "CNY",
            "refund_fee": 0,
        },
        "promotion_detail": [],
    }


def notification_body(
    record: RefundRecord,
    payment: PaymentRecord | None,
    *,
    out_trade_no: str,
    mchid: str,
    apiv3_key: str,
) -> bytes:
    """The REFUND.* notification of a refund in one of the `EVENTS` states, resource
    encrypted; a fresh notification id each time it is built."""
    event_type, summary = EVENTS[record.status]
    resource = {
        "mchid": mchid,
        "transaction_id": record.transaction_id,
        "out_trade_no": out_trade_no,
        "refund_id": record.gateway_refund_id,
        "out_refund_no": record.out_refund_no,
        "refund_status": record.status,
        "success_time": _wechat_time(record.success_time),
        "user_received_account": received_account(record),
        "amount": {
            "total": payment.amount if payment else record.total,
            "refund": record.amount,
            "payer_total": payment.amount if payment else record.total,
            "payer_refund": record.amount,
        },
    }
    plaintext = json.dumps(resource, ensure_ascii=False).encode("utf-8")
    envelope = {
        "id": str(uuid.uuid4()),
        "create_time": _wechat_time(datetime.now(UTC)),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": "refund",
            **wechatpay_encrypt(apiv3_key, plaintext, associated_data="refund"),
        },
    }
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8")

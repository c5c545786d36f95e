"""A local WeChat Pay v3 gateway for refunds, behaving as WeChat documents.

It verifies the merchant's WECHATPAY2-SHA256-RSA2048 signature (401 SIGN_ERROR otherwise),
signs every answer (`Wechatpay-*` headers, `Wechatpay-Signature-Type` included) with the WeChat
Pay public key when the request names its `PUB_KEY_ID_...` in `Wechatpay-Serial`, otherwise
with its current platform certificate (hex serial; `GET /v3/certificates` serves them,
encrypted with the APIv3 key), returns the existing refund for a repeated `out_refund_no` (a
CLOSED one stays CLOSED: a retry needs a new number), refuses refunds beyond a registered
payment's total, and when a refund reaches SUCCESS, CLOSED or ABNORMAL POSTs a signed
notification with an AES-256-GCM encrypted resource to its `notify_url`, retrying on failure
and, for slow ("processing") refunds, delivering it twice as the real gateway sometimes does.
The JSON it writes is built in `sandbox.wechat_documents`, notifications are delivered by
`sandbox.wechat_notifications`.

Control routes besides the shared ones: `GET/PUT /sandbox/signing` (`{"notifications":
"request" | "certificate" | "public_key" | "either"}`: "either" plays a merchant's migration,
each notification signed with one or the other at random) and `POST /sandbox/certificates`
(rotate: a new platform certificate signs from now on).

Armed faults (`POST /sandbox/faults`) for the refund call: `processing` (settles later),
`timeout` (recorded, answered late), `error_5xx`, `closed`, `abnormal` (the buyer's card is
closed: the refund is ABNORMAL until `apply-abnormal-refund` sends it to a bank card, after
which it is PROCESSING and settles to SUCCESS), `bad_signature` (refunded, but the answer's
signature does not verify) and `skewed_clock` (refunded, answer signed correctly with a
`Wechatpay-Timestamp` ten minutes old).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from peers.signing import (
    DecryptionFailed,
    parse_wechatpay_authorization,
    rsa_verify,
    wechatpay_decrypt_sensitive,
    wechatpay_request_message,
    wechatpay_sign_response,
)
from peers.wechatpay import CERTIFICATES_PATH, REFUNDS_PATH
from sandbox import wechat_documents
from sandbox.control import gateway_control_router
from sandbox.faults import FaultPlan
from sandbox.ledger import ABNORMAL, CLOSED, PROCESSING, SUCCESS, Ledger, RefundRecord
from sandbox.wechat_notifications import NotificationDelivery
from sandbox.wechat_platform import NotificationSigning, SandboxPlatformKeys

__all__ = ["FAULT_MODES", "create_wechat_app", "transaction_id_for"]

logger = logging.getLogger(__name__)

FAULT_MODES = frozenset(
    {
        "processing",
        "timeout",
        "error_5xx",
        "closed",
        "abnormal",
        "bad_signature",
        "skewed_clock",
    }
)
# How far back a `skewed_clock` fault dates its answer: twice WeChat's 5-minute allowance.
SKEWED_CLOCK_SECONDS = 600
_RESCUE_TYPES = frozenset({"USER_BANK_CARD", "MERCHANT_BANK_CARD"})


def transaction_id_for(mchid: str, out_trade_no: str) -> str:
    """WeChat's own payment number for a merchant's `out_trade_no`: 28 digits starting 4200,
    never the merchant's number echoed back (stable, so every refund of a trade agrees)."""
    digest = hashlib.sha256(f"{mchid}/{out_trade_no}".encode()).digest()
    return "4200" + f"{int.from_bytes(digest[:12], 'big') % 10**24:024d}"


class SigningRequest(BaseModel):
    notifications: NotificationSigning


class RotateRequest(BaseModel):
    valid_days: int = 5 * 365


def _masked(field: str, value: str) -> str:
    """Bank fields as the sandbox ledger shows them: enough to check, not the whole thing."""
    if field == "bank_account":
        return "*" * max(len(value) - 4, 0) + value[-4:]
    return value[:1] + "*" * (len(value) - 1)


def create_wechat_app(
    *,
    mchid: str,
    merchant_serial_no: str,
    merchant_public_key: rsa.RSAPublicKey,
    platform_keys: SandboxPlatformKeys,
    apiv3_key: str,
    settle_after: float = 2.0,
    settle_after_queries: int | None = 3,
    fault_delay: float = 15.0,
    notify_client: httpx.AsyncClient | None = None,
    notify_retry_delays: Sequence[float] = (1.0, 5.0, 15.0),
    duplicate_notifications: bool = True,
) -> FastAPI:
    """The sandbox WeChat Pay gateway for one merchant.

    `platform_keys` are the gateway's certificates and public key. `notify_client` delivers
    notifications (tests pass one bound to an ASGI app); without one the app makes its own.
    `notify_retry_delays` are the pauses between delivery attempts.
    """
    notifications = NotificationDelivery(
        platform_keys,
        client=notify_client,
        retry_delays=notify_retry_delays,
        duplicates=duplicate_notifications,
    )
    # out_trade_no of the payments WeChat has seen refunds for, by transaction_id.
    trade_numbers: dict[str, str] = {}

    async def deliver(record: RefundRecord) -> None:
        if not record.notify_url or record.status not in wechat_documents.EVENTS:
            return
        envelope = wechat_documents.notification_body(
            record,
            ledger.payments.get(record.transaction_id),
            out_trade_no=out_trade_no_of(record.transaction_id),
            mchid=mchid,
            apiv3_key=apiv3_key,
        )
        await notifications.deliver(record, envelope)

    ledger = Ledger(
        settle_after=settle_after, settle_after_queries=settle_after_queries, on_settled=deliver
    )
    faults = FaultPlan(FAULT_MODES)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await ledger.cancel_tasks()
        await notifications.aclose()

    app = FastAPI(title="Sandbox WeChat Pay", lifespan=lifespan)
    app.state.ledger = ledger
    app.state.faults = faults
    app.state.platform_keys = platform_keys
    app.include_router(gateway_control_router(ledger, faults))

    def out_trade_no_of(transaction_id: str) -> str:
        payment = ledger.payments.get(transaction_id)
        if payment is not None and payment.out_trade_no:
            return payment.out_trade_no
        return trade_numbers.get(transaction_id, f"KAMI{transaction_id[-16:]}")

    def answer(
        request: Request,
        status_code: int,
        document: dict[str, Any] | None,
        *,
        fault: str | None = None,
    ) -> Response:
        body = b"" if document is None else json.dumps(document, ensure_ascii=False).encode()
        signer = platform_keys.for_answer(request.headers.get("Wechatpay-Serial"))
        timestamp = None
        if fault == "skewed_clock":
            timestamp = str(int(time.time()) - SKEWED_CLOCK_SECONDS)
        headers = wechatpay_sign_response(
            signer.private_key, serial_no=signer.serial, body=body, timestamp=timestamp
        )
        if fault == "bad_signature":
            # A well-formed signature over something else: it does not verify.
            headers["Wechatpay-Signature"] = wechatpay_sign_response(
                signer.private_key, serial_no=signer.serial, body=body + b" "
            )["Wechatpay-Signature"]
        headers["Request-ID"] = secrets.token_hex(16)
        return Response(
            body,
            status_code=status_code,
            media_type="application/json; charset=utf-8",
            headers=headers,
        )

    def error(request: Request, status_code: int, code: str, message: str) -> Response:
        return answer(request, status_code, {"code": code, "message": message})

    def authenticated(request: Request, body: bytes) -> bool:
        auth = parse_wechatpay_authorization(request.headers.get("Authorization", ""))
        if auth is None or auth.mchid != mchid or auth.serial_no != merchant_serial_no:
            return False
        try:
            if abs(time.time() - int(auth.timestamp)) > 300:
                return False
        except ValueError:
            return False
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string") or b""
        url_path = raw_path.decode("ascii") + (f"?{query.decode('ascii')}" if query else "")
        message = wechatpay_request_message(
            request.method, url_path, auth.timestamp, auth.nonce_str, body
        )
        return rsa_verify(merchant_public_key, message, auth.signature)

    def refund_document(record: RefundRecord) -> dict[str, Any]:
        return wechat_documents.refund_document(
            record,
            ledger.payments.get(record.transaction_id),
            out_trade_no=out_trade_no_of(record.transaction_id),
        )

    @app.post(REFUNDS_PATH)
    async def create_refund(request: Request) -> Response:
        body = await request.body()
        if not authenticated(request, body):
            return error(request, 401, "SIGN_ERROR", "签名错误")
        try:
            document = json.loads(body)
            out_trade_no = document.get("out_trade_no")
            if document.get("transaction_id"):
                transaction_id = str(document["transaction_id"])
            else:
                transaction_id = trade_transaction(str(document["out_trade_no"]))
            out_refund_no = str(document["out_refund_no"])
            amount = document["amount"]
            refund, total = amount["refund"], amount["total"]
            if not isinstance(refund, int) or not isinstance(total, int) or refund <= 0:
                raise ValueError("amount.refund and amount.total must be positive integers")
            if amount.get("currency", "CNY") != "CNY" or not 1 <= len(out_refund_no) <= 64:
                raise ValueError("bad currency or out_refund_no")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return error(request, 400, "PARAM_ERROR", f"参数错误: {exc}")

        fault = await faults.take()
        if fault == "error_5xx":
            return error(request, 500, "SYSTEM_ERROR", "系统错误")

        async with ledger.lock:
            record = ledger.refunds.get(out_refund_no)
            if record is not None:
                # Same number: the refund that exists, whatever state it is in.
                record.requests += 1
                return answer(request, 200, refund_document(record))
            payment = ledger.payments.get(transaction_id)
            if payment is not None and total != payment.amount:
                return error(request, 400, "PARAM_ERROR", "订单金额与实际支付金额不一致")
            if refund > total or ledger.exceeds_total(transaction_id, refund):
                return error(request, 400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
            if fault == "processing":
                status, settles_to = PROCESSING, SUCCESS
            elif fault == "closed":
                status, settles_to = CLOSED, None
            elif fault == "abnormal":
                status, settles_to = ABNORMAL, None
            else:
                status, settles_to = SUCCESS, None
            record = RefundRecord(
                key=out_refund_no,
                transaction_id=transaction_id,
                out_refund_no=out_refund_no,
                amount=refund,
                total=total,
                status=status,
                settles_to=settles_to,
                gateway_refund_id=Ledger.new_refund_id("50"),
                reason=str(document.get("reason") or ""),
                notify_url=document.get("notify_url"),
                slow=fault == "processing",
            )
            if platform_keys.names_public_key(request.headers.get("Wechatpay-Serial")):
                notifications.public_key_refunds.add(record.key)
            if out_trade_no:
                trade_numbers.setdefault(transaction_id, str(out_trade_no))
            ledger.add(record)
            result = refund_document(record)
        if fault == "timeout":
            # Recorded, answered late: the retry with the same out_refund_no finds it.
            await asyncio.sleep(fault_delay)
        return answer(request, 200, result, fault=fault)

    @app.post(REFUNDS_PATH + "/{refund_id}/apply-abnormal-refund")
    async def apply_abnormal_refund(refund_id: str, request: Request) -> Response:
        """Send an ABNORMAL refund to the buyer's (or the merchant's) bank card instead.

        `bank_account` and `real_name` arrive RSA-OAEP encrypted under the platform key that
        the request's `Wechatpay-Serial` names; the refund goes back to PROCESSING and later
        settles to SUCCESS with a REFUND.SUCCESS notification.
        """
        body = await request.body()
        if not authenticated(request, body):
            return error(request, 401, "SIGN_ERROR", "签名错误")
        try:
            document = json.loads(body)
            out_refund_no = str(document["out_refund_no"])
            kind = str(document["type"])
            if kind not in _RESCUE_TYPES:
                raise ValueError(f"type must be one of {sorted(_RESCUE_TYPES)}")
            bank_type = str(document.get("bank_type") or "")
            encrypted = {
                name: str(document[name])
                for name in ("bank_account", "real_name")
                if document.get(name)
            }
            if kind == "USER_BANK_CARD" and not (bank_type and len(encrypted) == 2):
                raise ValueError("USER_BANK_CARD needs bank_type, bank_account and real_name")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return error(request, 400, "PARAM_ERROR", f"参数错误: {exc}")
        clear: dict[str, str] = {}
        if encrypted:
            key = platform_keys.decryption_key(request.headers.get("Wechatpay-Serial", ""))
            if key is None:
                return error(
                    request, 400, "PARAM_ERROR", "Wechatpay-Serial 不是有效的平台证书或公钥"
                )
            try:
                clear = {n: wechatpay_decrypt_sensitive(key, v) for n, v in encrypted.items()}
            except DecryptionFailed:
                return error(request, 400, "PARAM_ERROR", "敏感信息解密失败")
        async with ledger.lock:
            record = next(
                (r for r in ledger.refunds.values() if r.gateway_refund_id == refund_id), None
            )
            if record is None:
                return error(request, 404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            if record.out_refund_no != out_refund_no:
                return error(request, 400, "PARAM_ERROR", "out_refund_no 与退款单不匹配")
            if record.rescue is not None and record.rescue["type"] == kind:
                # The same request again (an answer lost on the way): the refund as it is.
                return answer(request, 200, refund_document(record))
            if record.status != ABNORMAL:
                return error(
                    request, 400, "INVALID_REQUEST", "退款单状态不是退款异常，无法发起异常退款"
                )
            record.rescue = {
                "type": kind,
                **({"bank_type": bank_type} if bank_type else {}),
                **{name: _masked(name, value) for name, value in clear.items()},
            }
            ledger.reopen(record, settles_to=SUCCESS)
            return answer(request, 200, refund_document(record))

    def trade_transaction(out_trade_no: str) -> str:
        for payment in ledger.payments.values():
            if payment.out_trade_no == out_trade_no:
                return payment.transaction_id
        return transaction_id_for(mchid, out_trade_no)

    @app.get(CERTIFICATES_PATH)
    async def certificates(request: Request) -> Response:
        """The platform certificates, each encrypted with the merchant's APIv3 key."""
        if not authenticated(request, b""):
            return error(request, 401, "SIGN_ERROR", "签名错误")
        return answer(request, 200, platform_keys.certificates_document(apiv3_key))

    @app.get("/sandbox/signing", tags=["sandbox"])
    async def show_signing() -> dict[str, object]:
        return platform_keys.describe()

    @app.put("/sandbox/signing", tags=["sandbox"])
    async def set_signing(body: SigningRequest) -> dict[str, object]:
        """How notifications are signed from now on ("either": a merchant's migration)."""
        platform_keys.notification_signing = body.notifications
        return platform_keys.describe()

    @app.post("/sandbox/certificates", tags=["sandbox"])
    async def rotate_certificate(body: RotateRequest | None = None) -> dict[str, object]:
        """A new platform certificate, which signs from now on (the old ones stay valid)."""
        platform_keys.rotate(valid_days=(body or RotateRequest()).valid_days)
        return platform_keys.describe()

    @app.get(REFUNDS_PATH + "/{out_refund_no}")
    async def query_refund(out_refund_no: str, request: Request) -> Response:
        if not authenticated(request, b""):
            return error(request, 401, "SIGN_ERROR", "签名错误")
        async with ledger.lock:
            record = ledger.refunds.get(out_refund_no)
            if record is None:
                return error(request, 404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            ledger.note_query(record)
            return answer(request, 200, refund_document(record))

    return app

"""WeChat Pay API v3 refunds: create, query, and the signed, encrypted refund notification.

Every request is signed WECHATPAY2-SHA256-RSA2048 with the merchant key; every answer and
notification is signed by the platform key and is verified before anything is read from it.
A refund that ends CLOSED can only be retried with a *new* `out_refund_no`; repeating the old
number just returns the closed refund, which is what keeps a retry from paying twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, ValidationError

from domain.types import PaymentChannel, PayoutState
from peers.payouts import (
    NOT_FOUND,
    AbnormalRefundRequest,
    GatewayRefund,
    GatewayRefused,
    GatewayUnavailable,
    RefundOrder,
    SignatureInvalid,
)
from peers.signing import (
    DecryptionFailed,
    wechatpay_authorization,
    wechatpay_decrypt,
    wechatpay_encrypt_sensitive,
    wechatpay_verify_response,
)

__all__ = [
    "REFUNDS_PATH",
    "RefundNotification",
    "WechatPayClient",
    "refund_state",
]

logger = logging.getLogger(__name__)

REFUNDS_PATH = "/v3/refund/domestic/refunds"

_STATES = {
    "SUCCESS": PayoutState.SUCCEEDED,
    "PROCESSING": PayoutState.PROCESSING,
    "CLOSED": PayoutState.CLOSED,
    "ABNORMAL": PayoutState.ABNORMAL,
}
_TRANSIENT_CODES = {"SYSTEM_ERROR", "FREQUENCY_LIMITED", "BANK_ERROR"}


def refund_state(status: str) -> PayoutState:
    """Map WeChat's refund status; an unknown word proves nothing: UNKNOWN."""
    return _STATES.get(status, PayoutState.UNKNOWN)


class RefundNotification(BaseModel):
    """A verified, decrypted REFUND.* notification."""

    model_config = ConfigDict(frozen=True)

    notification_id: str  # WeChat's `id`; the same notification may arrive more than once
    event_type: str  # REFUND.SUCCESS | REFUND.ABNORMAL | REFUND.CLOSED
    out_refund_no: str
    refund_id: str
    transaction_id: str | None = None
    state: PayoutState
    raw_status: str
    amount: int  # fen refunded
    success_time: str | None = None


class WechatPayClient:
    """Calls WeChat Pay v3 as one merchant; shares the worker's `httpx.AsyncClient`.

    A `PayoutGateway` (`send_refund`, `query_refund`) for the WeChat Pay route, which can also
    send an ABNORMAL refund elsewhere (`rescue_abnormal_refund`)."""

    channel = PaymentChannel.WECHAT
    instant = False

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        mchid: str,
        serial_no: str,
        merchant_private_key: rsa.RSAPrivateKey,
        platform_public_key: rsa.RSAPublicKey,
        apiv3_key: str,
        platform_serial: str | None = None,
        notify_url: str | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._mchid = mchid
        self._serial_no = serial_no
        self._private_key = merchant_private_key
        self._platform_public_key = platform_public_key
        self._apiv3_key = apiv3_key
        # When set, answers signed under another platform certificate are refused.
        self._platform_serial = platform_serial
        # Where WeChat announces REFUND.SUCCESS / ABNORMAL / CLOSED (the API's receiver).
        self._notify_url = notify_url

    async def send_refund(self, order: RefundOrder) -> GatewayRefund:
        return await self.refund(
            transaction_id=order.transaction_id or "",
            out_refund_no=order.out_refund_no,
            amount=order.amount,
            total=order.payment_total,
            reason=order.reason,
            notify_url=self._notify_url,
        )

    async def query_refund(self, order: RefundOrder) -> GatewayRefund:
        return await self.query(out_refund_no=order.out_refund_no)

    async def rescue_abnormal_refund(
        self, order: RefundOrder, gateway_refund_id: str, request: AbnormalRefundRequest
    ) -> GatewayRefund:
        """`apply-abnormal-refund`: send an ABNORMAL refund to the buyer's (or the merchant's)
        bank card instead; the refund goes back to PROCESSING and settles as usual."""
        body: dict[str, Any] = {"out_refund_no": order.out_refund_no, "type": request.to}
        for name in ("bank_type", "bank_account", "real_name"):
            value = getattr(request, name)
            if value:
                body[name] = value
        path = f"{REFUNDS_PATH}/{quote(gateway_refund_id, safe='')}/apply-abnormal-refund"
        answer = await self._request("POST", path, body, encrypted_with=request.encrypted_with)
        return self._to_refund(answer)

    def encrypt_sensitive(self, text: str) -> tuple[str, str]:
        """(ciphertext, serial of the key it is for): a bank field for `AbnormalRefundRequest`."""
        return (
            wechatpay_encrypt_sensitive(self._platform_public_key, text),
            self._platform_serial or "",
        )

    async def refund(
        self,
        *,
        transaction_id: str,
        out_refund_no: str,
        amount: int,
        total: int,
        reason: str,
        notify_url: str | None,
    ) -> GatewayRefund:
        """Ask for a refund of `amount` fen out of the payment's `total`.

        Repeating an `out_refund_no` returns the refund already made under it.
        """
        body: dict[str, Any] = {
            "transaction_id": transaction_id,
            "out_refund_no": out_refund_no,
            "reason": reason[:80],
            "amount": {"refund": amount, "total": total, "currency": "CNY"},
        }
        if notify_url:
            body["notify_url"] = notify_url
        answer = await self._request("POST", REFUNDS_PATH, body)
        return self._to_refund(answer)

    async def query(self, *, out_refund_no: str) -> GatewayRefund:
        """Where a refund stands. An unknown number answers PENDING / NOT_FOUND: the refund call
        never arrived and may be sent again with the same number."""
        try:
            answer = await self._request("GET", f"{REFUNDS_PATH}/{quote(out_refund_no, safe='')}")
        except GatewayRefused as refused:
            if refused.code == "RESOURCE_NOT_EXISTS":
                return GatewayRefund(state=PayoutState.PENDING, amount=0, raw_status=NOT_FOUND)
            raise
        return self._to_refund(answer)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> RefundNotification:
        """Verify and decrypt a refund notification; raise `SignatureInvalid` on a forgery.

        The receiver should answer 200 `{"code": "SUCCESS"}` only after it has recorded the
        result, and must expect the same notification more than once.
        """
        if not wechatpay_verify_response(
            self._platform_public_key, headers, body, expected_serial=self._platform_serial
        ):
            raise SignatureInvalid("wechat notification signature does not verify")
        try:
            envelope = json.loads(body)
            resource = envelope["resource"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise SignatureInvalid("wechat notification uses an unknown algorithm")
            plaintext = wechatpay_decrypt(
                self._apiv3_key,
                nonce=resource["nonce"],
                associated_data=resource.get("associated_data", ""),
                ciphertext=resource["ciphertext"],
            )
            refund = json.loads(plaintext)
            status = str(refund["refund_status"])
            return RefundNotification(
                notification_id=str(envelope["id"]),
                event_type=str(envelope["event_type"]),
                out_refund_no=str(refund["out_refund_no"]),
                refund_id=str(refund["refund_id"]),
                transaction_id=refund.get("transaction_id"),
                state=refund_state(status),
                raw_status=status,
                amount=int(refund["amount"]["refund"]),
                success_time=refund.get("success_time"),
            )
        except DecryptionFailed as exc:
            raise SignatureInvalid("wechat notification resource does not decrypt") from exc
        except (KeyError, TypeError, ValueError, AttributeError, ValidationError) as exc:
            # Signed by WeChat but not a refund notification we understand.
            raise GatewayRefused("NOTIFICATION_MALFORMED", str(exc)) from exc

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        encrypted_with: str | None = None,
    ) -> dict[str, Any]:
        content = (
            json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            if body is not None
            else b""
        )
        request = self._http.build_request(
            method,
            self._base_url + path,
            content=content or None,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
        )
        if encrypted_with:
            # Encrypted fields name the platform key that can read them.
            request.headers["Wechatpay-Serial"] = encrypted_with
        # Sign exactly the path and query that go on the wire.
        request.headers["Authorization"] = wechatpay_authorization(
            self._private_key,
            mchid=self._mchid,
            serial_no=self._serial_no,
            method=method,
            url_path=request.url.raw_path.decode("ascii"),
            body=content,
        )
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"wechat {method} {path}: {type(exc).__name__}") from exc
        raw = response.content
        code, message = ("", "") if response.is_success else _error_words(raw)
        if response.status_code >= 500 or response.status_code == 429:
            raise GatewayUnavailable(
                f"wechat {method} {path}: HTTP {response.status_code} {message}".rstrip(),
                code or f"HTTP_{response.status_code}",
            )
        if not wechatpay_verify_response(
            self._platform_public_key,
            response.headers,
            raw,
            expected_serial=self._platform_serial,
        ):
            # Unsigned or forged: whatever it says, the outcome is unknown (never "refused").
            logger.warning(
                "wechat %s %s: unverified answer HTTP %s %s",
                method,
                path,
                response.status_code,
                code,
            )
            raise SignatureInvalid(
                f"wechat {method} {path}: answer signature does not verify",
                sub_code=code or f"HTTP_{response.status_code}",
            )
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise GatewayUnavailable(f"wechat {method} {path}: unreadable answer") from exc
        if not isinstance(answer, dict):
            raise GatewayUnavailable(f"wechat {method} {path}: unreadable answer")
        if response.is_success:
            return answer
        code = code or f"HTTP_{response.status_code}"
        logger.info("wechat %s %s refused: HTTP %s %s", method, path, response.status_code, code)
        if code in _TRANSIENT_CODES:
            raise GatewayUnavailable(f"wechat {method} {path}: {message}", code)
        raise GatewayRefused(code, message)

    @staticmethod
    def _to_refund(answer: dict[str, Any]) -> GatewayRefund:
        try:
            status = str(answer["status"])
            return GatewayRefund(
                state=refund_state(status),
                gateway_refund_id=str(answer["refund_id"]),
                amount=int(answer["amount"]["refund"]),
                raw_status=status,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayUnavailable("wechat answer lacks refund fields") from exc


def _error_words(raw: bytes) -> tuple[str, str]:
    """WeChat's error `code` and `message`, read for the record before anything is trusted."""
    try:
        document = json.loads(raw)
    except ValueError:
        return "", ""
    if not isinstance(document, dict):
        return "", ""
    return str(document.get("code") or ""), str(document.get("message") or "")

"""WeChat Pay API v3 refunds: create, query, and the signed, encrypted refund notification.

Every request is signed WECHATPAY2-SHA256-RSA2048 with the merchant key; every answer and
notification is signed by a platform certificate or the WeChat Pay public key, chosen by its
`Wechatpay-Serial` (`peers.wechat_keys`), and verified before anything is read from it. With
the public key configured every request names it in `Wechatpay-Serial`, which is how WeChat
knows to sign the answer with it. A certificate serial we do not know sends us to
`GET /v3/certificates` (at most once a minute, `peers.wechat_certificates`) before the answer
is given up as unverifiable.

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
)
from peers.wechat_certificates import (
    CERTIFICATE_REFRESH_INTERVAL_SECONDS,
    CERTIFICATES_PATH,
    CertificateRefresh,
)
from peers.wechat_keys import UNKNOWN_SERIAL, WechatPayKeys

__all__ = [
    "CERTIFICATES_PATH",
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
        platform_keys: WechatPayKeys,
        apiv3_key: str,
        notify_url: str | None = None,
        refresh_certificates: bool = True,
        refresh_interval: float = CERTIFICATE_REFRESH_INTERVAL_SECONDS,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._mchid = mchid
        self._serial_no = serial_no
        self._private_key = merchant_private_key
        self._keys = platform_keys
        self._apiv3_key = apiv3_key
        # Where WeChat announces REFUND.SUCCESS / ABNORMAL / CLOSED (the API's receiver).
        self._notify_url = notify_url
        self._refresh = CertificateRefresh(
            platform_keys,
            apiv3_key=apiv3_key,
            download=self._download_certificates,
            enabled=refresh_certificates,
            interval=refresh_interval,
        )

    @property
    def platform_keys(self) -> WechatPayKeys:
        return self._keys

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
        """(ciphertext, serial of the key it is for): a bank field for `AbnormalRefundRequest`.

        Encrypted for the WeChat Pay public key when configured, else for the valid platform
        certificate that expires last; the serial goes in the request's `Wechatpay-Serial`."""
        key, serial = self._keys.encryption_key()
        return wechatpay_encrypt_sensitive(key, text), serial

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
        try:
            self._keys.verify(headers, body)
        except SignatureInvalid as invalid:
            if invalid.sub_code == UNKNOWN_SERIAL and self._refresh.may_refresh(headers):
                # WeChat retries the notification: by then the new certificate is known.
                self._refresh.refresh_soon()
            raise
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
        response = await self._send(method, path, body, encrypted_with=encrypted_with)
        raw = response.content
        code, message = ("", "") if response.is_success else _error_words(raw)
        if response.status_code >= 500 or response.status_code == 429:
            raise GatewayUnavailable(
                f"wechat {method} {path}: HTTP {response.status_code} {message}".rstrip(),
                code or f"HTTP_{response.status_code}",
            )
        try:
            await self._verify(response)
        except SignatureInvalid as invalid:
            # Unsigned or forged: whatever it says, the outcome is unknown (never "refused").
            logger.warning(
                "wechat %s %s: unverified answer HTTP %s %s: %s",
                method,
                path,
                response.status_code,
                code,
                invalid.message,
            )
            raise SignatureInvalid(
                f"wechat {method} {path}: answer HTTP {response.status_code} "
                f"{code or '-'} not verified: {invalid.message}",
                sub_code=invalid.sub_code,
            ) from invalid
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

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        encrypted_with: str | None = None,
    ) -> httpx.Response:
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
        # Encrypted fields name the key that can read them; otherwise naming our WeChat Pay
        # public key is what makes WeChat sign the answer with it instead of a certificate.
        serial = encrypted_with or self._keys.public_key_id
        if serial:
            request.headers["Wechatpay-Serial"] = serial
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
            return await self._http.send(request)
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"wechat {method} {path}: {type(exc).__name__}") from exc

    async def _verify(self, response: httpx.Response) -> None:
        try:
            self._keys.verify(response.headers, response.content)
        except SignatureInvalid as invalid:
            if invalid.sub_code != UNKNOWN_SERIAL or not self._refresh.may_refresh(
                response.headers
            ):
                raise
            # A rotated platform certificate: fetch the current ones, then try once more.
            if not await self.refresh_certificates():
                raise
            self._keys.verify(response.headers, response.content)

    async def refresh_certificates(self) -> int:
        """Download WeChat's platform certificates and trust the new ones; returns how many
        were new. At most once per refresh interval; never raises (`CertificateRefresh`)."""
        return await self._refresh.refresh()

    async def _download_certificates(self) -> httpx.Response:
        return await self._send("GET", CERTIFICATES_PATH)

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

"""Alipay OpenAPI (gateway.do, RSA2) for refunds: `alipay.trade.refund` and its query.

Alipay has no refund notification. Its refund answer says `fund_change: "Y"` when this very
call moved money; `"N"` (or no field) means "already refunded earlier with this
`out_request_no`, or still in progress", which only `alipay.trade.fastpay.refund.query`
settles: `refund_status = REFUND_SUCCESS` is the only proof that money moved (`code 10000`
merely says the query itself worked).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from domain.types import PaymentChannel, PayoutState
from peers.payouts import (
    NOT_FOUND,
    AnswerUntrusted,
    GatewayRefund,
    GatewayRefused,
    GatewayUnavailable,
    RefundOrder,
    SignatureInvalid,
    fen_to_yuan,
    yuan_to_fen,
)
from peers.signing import alipay_sign, rsa_verify

__all__ = [
    "ALIPAY_TZ",
    "REFUND_METHOD",
    "REFUND_QUERY_METHOD",
    "AlipayClient",
    "alipay_timestamp",
    "extract_response_node",
]

logger = logging.getLogger(__name__)

REFUND_METHOD = "alipay.trade.refund"
REFUND_QUERY_METHOD = "alipay.trade.fastpay.refund.query"
ALIPAY_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # `timestamp` is Beijing time
SUCCESS_CODE = "10000"
# `raw_status` of a query answer that carries refund data but no `refund_status`.
STATUS_MISSING = "REFUND_STATUS_MISSING"
# Alipay's own failures: the request may or may not have been processed; retry the same number.
_TRANSIENT_CODES = {"20000"}
_TRANSIENT_SUB_CODES = {"ACQ.SYSTEM_ERROR", "isp.unknow-error", "aop.ACQ.SYSTEM_ERROR"}


def alipay_timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(ALIPAY_TZ)).astimezone(ALIPAY_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def extract_response_node(body: str, key: str) -> tuple[str, dict[str, Any], str | None]:
    """Return (exact JSON text of `key`'s value, the parsed value, the `sign`).

    Alipay signs the response node byte for byte as it sent it, so re-serialising the parsed
    object would not verify (key order, escaping, spacing); we slice the original text.
    """
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("response is not a JSON object")
    if key not in document and "error_response" in document:
        key = "error_response"  # Alipay could not even route the call (bad app_id, method...)
    if not isinstance(document.get(key), dict):
        raise ValueError(f"response has no {key} object")
    sign = document.get("sign")
    decoder = json.JSONDecoder()
    marker = json.dumps(key)
    search_from = 0
    while (position := body.find(marker, search_from)) >= 0:
        i = _skip_space(body, position + len(marker))
        if body.startswith(":", i):
            i = _skip_space(body, i + 1)
            try:
                node, end = decoder.raw_decode(body, i)
            except json.JSONDecodeError:
                node, end = None, i
            if isinstance(node, dict):
                return body[i:end], node, sign if isinstance(sign, str) else None
        search_from = position + 1
    raise ValueError(f"response has no {key} object")


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


class AlipayClient:
    """Calls Alipay's gateway; one instance per app, sharing the worker's `httpx.AsyncClient`.

    A `PayoutGateway` (`send_refund`, `query_refund`) for the Alipay route."""

    channel = PaymentChannel.ALIPAY
    instant = False

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        app_id: str,
        app_private_key: rsa.RSAPrivateKey,
        alipay_public_key: rsa.RSAPublicKey,
    ) -> None:
        self._http = http
        self._url = url
        self._app_id = app_id
        self._private_key = app_private_key
        self._alipay_public_key = alipay_public_key

    async def send_refund(self, order: RefundOrder) -> GatewayRefund:
        return await self.refund(
            trade_no=order.transaction_id or "",
            out_request_no=order.out_refund_no,
            amount=order.amount,
            reason=order.reason,
        )

    async def query_refund(self, order: RefundOrder) -> GatewayRefund:
        found = await self.query(
            trade_no=order.transaction_id or "", out_request_no=order.out_refund_no
        )
        if found.raw_status != STATUS_MISSING:
            return found
        # Alipay's guide for a refund the query does not show as done: send it again with the
        # same out_request_no (it refunds at most once); fund_change "Y" proves it moved now.
        again = await self.send_refund(order)
        return again if again.state is PayoutState.SUCCEEDED else found

    async def refund(
        self, *, trade_no: str, out_request_no: str, amount: int, reason: str
    ) -> GatewayRefund:
        """Refund `amount` fen of `trade_no`; `out_request_no` makes repeats harmless.

        SUCCEEDED when this call moved the money (`fund_change = "Y"`), else PROCESSING: a
        repeat of an earlier number, or a refund still under way; `query` decides.
        """
        node = await self._call(
            REFUND_METHOD,
            {
                "trade_no": trade_no,
                "refund_amount": fen_to_yuan(amount),
                "out_request_no": out_request_no,
                "refund_reason": reason[:256],
            },
        )
        fund_change = str(node.get("fund_change", ""))
        return GatewayRefund(
            state=PayoutState.SUCCEEDED if fund_change == "Y" else PayoutState.PROCESSING,
            gateway_refund_id=None,  # Alipay identifies a refund only by our out_request_no
            amount=amount,
            raw_status=f"fund_change={fund_change or '-'}",
        )

    async def query(self, *, trade_no: str, out_request_no: str) -> GatewayRefund:
        """Where the refund `out_request_no` of `trade_no` stands.

        A refund Alipay does not know answers state PENDING with raw_status NOT_FOUND: the
        refund call never arrived, and sending it again with the same number is safe. Refund
        data *without* `refund_status` means "not (yet) refunded" (Alipay: still in progress,
        not received, or failed): PROCESSING with raw_status REFUND_STATUS_MISSING, which
        Alipay's guide answers by sending the refund again under the same number. An
        unknown status word is UNKNOWN, never SUCCEEDED.
        """
        node = await self._call(
            REFUND_QUERY_METHOD,
            {
                "trade_no": trade_no,
                "out_request_no": out_request_no,
                "query_options": ["gmt_refund_pay"],
            },
        )
        refund_amount = node.get("refund_amount")
        if not node.get("out_request_no") and not refund_amount:
            return GatewayRefund(state=PayoutState.PENDING, amount=0, raw_status=NOT_FOUND)
        status = str(node.get("refund_status") or "")
        if status == "REFUND_SUCCESS":
            state = PayoutState.SUCCEEDED
        elif not status:
            state = PayoutState.PROCESSING
        else:
            state = PayoutState.UNKNOWN
        return GatewayRefund(
            state=state,
            gateway_refund_id=None,
            amount=yuan_to_fen(str(refund_amount)) if refund_amount else 0,
            raw_status=status or STATUS_MISSING,
        )

    async def _call(self, method: str, biz_content: dict[str, Any]) -> dict[str, Any]:
        params = {
            "app_id": self._app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": alipay_timestamp(),
            "version": "1.0",
            "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
        }
        params["sign"] = alipay_sign(self._private_key, params)
        try:
            response = await self._http.post(
                self._url,
                data=params,
                headers={"Accept": "application/json"},
            )
        except httpx.TransportError as exc:  # timeouts, refused connections, resets
            raise GatewayUnavailable(f"alipay {method}: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise GatewayUnavailable(
                f"alipay {method}: HTTP {response.status_code}", f"HTTP_{response.status_code}"
            )
        try:
            text, node, sign = extract_response_node(response.text, _response_key(method))
        except ValueError as exc:
            raise GatewayUnavailable(f"alipay {method}: unreadable answer") from exc
        code = str(node.get("code", "")) or f"HTTP_{response.status_code}"
        sub_code = str(node.get("sub_code") or "") or None
        message = str(node.get("sub_msg") or node.get("msg") or "")
        transient = code in _TRANSIENT_CODES or sub_code in _TRANSIENT_SUB_CODES
        claimed = f"{code}/{sub_code}" if sub_code else code  # what an unverified answer says
        if not sign or not rsa_verify(self._alipay_public_key, text.encode("utf-8"), sign):
            # Nothing unsigned is a refusal: Alipay's own "retry with the same parameters"
            # (20000) is retried; any other unsigned or forged answer leaves the outcome
            # unknown, to be settled by a signed query.
            logger.warning(
                "alipay %s: unverified answer code=%s sub_code=%s", method, code, sub_code
            )
            if transient:
                raise GatewayUnavailable(
                    f"alipay {method}: {message or 'unsigned error'}", code, sub_code=sub_code
                )
            if not sign:
                raise AnswerUntrusted(
                    "UNSIGNED_ANSWER", f"alipay {method}: unsigned answer", sub_code=claimed
                )
            raise SignatureInvalid(
                f"alipay {method}: answer signature does not verify", sub_code=claimed
            )
        if response.status_code != 200:
            raise GatewayUnavailable(
                f"alipay {method}: HTTP {response.status_code}", code, sub_code=sub_code
            )
        if code == SUCCESS_CODE:
            return node
        logger.info("alipay %s refused: code=%s sub_code=%s", method, code, sub_code)
        if transient:
            raise GatewayUnavailable(f"alipay {method}: {message}", code, sub_code=sub_code)
        raise GatewayRefused(code, message, sub_code=sub_code)

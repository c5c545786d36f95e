"""A local Alipay gateway (`/gateway.do`, POST or GET) for refunds, behaving as Alipay documents.

It verifies the app's RSA2 signature (40002 isv.invalid-signature otherwise), signs every answer
with the "Alipay" platform key over the exact JSON text of the response node, refunds each
`out_request_no` of a trade once (a repeat answers `fund_change: "N"`), refuses to refund more
than a registered payment's total, and settles refunds only through
`alipay.trade.fastpay.refund.query`, as the real gateway has no refund notification.

Armed faults (`POST /sandbox/faults`) for the refund call: `processing` (settles later),
`timeout` (recorded, answered late), `error_5xx`, `closed` (ACQ.TRADE_HAS_CLOSE),
`system_error` (signed 20000 ACQ.SYSTEM_ERROR, nothing recorded), `unsigned_system_error`
(20000 isp.unknow-error *without* `sign`, nothing recorded: retry the same number),
`bad_signature` (refunded, but the answer's `sign` does not verify) and `no_status` (recorded,
but it stays in progress: queries answer refund data without `refund_status` until
`PUT /sandbox/refunds/{out_request_no}` settles it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response

from peers.alipay import ALIPAY_TZ, REFUND_METHOD, REFUND_QUERY_METHOD
from peers.payouts import fen_to_yuan, yuan_to_fen
from peers.signing import alipay_verify, rsa_sign
from sandbox.control import gateway_control_router
from sandbox.faults import FaultPlan
from sandbox.ledger import PROCESSING, SUCCESS, Ledger, RefundRecord

__all__ = ["FAULT_MODES", "create_alipay_app"]

FAULT_MODES = frozenset(
    {
        "processing",
        "timeout",
        "error_5xx",
        "closed",
        "system_error",
        "unsigned_system_error",
        "bad_signature",
        "no_status",
    }
)


def _beijing(moment: datetime | None) -> str | None:
    return moment.astimezone(ALIPAY_TZ).strftime("%Y-%m-%d %H:%M:%S") if moment else None


def create_alipay_app(
    *,
    app_id: str,
    app_public_key: rsa.RSAPublicKey,
    platform_private_key: rsa.RSAPrivateKey,
    settle_after: float = 2.0,
    settle_after_queries: int | None = 3,
    fault_delay: float = 15.0,
) -> FastAPI:
    """The sandbox Alipay gateway for one app.

    `settle_after` (seconds) or the `settle_after_queries`-th query settles a "processing"
    refund; `fault_delay` is how long a "timeout" fault hangs before answering.
    """
    ledger = Ledger(settle_after=settle_after, settle_after_queries=settle_after_queries)
    faults = FaultPlan(FAULT_MODES)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await ledger.cancel_tasks()

    app = FastAPI(title="Sandbox Alipay", lifespan=lifespan)
    app.state.ledger = ledger
    app.state.faults = faults
    app.include_router(gateway_control_router(ledger, faults))

    def answer(
        method: str,
        node: dict[str, Any],
        *,
        status_code: int = 200,
        signed: bool = True,
        forged: bool = False,
    ) -> Response:
        """The response document; `signed=False` leaves out `sign` (as Alipay does on some
        system errors), `forged=True` signs something else, so the `sign` does not verify."""
        node_text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        key = method.replace(".", "_") + "_response"
        if not signed:
            body = f'{{"{key}":{node_text}}}'
        else:
            signed_text = node_text + " " if forged else node_text
            sign = rsa_sign(platform_private_key, signed_text.encode("utf-8"))
            body = f'{{"{key}":{node_text},"sign":"{sign}"}}'
        return Response(
            body.encode("utf-8"),
            status_code=status_code,
            media_type="application/json;charset=utf-8",
        )

    def failure(method: str, code: str, msg: str, sub_code: str, sub_msg: str) -> Response:
        return answer(method, {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg})

    # Our client POSTs a form; Alipay's SDKs also GET with every parameter in the query string.
    @app.api_route("/gateway.do", methods=["GET", "POST"])
    async def gateway(request: Request) -> Response:
        raw = (await request.body()).decode("utf-8")
        params = dict(parse_qsl(raw, keep_blank_values=True))
        params.update({k: v for k, v in request.query_params.items() if k not in params})
        method = params.get("method", "")
        if params.get("app_id") != app_id:
            return failure(
                method, "40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数"
            )
        if params.get("sign_type") != "RSA2":
            return failure(
                method, "40002", "Invalid Arguments", "isv.invalid-signature-type", "无效签名类型"
            )
        if not alipay_verify(app_public_key, params, params.get("sign", "")):
            return failure(
                method, "40002", "Invalid Arguments", "isv.invalid-signature", "验签出错"
            )
        try:
            biz = json.loads(params.get("biz_content", ""))
            if not isinstance(biz, dict):
                raise ValueError
        except ValueError:
            return failure(
                method, "40002", "Invalid Arguments", "isv.invalid-biz-content", "无效的业务参数"
            )
        if method == REFUND_METHOD:
            return await refund(biz)
        if method == REFUND_QUERY_METHOD:
            return await query(biz)
        return failure(method, "40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名")

    async def refund(biz: dict[str, Any]) -> Response:
        method = REFUND_METHOD
        trade_no = str(biz.get("trade_no") or biz.get("out_trade_no") or "")
        out_request_no = str(biz.get("out_request_no") or trade_no)
        try:
            amount = yuan_to_fen(str(biz.get("refund_amount", "")))
            if amount <= 0:
                raise ValueError
        except ValueError:
            return failure(method, "40004", "Business Failed", "ACQ.INVALID_PARAMETER", "参数无效")
        if not trade_no:
            return failure(method, "40004", "Business Failed", "ACQ.TRADE_NOT_EXIST", "交易不存在")

        fault = await faults.take()
        if fault == "error_5xx":
            return Response("Internal Server Error", status_code=500)
        if fault == "system_error":
            return failure(
                method, "20000", "Service Currently Unavailable", "ACQ.SYSTEM_ERROR", "系统错误"
            )
        if fault == "unsigned_system_error":
            # What Alipay sends when it could not process the call at all: no `sign`.
            return answer(
                method,
                {
                    "code": "20000",
                    "msg": "Service Currently Unavailable",
                    "sub_code": "isp.unknow-error",
                    "sub_msg": "系统繁忙",
                },
                signed=False,
            )
        if fault == "closed":
            return failure(
                method, "40004", "Business Failed", "ACQ.TRADE_HAS_CLOSE", "交易已经关闭"
            )

        key = f"{trade_no}/{out_request_no}"
        async with ledger.lock:
            record = ledger.refunds.get(key)
            if record is not None:
                record.requests += 1
                fund_change = "N"  # documented: a repeated out_request_no refunds only once
            elif ledger.exceeds_total(trade_no, amount):
                return failure(
                    method,
                    "40004",
                    "Business Failed",
                    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                    "退款金额超限",
                )
            else:
                # `no_status`: in progress with nothing to settle it but the control route.
                processing = fault in ("processing", "no_status")
                record = RefundRecord(
                    key=key,
                    transaction_id=trade_no,
                    out_refund_no=out_request_no,
                    amount=amount,
                    status=PROCESSING if processing else SUCCESS,
                    settles_to=SUCCESS if fault == "processing" else None,
                    gateway_refund_id=Ledger.new_refund_id("ALI"),
                    reason=str(biz.get("refund_reason") or ""),
                )
                ledger.add(record)
                fund_change = "N" if processing else "Y"
            node = {
                "code": "10000",
                "msg": "Success",
                "trade_no": trade_no,
                "out_trade_no": f"OUT{trade_no}",
                "buyer_logon_id": "san***@sandbox.example",
                "fund_change": fund_change,
                # Alipay reports the trade's cumulative refunded amount here, not this refund's.
                "refund_fee": fen_to_yuan(
                    sum(
                        r.amount
                        for r in ledger.refunds.values()
                        if r.transaction_id == trade_no and r.status == SUCCESS
                    )
                ),
                "gmt_refund_pay": _beijing(record.success_time or record.created_at),
                "send_back_fee": fen_to_yuan(record.amount if record.status == SUCCESS else 0),
            }
        if fault == "timeout":
            # The refund is recorded; only the answer is late. The caller's retry must not pay
            # again, which is exactly what the same out_request_no guarantees.
            await asyncio.sleep(fault_delay)
        return answer(method, node, forged=fault == "bad_signature")

    async def query(biz: dict[str, Any]) -> Response:
        method = REFUND_QUERY_METHOD
        trade_no = str(biz.get("trade_no") or biz.get("out_trade_no") or "")
        out_request_no = str(biz.get("out_request_no") or trade_no)
        options = biz.get("query_options") or []
        async with ledger.lock:
            record = ledger.refunds.get(f"{trade_no}/{out_request_no}")
            node: dict[str, Any] = {
                "code": "10000",
                "msg": "Success",
                "trade_no": trade_no,
                "out_trade_no": f"OUT{trade_no}",
            }
            if record is None:
                # Alipay's answer for a refund it never took: success, but no refund fields.
                return answer(method, node)
            ledger.note_query(record)
            payment = ledger.payments.get(trade_no)
            node.update(
                {
                    "out_request_no": record.out_refund_no,
                    "refund_amount": fen_to_yuan(record.amount),
                    "refund_reason": record.reason,
                }
            )
            if payment is not None:
                node["total_amount"] = fen_to_yuan(payment.amount)
            if record.status == SUCCESS:
                node["refund_status"] = "REFUND_SUCCESS"
                if "gmt_refund_pay" in options:
                    node["gmt_refund_pay"] = _beijing(record.success_time)
        return answer(method, node)

    return app

"""A stand-in for Aliyun SMS `SendSms` (peers/aliyun_sms.py has the protocol).

It checks what Aliyun checks — the access key, the HMAC-SHA1 signature, a fresh timestamp
and nonce, a known template with all its variables — renders the registered template's text,
and keeps every message for tests and the demo (`GET /sandbox/messages`). Armed faults
(`POST /sandbox/faults`): `rate_limit` (Aliyun's `isv.BUSINESS_LIMIT_CONTROL`), `error_5xx`,
`timeout` (answers 504 after `fault_delay` seconds, having sent nothing)."""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from string import Template
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from peers.aliyun_sms import rpc_signature
from sandbox.faults import FaultPlan, add_fault_routes

__all__ = ["FAULT_MODES", "create_sms_app"]

FAULT_MODES = frozenset({"rate_limit", "error_5xx", "timeout"})
MAX_SKEW = timedelta(minutes=15)
REQUIRED = (
    "AccessKeyId",
    "Action",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
    "Signature",
    "PhoneNumbers",
    "SignName",
    "TemplateCode",
)


def _answer(code: str, message: str, status: int = 200, **more: str) -> JSONResponse:
    return JSONResponse(
        {"Code": code, "Message": message, "RequestId": secrets.token_hex(8), **more},
        status_code=status,
    )


def create_sms_app(
    *, access_key_id: str, access_key_secret: str, templates: dict[str, str], fault_delay: float
) -> FastAPI:
    """`templates`: the registered templates' text by template code."""
    messages: list[dict[str, Any]] = []
    nonces: set[str] = set()
    lock = asyncio.Lock()
    faults = FaultPlan(FAULT_MODES)
    app = FastAPI(title="Sandbox Aliyun SMS")

    @app.api_route("/", methods=["GET", "POST"])
    async def send_sms(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.form()).items()})
        missing = [k for k in REQUIRED if not params.get(k)]
        if missing:
            return _answer("MissingParameter", f"missing {', '.join(missing)}", 400)
        if params["AccessKeyId"] != access_key_id:
            return _answer("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        expected = rpc_signature(access_key_secret, request.method, params)
        if not hmac.compare_digest(expected, params["Signature"]):
            return _answer(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
                400,
            )
        try:
            at = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return _answer("InvalidTimeStamp.Format", "Specified time stamp is not valid.", 400)
        if abs(datetime.now(UTC) - at) > MAX_SKEW:
            return _answer("InvalidTimeStamp.Expired", "Specified time stamp is expired.", 400)
        if params["Action"] != "SendSms":
            return _answer("InvalidAction.NotFound", f"no action {params['Action']}", 404)
        async with lock:
            if params["SignatureNonce"] in nonces:
                return _answer(
                    "SignatureNonceUsed", "Specified signature nonce was used already.", 400
                )
            nonces.add(params["SignatureNonce"])
        fault = await faults.take()
        if fault == "timeout":
            # Lost before it was sent: the caller's retry is the only copy the buyer gets.
            await asyncio.sleep(fault_delay)
            return _answer("ServiceUnavailable", "The request timed out.", 504)
        if fault == "error_5xx":
            return _answer(
                "ServiceUnavailable", "The request has failed due to a temporary failure.", 503
            )
        if fault == "rate_limit":
            return _answer("isv.BUSINESS_LIMIT_CONTROL", "触发号码分钟级流控Permits:1")
        text = templates.get(params["TemplateCode"])
        if text is None:
            return _answer("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            variables = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return _answer("isv.INVALID_JSON_PARAM", "JSON参数不合法")
        if not isinstance(variables, dict) or set(Template(text).get_identifiers()) - set(
            variables
        ):
            return _answer("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        biz_id = f"{secrets.randbelow(10**15):015d}^0"
        async with lock:
            messages.append(
                {
                    "sequence": len(messages) + 1,
                    "received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "phone": params["PhoneNumbers"],
                    "sign_name": params["SignName"],
                    "template_code": params["TemplateCode"],
                    "params": variables,
                    "text": f"【{params['SignName']}】" + Template(text).safe_substitute(variables),
                    "out_id": params.get("OutId"),
                    "biz_id": biz_id,
                }
            )
        return _answer("OK", "OK", BizId=biz_id)

    control = APIRouter(prefix="/sandbox", tags=["sandbox"])

    @control.get("/messages")
    async def list_messages(phone: Annotated[str | None, Query()] = None) -> dict[str, Any]:
        async with lock:
            return {"messages": [m for m in messages if phone is None or m["phone"] == phone]}

    add_fault_routes(control, faults)

    @control.post("/reset")
    async def reset() -> dict[str, Any]:
        await faults.clear()
        async with lock:
            messages.clear()
        return {"reset": True}

    app.include_router(control)
    return app

"""Aliyun SMS (短信服务) `SendSms`, the RPC-style API (version 2017-05-25).

The protocol (the sandbox in `sandbox/sms.py` serves the same one):

* A POST to the endpoint (`https://dysmsapi.aliyuncs.com/`) with a form body of common
  parameters (`AccessKeyId`, `Action=SendSms`, `Format=JSON`, `RegionId`, `SignatureMethod=
  HMAC-SHA1`, `SignatureNonce`, `SignatureVersion=1.0`, `Timestamp` in UTC ISO 8601,
  `Version`) and the call's own (`PhoneNumbers`, `SignName`, `TemplateCode`, `TemplateParam`
  as JSON, `OutId`). The form body rather than the query string: a phone number in a URL ends
  up in every proxy's access log.
* `Signature`: base64 of HMAC-SHA1, keyed with `AccessKeySecret + "&"`, over
  `METHOD&%2F&` + the percent-encoded canonical query (parameters sorted by name, each name and
  value percent-encoded per RFC 3986: UTF-8, `~` kept, space as `%20`).
* The answer is JSON: `{"Code": "OK", "BizId": ..., "RequestId": ...}`, or another `Code`
  (`isv.BUSINESS_LIMIT_CONTROL` when a number had too many messages, `isv.MOBILE_NUMBER_
  ILLEGAL`, `SignatureDoesNotMatch`, ...) with a `Message`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from domain.contacts import mask_phone
from peers.delivery import DeliveryFailed

__all__ = ["AliyunSmsClient", "SmsSent", "percent_encode", "rpc_signature", "string_to_sign"]

API_VERSION = "2017-05-25"
# Worth another try later: flow control per number, throttling, the provider's own trouble,
# an account out of credit (someone tops it up). Every other code is about the request itself.
RETRYABLE_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",
        "Throttling",
        "Throttling.User",
        "isp.SYSTEM_ERROR",
        "ServiceUnavailable",
        "InternalError",
        "isv.AMOUNT_NOT_ENOUGH",
    }
)


def percent_encode(value: str) -> str:
    """RFC 3986 as Aliyun's RPC signature wants it: only A-Z a-z 0-9 - _ . ~ stay."""
    return quote(value, safe="-_.~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())
    )
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def rpc_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """The `Signature` of an RPC call: every parameter but `Signature` itself is signed."""
    unsigned = {k: v for k, v in params.items() if k != "Signature"}
    digest = hmac.new(
        f"{secret}&".encode(), string_to_sign(method, unsigned).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class SmsSent:
    biz_id: str
    request_id: str


class AliyunSmsClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        region_id: str = "cn-hangzhou",
    ) -> None:
        self.http = http
        self.url = url
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.region_id = region_id

    def signed_params(
        self,
        phone: str,
        template_code: str,
        template_param: Mapping[str, str],
        *,
        out_id: str,
        nonce: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, str]:
        params = {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": self.region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            "PhoneNumbers": phone,
            "SignName": self.sign_name,
            "TemplateCode": template_code,
            "TemplateParam": json.dumps(template_param, ensure_ascii=False, sort_keys=True),
            "OutId": out_id,
        }
        params["Signature"] = rpc_signature(self.access_key_secret, "POST", params)
        return params

    async def send(
        self, phone: str, template_code: str, template_param: Mapping[str, str], *, out_id: str
    ) -> SmsSent:
        """Send one templated SMS. `out_id` (ours, echoed in Aliyun's receipts) names the
        outbox row. Raises `DeliveryFailed` (permanent or not) when it was not accepted."""
        params = self.signed_params(phone, template_code, template_param, out_id=out_id)
        to = mask_phone(phone)
        try:
            response = await self.http.post(self.url, data=params)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"sms to {to}: {type(exc).__name__}", permanent=False) from None
        try:
            answer = response.json()
            code = str(answer.get("Code", ""))
        except (ValueError, AttributeError):
            answer, code = {}, ""
        if response.status_code >= 500 or not code:
            raise DeliveryFailed(
                f"sms to {to}: HTTP {response.status_code} {code}".rstrip(), permanent=False
            )
        if code != "OK":
            message = str(answer.get("Message", ""))[:200]
            raise DeliveryFailed(
                f"sms to {to}: {code} {message}".rstrip(), permanent=code not in RETRYABLE_CODES
            )
        return SmsSent(
            biz_id=str(answer.get("BizId", "")), request_id=str(answer.get("RequestId", ""))
        )

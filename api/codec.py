"""The codec endpoint: the Temporal UI and CLI send a history's encrypted payloads here and
show what comes back, so people allowed to see a refund's details see them decrypted, and
nobody else (Temporal included) does.

Temporal's remote codec protocol: `POST /codec/decode` and `POST /codec/encode`, a
`temporal.api.common.v1.Payloads` message as protobuf JSON each way (`X-Namespace` is sent
and not needed: the keys are the service's). Point the UI at it with `--ui-codec-endpoint`
(dev server) or TEMPORAL_CODEC_ENDPOINT (UI container), the CLI with
`--codec-endpoint http://api:8000/codec --codec-auth "Bearer <key>"`.

Outside ENVIRONMENT=dev a caller needs `Authorization: Bearer <key>` of a reviewer or admin
(the people who see refunds' details through the API anyway); CORS admits the UI's origins
(CODEC_CORS_ORIGINS), with credentials, so a UI behind single sign-on can pass its token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from api.edge import bearer_token
from api.problems import Problem
from config.payload_encryption import PayloadEncryption, UnknownPayloadKey
from config.settings import Settings
from domain.types import Role

router = APIRouter(prefix="/codec", include_in_schema=False)
ALLOWED_ROLES = frozenset({Role.REVIEWER, Role.ADMIN})
ALLOWED_HEADERS = "authorization,content-type,x-namespace"


def _cors_headers(settings: Settings, origin: str | None) -> dict[str, str]:
    origins = {o.strip() for o in settings.codec_cors_origins.split(",") if o.strip()}
    if not origin or origin not in origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _authorize(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.environment == "dev":
        return
    keys: dict[str, Role] = request.app.state.api_keys
    role = keys.get(bearer_token(request.headers.get("authorization")))
    if role is None:
        raise Problem(401, "unauthorized", "Unauthorized", "a reviewer's or admin's key is needed")
    if role not in ALLOWED_ROLES:
        raise Problem(403, "forbidden", "Forbidden", f"role {role.value} may not see payloads")


async def _apply(request: Request, decode: bool) -> Response:
    settings: Settings = request.app.state.settings
    cors = _cors_headers(settings, request.headers.get("origin"))
    try:
        _authorize(request)
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except (json_format.ParseError, DecodeError, UnicodeDecodeError) as err:
            raise Problem(400, "bad-payloads", "Not a Payloads message", str(err)) from None
        codec: PayloadEncryption | None = request.app.state.payload_codec
        if codec is not None:
            try:
                changed = await (codec.decode if decode else codec.encode)(payloads.payloads)
            except UnknownPayloadKey as err:
                raise Problem(422, "unknown-payload-key", "Unknown payload key", str(err)) from None
            payloads = Payloads(payloads=changed)
    except Problem as refused:
        refused.headers = {**(refused.headers or {}), **cors}
        raise
    body = json_format.MessageToJson(payloads)
    return Response(body, media_type="application/json", headers=cors)


@router.post("/decode")
async def decode(request: Request) -> Response:
    return await _apply(request, decode=True)


@router.post("/encode")
async def encode(request: Request) -> Response:
    return await _apply(request, decode=False)


@router.options("/decode")
@router.options("/encode")
async def preflight(request: Request) -> Response:
    """Browsers ask before a cross-origin POST, without credentials: answer for the origin."""
    settings: Settings = request.app.state.settings
    headers: dict[str, Any] = _cors_headers(settings, request.headers.get("origin"))
    return Response(status_code=204 if headers else 403, headers=headers)

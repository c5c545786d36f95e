"""The peers' clients as the settings describe them: one place that knows which key file
and URL goes to which client (the worker, the API and `refundctl reconcile` share it)."""

from __future__ import annotations

from typing import Any

import httpx

from config.settings import Settings
from domain.buyer_messages import TEMPLATES, BuyerStage
from domain.contacts import Language
from peers import signing
from peers.alipay import AlipayClient
from peers.aliyun_sms import AliyunSmsClient
from peers.balance import BalanceGateway
from peers.mail import SmtpMailer
from peers.payouts import Gateways
from peers.supplier import SupplierClient
from peers.supplier_claims import SupplierClaims
from peers.wechat_keys import WechatPayKeys, load_certificates
from peers.wechatpay import WechatPayClient


def alipay_client(settings: Settings, http: httpx.AsyncClient) -> AlipayClient:
    return AlipayClient(
        http,
        url=settings.alipay_url,
        app_id=settings.alipay_app_id,
        app_private_key=signing.load_private_key(settings.alipay_private_key_path),
        alipay_public_key=signing.load_public_key(settings.alipay_public_key_path),
    )


def wechat_keys(settings: Settings) -> WechatPayKeys:
    """The platform certificates and/or the WeChat Pay public key the settings name."""
    public_key_id = settings.wechat_public_key_id or None
    return WechatPayKeys(
        certificates=load_certificates(settings.wechat_platform_cert_paths()),
        public_key=(
            signing.load_public_key(settings.wechat_public_key_path) if public_key_id else None
        ),
        public_key_id=public_key_id,
        max_clock_skew_seconds=settings.wechat_clock_skew_seconds,
    )


def wechat_client(settings: Settings, http: httpx.AsyncClient) -> WechatPayClient:
    return WechatPayClient(
        http,
        base_url=settings.wechat_url,
        mchid=settings.wechat_mchid,
        serial_no=settings.wechat_serial_no,
        merchant_private_key=signing.load_private_key(settings.wechat_private_key_path),
        platform_keys=wechat_keys(settings),
        apiv3_key=settings.wechat_apiv3_key,
        notify_url=settings.public_base_url.rstrip("/") + "/v1/gateways/wechat/notify",
        refresh_certificates=settings.wechat_refresh_certificates,
    )


def payout_gateways(settings: Settings, http: httpx.AsyncClient) -> Gateways:
    """Every route money goes back through, by channel. A new route is one line here."""
    return Gateways(
        [
            alipay_client(settings, http),
            wechat_client(settings, http),
            BalanceGateway(),
        ]
    )


def supplier_client(settings: Settings, http: httpx.AsyncClient) -> SupplierClient:
    return SupplierClient(http, **_supplier_access(settings))


def supplier_claims_client(settings: Settings, http: httpx.AsyncClient) -> SupplierClaims:
    """Claims go to the supplier the keys came from, with the same key and secret."""
    return SupplierClaims(http, **_supplier_access(settings))


def _supplier_access(settings: Settings) -> dict[str, Any]:
    return {
        "url_for": settings.supplier_url_for,
        "api_key": settings.supplier_api_key,
        "secret": settings.supplier_secret,
    }


def sms_client(settings: Settings, http: httpx.AsyncClient) -> AliyunSmsClient | None:
    """None when SMS is off (no SMS_URL)."""
    if not settings.sms_url:
        return None
    return AliyunSmsClient(
        http,
        url=settings.sms_url,
        access_key_id=settings.sms_access_key_id,
        access_key_secret=settings.sms_access_key_secret,
        sign_name=settings.sms_sign_name,
        region_id=settings.sms_region_id,
    )


def sms_template_codes(settings: Settings) -> dict[tuple[BuyerStage, Language], str]:
    """Aliyun's code for each registered template: the defaults, then SMS_TEMPLATE_CODES's
    `stage.lang=SMS_...` pairs over them."""
    codes = {key: words.sms.code for key, words in TEMPLATES.items()}
    for pair in filter(None, (p.strip() for p in settings.sms_template_codes.split(","))):
        name, _, code = pair.partition("=")
        stage, _, lang = name.strip().partition(".")
        codes[(BuyerStage(stage), Language(lang))] = code.strip()
    return codes


def mailer(settings: Settings) -> SmtpMailer | None:
    """None when e-mail is off (no SMTP_HOST)."""
    if not settings.smtp_host:
        return None
    security = settings.smtp_security
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_sender,
        sender_name=settings.smtp_sender_name,
        username=settings.smtp_username,
        password=settings.smtp_password,
        start_tls={"auto": None, "starttls": True}.get(security, False),
        use_tls=security == "tls",
        timeout=settings.http_timeout_seconds,
    )

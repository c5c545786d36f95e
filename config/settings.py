"""Process settings, read from the environment (prefix-free names, e.g. DATABASE_URL).

Workflow code never reads these: workflows get what they need through activities.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from limits import parse_many
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.types import Role

DEV_SECRET = "dev-only-secret-change-me"
VAR_DIR = Path("var")
# The id of the sandbox's "WeChat Pay public key" (real ids are issued by WeChat per merchant).
SANDBOX_WECHAT_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000000012026112900000000000001"
# The payload key of dev, demo and tests: public, so refused in production.
DEV_PAYLOAD_KEY_ID = "dev"
DEV_PAYLOAD_KEYS = f"{DEV_PAYLOAD_KEY_ID}=ZGV2LW9ubHkta2V5LWthbWktcmVmdW5kcy0zMmJ5dGU="


def parse_key_ids(keys: str) -> list[str]:
    """The key ids of a PAYLOAD_ENCRYPTION_KEYS value, in order."""
    return [pair.partition("=")[0].strip() for pair in keys.split(",") if pair.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    environment: str = Field(default="dev", description="dev | test | production")

    database_url: str = f"sqlite+aiosqlite:///{VAR_DIR}/kami.db"

    # Set (in code or the environment), these win; unset, a temporal.toml profile's address
    # and namespace do, else these defaults. TLS, mTLS and API keys come from Temporal's own
    # environment configuration (config/temporal.py).
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "refunds"

    # `key:role` pairs, comma separated: "pk_live_x:platform,rk_y:reviewer,ak_z:admin".
    api_keys: str = ""

    # Where the RefundWorkflow reads its decision policy; empty means the shipped default.
    policy_path: str = ""

    # Card-key supplier(s): a default base URL, and optional per-supplier overrides as
    # "sup-a=http://...,sup-b=http://...".
    supplier_url: str = "http://127.0.0.1:8101"
    supplier_urls: str = ""
    supplier_api_key: str = "kami-refunds"
    supplier_secret: str = DEV_SECRET

    alipay_url: str = "http://127.0.0.1:8102/gateway.do"
    alipay_app_id: str = "2021000000000001"
    alipay_private_key_path: str = str(VAR_DIR / "keys" / "alipay_app_private.pem")
    alipay_public_key_path: str = str(VAR_DIR / "keys" / "alipay_platform_public.pem")

    wechat_url: str = "http://127.0.0.1:8103"
    wechat_mchid: str = "1900000001"
    wechat_serial_no: str = "SANDBOXMCHSERIAL0001"
    wechat_private_key_path: str = str(VAR_DIR / "keys" / "wechat_merchant_private.pem")
    wechat_apiv3_key: str = "0123456789abcdef0123456789abcdef"  # 32 bytes, AES-256-GCM
    # What WeChat Pay signs answers and notifications with, chosen by their Wechatpay-Serial.
    # Platform certificates: PEM files or directories of them, comma separated (empty: none).
    wechat_platform_certs: str = str(VAR_DIR / "keys" / "wechat_platform_cert.pem")
    # The WeChat Pay public key and its id; with an id, every request names it in
    # Wechatpay-Serial and WeChat signs the answer with it. Empty id: certificates only.
    wechat_public_key_path: str = str(VAR_DIR / "keys" / "wechat_pubkey_public.pem")
    wechat_public_key_id: str = SANDBOX_WECHAT_PUBLIC_KEY_ID
    # How far a signed answer's or notification's Wechatpay-Timestamp may be from our clock.
    wechat_clock_skew_seconds: int = Field(default=300, ge=0)
    # Download new platform certificates (GET /v3/certificates) on an unknown serial.
    wechat_refresh_certificates: bool = True
    # Gone: a bare key cannot be matched to an answer's Wechatpay-Serial (refused if set).
    wechat_platform_public_key_path: str = ""

    # Where gateways send refund notifications (the API's public address).
    public_base_url: str = "http://127.0.0.1:8000"

    platform_webhook_url: str = ""
    platform_webhook_secret: str = DEV_SECRET

    http_timeout_seconds: float = 10.0

    # Buyers hear by SMS and e-mail where the order carries their contact (README "What a
    # buyer receives"). SMS: Aliyun SMS `SendSms` at this endpoint (production:
    # https://dysmsapi.aliyuncs.com/); empty (the default) turns SMS off; `refundctl dev` and
    # the tests point it at the sandbox. Template codes are the ones Aliyun
    # assigned to the registered templates: `stage.lang=SMS_...` pairs, comma separated, over
    # the defaults the sandbox knows (domain/buyer_messages.py).
    sms_url: str = ""
    sms_access_key_id: str = "sandbox-sms-key"
    sms_access_key_secret: str = DEV_SECRET
    sms_sign_name: str = "卡密退款"
    sms_region_id: str = "cn-hangzhou"
    sms_template_codes: str = ""
    # E-mail over SMTP; an empty host (the default) turns e-mail off; `refundctl dev` and the
    # tests point it at the SMTP sink. `smtp_security`: "auto" (STARTTLS when
    # the server offers it), "starttls" (required), "tls" (implicit, port 465) or "none".
    smtp_host: str = ""
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    smtp_sender: str = "refunds@kami-refunds.example"
    smtp_sender_name: str = ""
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: str = Field(default="auto", pattern="^(auto|starttls|tls|none)$")
    # Tries per buyer message before the dispatcher gives up on it (back-off 1 s, 2 s, 4 s ...
    # up to 5 minutes between tries); a final refusal (an illegal number, no such mailbox)
    # stops at once.
    buyer_message_max_attempts: int = Field(default=10, ge=1, le=100)

    # `refundctl worker` processes per host (one event loop and GIL each): as many as the
    # worker's share of the host's cores.
    worker_processes: int = Field(default=1, ge=1, le=64)
    # Workflows a worker process keeps in memory between their tasks (the SDK's default is
    # 1,000). Only refunds in flight need to stay: one waiting 24 h for a reviewer is
    # replayed from its ~15 events when the answer comes, a few milliseconds. Each cached
    # refund holds ~160 KB, so with a review backlog the SDK's default took a worker from
    # 146 to 309 MiB (README "Benchmark").
    worker_max_cached_workflows: int = Field(default=300, ge=0, le=100_000)

    # The buyer's progress page (/r/{refund_id}?t=...): links are HMAC-signed with this secret
    # and expire after the TTL (the platform mints them: POST /v1/refunds/{id}/buyer-link).
    buyer_link_secret: str = DEV_SECRET
    buyer_link_ttl_hours: int = Field(default=720, ge=1, le=24 * 366)

    # The reviewer console (/console): how long a sign-in lasts, sign-in attempts allowed per
    # client address and name (`limits` notation), and the Temporal UI each case links to.
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    console_sign_in_limit: str = "10/minute"
    temporal_ui_url: str = "http://127.0.0.1:8233"

    # The database pool of the API process (issue 8: a crowd of callers must not drain it).
    # A request that waits longer than the pool timeout for a connection gets 503.
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    # Limits at the HTTP edge, checked before any work (README, "Limits").
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # `limits` notation, several separated by ";" ("100/second;2000/minute"); empty: no limit.
    # Counted per API key on every write (POST/PUT/PATCH/DELETE), and per buyer (the body's
    # buyer_id, scoped to the key) on writes that name one.
    rate_limit_per_key: str = "1000/second"
    rate_limit_per_buyer: str = "300/minute"

    # GET /v1/refunds/{id}/events: open streams per key, a stream's lifetime (the client
    # reconnects with Last-Event-ID), how often one watcher looks for changes for all open
    # streams, and the keep-alive comment interval.
    stream_max_per_key: int = Field(default=500, ge=1)
    stream_max_seconds: float = Field(default=900.0, gt=0)
    stream_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    stream_keepalive_seconds: float = Field(default=15.0, gt=0)

    # Times in a request may run ahead of this server's clock by at most this much (clock skew
    # between the platform and us); later ones are refused as implausible.
    max_clock_skew_seconds: float = Field(default=300.0, ge=0)

    # --- running it in production (README "For SREs"): telemetry, payload keys, versions ----
    # Payload encryption (config/payload_encryption.py): `key_id=base64 key` pairs, comma
    # separated, 32-byte keys (AES-256-GCM). The first encrypts; every one decrypts, so a new
    # key goes first and the old ones stay until no running refund holds their payloads.
    # Empty: no encryption (refused in production). The file form suits container secrets.
    payload_encryption_keys: str = DEV_PAYLOAD_KEYS
    payload_encryption_keys_file: str = ""
    # Browser origins of the Temporal UI allowed to call the codec endpoint (/codec/*).
    codec_cors_origins: str = "http://127.0.0.1:8233,http://localhost:8233"
    # Bearer tokens Prometheus scrapes /metrics with (comma separated, for rotation); admin API
    # keys work too. Outside ENVIRONMENT=dev, /metrics and /codec refuse anyone else.
    metrics_tokens: str = ""
    # The worker's own HTTP endpoint (/metrics with the SDK's runtime metrics, /healthz):
    # host:port, empty for none.
    worker_metrics_address: str = ""
    # How often the worker reads the figures that come from the database (backlogs, oldest
    # deadline, stuck refunds), and the ledger's trial balance (a full sum: slower).
    metrics_db_seconds: float = Field(default=15.0, gt=0)
    metrics_ledger_seconds: float = Field(default=300.0, gt=0)
    # Stage limits: past these a refund is "stuck" (refundctl stuck, GET /v1/admin/stuck and
    # the kami_refunds_stuck gauge).
    stuck_refunding_minutes: float = Field(default=30.0, ge=0)
    stuck_stage_minutes: float = Field(default=10.0, ge=0)
    stuck_unstarted_seconds: float = Field(default=120.0, ge=0)
    # Worker versioning (Temporal Worker Deployments): with a build id the worker joins
    # deployment WORKER_DEPLOYMENT_NAME as that version; new refunds run on the deployment's
    # current version and, pinned, finish on the version they started on.
    worker_build_id: str = ""
    worker_deployment_name: str = "kami-refunds"
    worker_versioning_behavior: str = Field(default="pinned", pattern="^(pinned|auto_upgrade)$")
    # OpenTelemetry traces over OTLP/HTTP, off unless an endpoint is set (the standard names).
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""
    otel_service_name: str = ""
    # Log lines: "json" (one object per line, with refund_id, workflow_id and trace_id) or
    # "text"; empty: text in dev, JSON elsewhere.
    log_format: str = Field(default="", pattern="^(|json|text)$")

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            for name in ("supplier_secret", "platform_webhook_secret"):
                if getattr(self, name) == DEV_SECRET:
                    raise ValueError(f"{name.upper()} must be set in production")
            if not self.api_keys:
                raise ValueError("API_KEYS must be set in production")
            if self.wechat_public_key_id == SANDBOX_WECHAT_PUBLIC_KEY_ID:
                raise ValueError(
                    "WECHAT_PUBLIC_KEY_ID must be set in production "
                    "(your PUB_KEY_ID_..., or empty to use platform certificates only)"
                )
            # Buyers' links to their progress page are signed with it: a known or short
            # secret would let anyone read any refund's page.
            if self.buyer_link_secret == DEV_SECRET or len(self.buyer_link_secret) < 32:
                raise ValueError(
                    "BUYER_LINK_SECRET must be set in production (at least 32 characters)"
                )
            if self.payload_key_text() and DEV_PAYLOAD_KEY_ID in parse_key_ids(
                self.payload_key_text()
            ):
                raise ValueError(
                    "PAYLOAD_ENCRYPTION_KEYS must be your own keys in production, not the dev key"
                )
            if not self.payload_key_text():
                raise ValueError("PAYLOAD_ENCRYPTION_KEYS must be set in production")
            if self.sms_url and self.sms_access_key_secret == DEV_SECRET:
                raise ValueError(
                    "SMS_ACCESS_KEY_SECRET must be set in production (or SMS_URL empty)"
                )
        return self

    @model_validator(mode="after")
    def _wechat_keys(self) -> Settings:
        if self.wechat_platform_public_key_path:
            raise ValueError(
                "WECHAT_PLATFORM_PUBLIC_KEY_PATH is no longer read: WeChat Pay signs with "
                "platform certificates (WECHAT_PLATFORM_CERTS) or the WeChat Pay public key "
                "(WECHAT_PUBLIC_KEY_PATH and WECHAT_PUBLIC_KEY_ID), chosen by each answer's "
                "Wechatpay-Serial; see the README"
            )
        if self.wechat_public_key_id and not self.wechat_public_key_id.startswith("PUB_KEY_ID_"):
            raise ValueError("WECHAT_PUBLIC_KEY_ID starts with PUB_KEY_ID_")
        if not self.wechat_public_key_id and not self.wechat_platform_cert_paths():
            raise ValueError("WeChat Pay needs WECHAT_PLATFORM_CERTS or WECHAT_PUBLIC_KEY_ID")
        return self

    def payload_key_text(self) -> str:
        """The payload keys, from PAYLOAD_ENCRYPTION_KEYS_FILE when set."""
        if self.payload_encryption_keys_file:
            return Path(self.payload_encryption_keys_file).read_text(encoding="utf-8").strip()
        return self.payload_encryption_keys.strip()

    def wechat_platform_cert_paths(self) -> list[str]:
        return [p.strip() for p in self.wechat_platform_certs.split(",") if p.strip()]

    @field_validator("rate_limit_per_key", "rate_limit_per_buyer", "console_sign_in_limit")
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        if value.strip():
            parse_many(value)  # ValueError names the bad part
        return value.strip()

    def roles_by_key(self) -> dict[str, Role]:
        keys: dict[str, Role] = {}
        for pair in filter(None, (p.strip() for p in self.api_keys.split(","))):
            key, _, role = pair.rpartition(":")
            if not key:
                raise ValueError(f"API_KEYS entry {pair!r} is not key:role")
            keys[key] = Role(role)
        return keys

    def supplier_url_for(self, supplier: str) -> str:
        for pair in filter(None, (p.strip() for p in self.supplier_urls.split(","))):
            name, _, url = pair.partition("=")
            if name == supplier:
                return url
        return self.supplier_url


@lru_cache
def get_settings() -> Settings:
    return Settings()

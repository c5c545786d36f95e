"""The service's own Prometheus metrics (prometheus-client), named `kami_*`.

Counted where they happen, in the process they happen in:
- the worker: refunds finished by status and decision outcome, time in each stage and end
  to end (from the progress reports, workers/activity_metrics.py), payouts by gateway and
  result, calls to the gateways and the supplier and their latency
  (`TimedTransport`), webhook delivery lag (workers/webhooks.py);
- the worker, read from the database every METRICS_DB_SECONDS (workers/gauges.py): open
  refunds by status, the review backlog, its oldest deadline and the reviews past it, stuck
  refunds by kind, undelivered webhooks and the oldest one's age, claims against
  suppliers by state, the ledger's imbalance
  (its trial balance, which must be 0, every METRICS_LEDGER_SECONDS). Every worker
  replica reports the same figures: aggregate them with max, not sum
  (deploy/prometheus/alerts.yml);
- the API: its requests by route, method and status, with latency (telemetry/http.py).

The worker's /metrics adds the Temporal SDK's own runtime metrics (`temporal_*`: task
latencies, slots, polls, sticky cache, failures) to these."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import REGISTRY

from config.settings import Settings

# Seconds: from a local step (milliseconds) to a review's day or an appeal's week.
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600,
                 86400, 3 * 86400, 7 * 86400)  # fmt: skip
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)

# --- the worker: what refunds do ----------------------------------------------------------------
REFUNDS_FINISHED = Counter(
    "kami_refunds_finished",
    "Refunds that reached a terminal status, by status and decision outcome",
    ["status", "outcome"],
)
STAGE_SECONDS = Histogram(
    "kami_refund_stage_seconds",
    "Time a refund spent in a stage of its timeline before the next entry",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
REFUND_SECONDS = Histogram(
    "kami_refund_seconds",
    "Submitted until a terminal status, by that status",
    ["status"],
    buckets=STAGE_BUCKETS,
)
PAYOUTS = Counter(
    "kami_payouts",
    "Payout steps by gateway (channel), step and result (the payout state, or refused/error)",
    ["channel", "step", "result"],
)
PEER_SECONDS = Histogram(
    "kami_peer_request_seconds",
    "HTTP calls to the outside (alipay, wechat, supplier, platform webhook) by peer and outcome",
    ["peer", "outcome"],
    buckets=HTTP_BUCKETS,
)
WEBHOOK_LAG = Histogram(
    "kami_webhook_delivery_lag_seconds",
    "Status change recorded until the platform's webhook answered 2xx",
    buckets=LAG_BUCKETS,
)
BUYER_MESSAGES = Counter(
    "kami_buyer_messages",
    "Buyer SMS and e-mail delivery attempts by channel and result: sent, retry (will try "
    "again), failed (given up: refused for good or out of attempts), skipped (opted out)",
    ["channel", "result"],
)
ACTIVITY_FAILURES = Counter(
    "kami_activity_failures",
    "Activity attempts that raised, by activity and error type",
    ["activity", "error"],
)

# --- the worker: what the database says ----------------------------------------------------------
OPEN_REFUNDS = Gauge("kami_refunds_open", "Refunds not yet terminal, by status", ["status"])
REVIEW_BACKLOG = Gauge("kami_review_backlog", "Refunds waiting in pending_review")
REVIEW_OLDEST_DEADLINE = Gauge(
    "kami_review_oldest_deadline_timestamp_seconds",
    "Earliest review deadline among refunds in pending_review (0: none waiting)",
)
REVIEWS_PAST_DEADLINE = Gauge(
    "kami_reviews_past_deadline", "Refunds in pending_review whose deadline has passed"
)
STUCK = Gauge(
    "kami_refunds_stuck",
    "Refunds past their stage's limit, by kind (refundctl stuck explains each)",
    ["kind"],
)
WEBHOOKS_UNDELIVERED = Gauge(
    "kami_webhooks_undelivered", "Webhook notifications the platform has not yet taken"
)
WEBHOOK_OLDEST_UNDELIVERED = Gauge(
    "kami_webhook_oldest_undelivered_seconds",
    "Age of the oldest webhook notification not yet delivered (0: none)",
)
LEDGER_IMBALANCE = Gauge(
    "kami_ledger_imbalance",
    "Sum of all ledger entries per currency, in minor units: double entry makes it 0",
    ["currency"],
)
SUPPLIER_CLAIMS = Gauge(
    "kami_supplier_claims",
    "Claims against suppliers for keys they confirmed invalid, by state (open, submitted, "
    "recovered, written_off)",
    ["state"],
)
BALANCE_HELD = Gauge(
    "kami_balance_held",
    "Merchants' settlement held for open refunds of balance-paid orders, in minor units",
    ["currency"],
)
FIGURES_READ_AT = Gauge(
    "kami_db_figures_timestamp_seconds", "When the database figures were last read", ["figures"]
)

# --- the API ---------------------------------------------------------------------------------------
HTTP_REQUESTS = Histogram(
    "kami_http_request_seconds",
    "API requests by route template, method and status code",
    ["route", "method", "status"],
    buckets=HTTP_BUCKETS,
)


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    return generate_latest(registry)


CONTENT_TYPE = CONTENT_TYPE_LATEST


# --- who may read them -------------------------------------------------------------------------------


def may_scrape(settings: Settings, authorization: str | None, api_keys: Mapping[str, Any]) -> bool:
    """Outside dev, /metrics needs `Bearer <token>`: one of METRICS_TOKENS or an admin key."""
    if settings.environment == "dev":
        return True
    token = _bearer(authorization)
    if not token:
        return False
    tokens = [t.strip() for t in settings.metrics_tokens.split(",") if t.strip()]
    if any(hmac.compare_digest(token, t) for t in tokens):
        return True
    return str(api_keys.get(token, "")) == "admin"


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# --- calls to the outside ------------------------------------------------------------------------------


def peer_names(settings: Settings) -> dict[str, str]:
    """host:port -> peer name, from the URLs the worker calls."""
    urls = {
        "alipay": settings.alipay_url,
        "wechat": settings.wechat_url,
        "supplier": settings.supplier_url,
        "platform_webhook": settings.platform_webhook_url,
        "sms": settings.sms_url,
    }
    for pair in filter(None, (p.strip() for p in settings.supplier_urls.split(","))):
        urls[f"supplier:{pair.partition('=')[0]}"] = pair.partition("=")[2]
    names: dict[str, str] = {}
    for name, url in urls.items():
        if url:
            parsed = httpx.URL(url)
            names.setdefault(f"{parsed.host}:{parsed.port}", name.partition(":")[0])
    return names


class TimedTransport(httpx.AsyncBaseTransport):
    """Times every call through it by peer (`kami_peer_request_seconds`): the gateways'
    and the supplier's latency as the worker sees it, retries included one by one."""

    def __init__(self, inner: httpx.AsyncBaseTransport, peers: Mapping[str, str]) -> None:
        self.inner = inner
        self.peers = dict(peers)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        peer = self.peers.get(f"{request.url.host}:{request.url.port}", "other")
        started = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TimeoutException:
            PEER_SECONDS.labels(peer, "timeout").observe(time.perf_counter() - started)
            raise
        except httpx.HTTPError:
            PEER_SECONDS.labels(peer, "error").observe(time.perf_counter() - started)
            raise
        outcome = f"{response.status_code // 100}xx"
        PEER_SECONDS.labels(peer, outcome).observe(time.perf_counter() - started)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

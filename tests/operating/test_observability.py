"""Watching the service: one connected trace per refund request (an in-memory exporter
stands in for OTLP), JSON log lines naming the refund, its workflow and its trace, and the
metrics both processes expose, behind a token outside dev.

The system here is the session's sandboxes and database with an API and a worker of its
own, on a task queue of its own, built the way `refundctl api` / `refundctl worker` build
theirs but handed a tracer provider."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry.logs import JsonLines, RefundContext
from tests.harness import free_ports, wait_for_port
from tests.operating.support import api_served, worker_served
from tests.system import KEYS, System, card_key_order, course_order

pytestmark = pytest.mark.integration

METRICS_TOKEN = "prometheus-scrape-token"


@dataclass
class Observed:
    system: System
    spans: InMemorySpanExporter
    worker_metrics: str


@pytest.fixture(scope="module")
async def observed(system: System) -> AsyncIterator[Observed]:
    api_port, metrics_port = free_ports(2)
    settings = system.settings.model_copy(
        update={
            "task_queue": "refunds-observed",
            "public_base_url": f"http://127.0.0.1:{api_port}",
            "worker_metrics_address": f"127.0.0.1:{metrics_port}",
            "metrics_tokens": f"old-token,{METRICS_TOKEN}",
            "metrics_db_seconds": 0.5,
            "metrics_ledger_seconds": 0.5,
        }
    )
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    async with (
        worker_served(settings, tracer_provider=provider) as worker,
        api_served(settings, api_port, tracer_provider=provider) as api_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        await wait_for_port("127.0.0.1", metrics_port, timeout_seconds=60)
        assert not worker.done()
        yield Observed(
            System(settings=settings, api_url=api_url, sandboxes=system.sandboxes, http=http),
            spans,
            f"http://127.0.0.1:{metrics_port}/metrics",
        )


def _url_of(span: ReadableSpan) -> str:
    attributes = dict(span.attributes or {})
    return str(attributes.get("url.full") or attributes.get("http.url") or "")  # semconv 1.x/old


def _chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = [span.name]
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_a_refund_is_one_trace_from_the_post_to_the_gateway_call(
    observed: Observed,
) -> None:
    s = observed.system
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.setFormatter(JsonLines(process="worker"))
    handler.addFilter(RefundContext())
    activities_log = logging.getLogger("kami.activities")
    activities_log.addHandler(handler)
    level = activities_log.level
    activities_log.setLevel(logging.INFO)
    try:
        order = await s.record(card_key_order(channel="alipay"))
        observed.spans.clear()
        refund_id = await s.refund_id(order)
        await s.wait_status(refund_id, "refunded")
    finally:
        activities_log.removeHandler(handler)
        activities_log.setLevel(level)

    spans = list(observed.spans.get_finished_spans())
    by_id = {span.context.span_id: span for span in spans}
    [post] = [sp for sp in spans if sp.name == "POST /v1/refunds" and sp.parent is None]
    trace_id = post.context.trace_id
    ours = [sp for sp in spans if sp.context.trace_id == trace_id]
    names = {sp.name for sp in ours}
    for expected in (
        "StartWorkflow:RefundWorkflow",
        "RunWorkflow:RefundWorkflow",
        "RunActivity:open_case",
        "RunActivity:lock_card_keys",
        "RunActivity:send_payout",
    ):
        assert expected in names, f"{expected} not in the refund's trace: {sorted(names)}"
    # The gateway call: an httpx client span inside send_payout, under the POST.
    alipay_host = httpx.URL(s.sandboxes.alipay).host
    gateway_calls = [
        sp
        for sp in ours
        if sp.kind.name == "CLIENT"
        and alipay_host in _url_of(sp)
        and "RunActivity:send_payout" in _chain(sp, by_id)
    ]
    assert gateway_calls, "no traced HTTP call to the gateway inside send_payout"
    chain = _chain(gateway_calls[0], by_id)
    # POST /v1/refunds > StartWorkflow > StartActivity:send_payout > RunActivity > the call
    # (TracingInterceptor hangs a workflow's own spans beside RunWorkflow, not under it).
    assert chain[-1] == "POST /v1/refunds", chain
    assert chain[1:4] == [
        "RunActivity:send_payout",
        "StartActivity:send_payout",
        "StartWorkflow:RefundWorkflow",
    ], chain

    # The worker's log lines about this refund carry its ids and this trace's.
    lines = [json.loads(line) for line in records.getvalue().splitlines()]
    payout_lines = [
        line
        for line in lines
        if line.get("refund_id") == refund_id and "send_payout" in line["message"]
    ]
    assert payout_lines, lines
    line = payout_lines[0]
    assert line["workflow_id"] == f"refund-{refund_id}"
    assert line["trace_id"] == format(trace_id, "032x")
    assert line["level"] == "info" and line["process"] == "worker"


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None


async def test_metrics_of_the_worker_and_the_api(observed: Observed) -> None:
    s = observed.system
    order = await s.record(card_key_order(channel="wechat"))
    refund_id = await s.refund_id(order)
    await s.wait_status(refund_id, "refunded")
    review = await s.record(course_order(progress=20, minutes_ago=120))
    await s.wait_status(await s.refund_id(review, reason="changed_mind"), "pending_review")

    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.get(observed.worker_metrics)
        assert refused.status_code == 401
        scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        text = ""
        for _ in range(100):  # the database figures are read every half second here
            text = (await http.get(observed.worker_metrics, headers=scrape)).text
            if (_sample(text, "kami_review_backlog") or 0) >= 1:
                break
            await asyncio.sleep(0.1)

    assert (_sample(text, "kami_refunds_finished_total", status="refunded") or 0) >= 1
    assert (_sample(text, "kami_payouts_total", channel="wechat", result="succeeded") or 0) >= 1
    assert _sample(text, "kami_peer_request_seconds_count", peer="wechat", outcome="2xx")
    assert _sample(text, "kami_peer_request_seconds_count", peer="supplier", outcome="2xx")
    assert _sample(text, "kami_refund_stage_seconds_count", stage="refunding")
    assert _sample(text, "kami_refund_seconds_count", status="refunded")
    assert (_sample(text, "kami_review_backlog") or 0) >= 1
    assert (_sample(text, "kami_review_oldest_deadline_timestamp_seconds") or 0) > 0
    assert _sample(text, "kami_refunds_open", status="pending_review") is not None
    assert _sample(text, "kami_refunds_stuck", kind="refunding_too_long") is not None
    assert _sample(text, "kami_ledger_imbalance", currency="CNY") == 0
    assert _sample(text, "kami_balance_held", currency="CNY") is not None
    assert _sample(text, "kami_webhooks_undelivered") is not None
    assert (_sample(text, "kami_webhook_delivery_lag_seconds_count") or 0) >= 1
    # The Temporal SDK's runtime metrics come with them.
    assert "temporal_workflow_task_execution_latency" in text or "temporal_request" in text
    assert _sample(text, "temporal_worker_task_slots_available") is not None

    api = s.url("/metrics")
    assert (await s.http.get(api)).status_code == 401
    assert (await s.http.get(api, headers={"Authorization": "Bearer nope"})).status_code == 401
    by_admin = await s.http.get(api, headers={"Authorization": f"Bearer {KEYS['admin']}"})
    assert by_admin.status_code == 200
    assert _sample(
        by_admin.text, "kami_http_request_seconds_count", route="/v1/refunds", method="POST"
    )
    by_token = await s.http.get(api, headers={"Authorization": "Bearer old-token"})
    assert by_token.status_code == 200
    assert 'route="/v1/refunds/{refund_id}"' in by_token.text  # templates, never raw ids

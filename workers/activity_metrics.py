"""Metrics and log lines from the worker's activities, taken at the worker's edge (a
Temporal activity interceptor) so neither the workflow nor the activities carry any of it.

- Progress reports (`ProgressReport`, alone or inside `RecordWithCommissions`): the time each
  newly reported timeline entry ended its predecessor's stage (`kami_refund_stage_seconds`),
  and for a report that finishes the refund, `kami_refunds_finished` by status and decision
  outcome and `kami_refund_seconds` from submission.
- Payouts (`send_payout`, `query_payout`, `rescue_abnormal_payout`, `abandon_payout`):
  `kami_payouts` by channel, step and result, and one log line per answer.
- Any activity that raises: `kami_activity_failures` by activity and error type, and a
  warning naming the refund.

A report retried after a lost answer may count twice; these are operating figures, the
ledger and the audit log are the books."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from domain.refund import PayoutView
from telemetry.metrics import (
    ACTIVITY_FAILURES,
    PAYOUTS,
    REFUND_SECONDS,
    REFUNDS_FINISHED,
    STAGE_SECONDS,
)
from workflows.messages import ProgressReport

log = logging.getLogger("kami.activities")
PAYOUT_STEPS = frozenset(
    {"send_payout", "query_payout", "rescue_abnormal_payout", "abandon_payout"}
)


class ActivityMetrics(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Observed(next)


class _Observed(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        try:
            result = await super().execute_activity(input)
        except BaseException as err:
            failed(name, input.args, err)
            raise
        try:
            succeeded(name, input.args, result)
        except Exception:  # a figure must never fail a refund
            log.exception("could not record metrics of %s", name)
        return result


def succeeded(name: str, args: Iterable[Any], result: Any) -> None:
    for report in _reports(args):
        observe_report(report)
    if name in PAYOUT_STEPS and isinstance(result, PayoutView):
        PAYOUTS.labels(result.channel.value, name, result.state.value).inc()
        log.info(
            "%s %s: %s %s %s",
            name,
            result.out_refund_no,
            result.channel.value,
            result.state.value,
            result.gateway_status or "",
        )


def failed(name: str, args: Iterable[Any], err: BaseException) -> None:
    error = err.type if isinstance(err, ApplicationError) and err.type else type(err).__name__
    ACTIVITY_FAILURES.labels(name, error).inc()
    if name in PAYOUT_STEPS:
        channel = next((str(a.channel.value) for a in args if hasattr(a, "channel")), "unknown")
        result = "refused" if error == "GatewayRefused" else "error"
        PAYOUTS.labels(channel, name, result).inc()
    info = activity.info()
    log.warning(
        "%s attempt %d failed: %s: %s",
        name,
        info.attempt,
        error,
        str(err).splitlines()[0][:300] if str(err) else "",
    )


def _reports(args: Iterable[Any]) -> list[ProgressReport]:
    found: list[ProgressReport] = []
    for arg in args:
        if isinstance(arg, ProgressReport):
            found.append(arg)
        elif isinstance(getattr(arg, "report", None), ProgressReport):
            found.append(arg.report)
    return found


def observe_report(report: ProgressReport) -> None:
    body = report.body
    timeline = body.timeline
    first = max(report.first_entry - 1, 1)
    for k in range(first, len(timeline)):
        spent = (timeline[k].at - timeline[k - 1].at).total_seconds()
        STAGE_SECONDS.labels(timeline[k - 1].stage).observe(max(spent, 0.0))
    # The refund's last report releases its claims on the order's items: that is its end.
    if report.release_claims and body.status.is_terminal and timeline:
        outcome = body.decision.outcome.value if body.decision else "none"
        REFUNDS_FINISHED.labels(body.status.value, outcome).inc()
        REFUND_SECONDS.labels(body.status.value).observe(
            max((timeline[-1].at - body.created_at).total_seconds(), 0.0)
        )

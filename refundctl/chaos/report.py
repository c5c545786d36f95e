"""The chaos run's figures, and how recovery is counted.

Recovery: for each refund that a worker kill caught in flight (requested before the kill, not
finished by then), the time from the *next* worker passing its readiness check (polling its
task queue) to the refund's last timeline entry (the workflow's clock: money arrived). The
killer waits for a kill's refunds to end before the next kill, so a refund is normally caught
by one kill; one caught by several (it outlasted the killer's patience) counts from the first,
which includes the later kills' down time, and is reported as such. A refund that finished
between the kill and the new worker (its last step had already reached Temporal) is counted
apart: no worker was needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from refundctl.chaos.killer import Kill
from refundctl.chaos.verify import Verdicts
from refundctl.chaos.workload import Refund

__all__ = ["Recovery", "percentile", "recovery", "render"]


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank: a value that was actually observed."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(-(-pct * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Recovery:
    seconds: dict[str, float] = field(default_factory=dict)  # refund id -> recovery
    without_worker: int = 0  # finished before the new worker was up
    several_kills: int = 0  # caught by more than one kill
    restart_seconds: list[float] = field(default_factory=list)  # kill -> next worker polling

    def p(self, pct: float) -> float:
        return percentile(list(self.seconds.values()), pct)


def recovery(refunds: list[Refund], kills: list[Kill]) -> Recovery:
    result = Recovery()
    done = sorted(
        (k for k in kills if k.target == "worker" and k.back_at is not None), key=lambda k: k.at
    )
    result.restart_seconds = [k.back_at - k.at for k in done if k.back_at is not None]
    for r in refunds:
        if r.refund_id is None or r.posted_at is None or r.finished_at is None:
            continue
        caught = [k for k in done if r.posted_at < k.at < r.finished_at]
        if not caught:
            continue
        back = caught[0].back_at
        assert back is not None
        result.several_kills += len(caught) > 1
        if r.finished_at < back:
            result.without_worker += 1
        else:
            result.seconds[r.refund_id] = r.finished_at - back
    return result


def _ids(refunds: list[Refund], limit: int = 5) -> str:
    shown = ", ".join(
        f"{r.refund_id or r.order['order_id']} ({r.status or r.error})" for r in refunds[:limit]
    )
    return f"  e.g. {shown}" if refunds else ""


def render(
    *,
    settings: dict[str, Any],
    refunds: list[Refund],
    kills: list[Kill],
    verdicts: Verdicts,
    rec: Recovery,
    causes: list[tuple[str, int, float, float]],
    slowest: list[tuple[str, float, list[str]]],
    wall_seconds: float,
    api_retries: int,
) -> str:
    by_channel = {c: sum(r.channel == c for r in refunds) for c in ("alipay", "wechat", "balance")}
    armed = sum(r.processing for r in refunds)
    worker_kills = [k for k in kills if k.target == "worker"]
    api_kills = [k for k in kills if k.target == "api"]
    fired = sum(r.posted_at is not None for r in refunds)
    restart = rec.restart_seconds
    checks = verdicts.checks
    out = [
        "",
        "=" * 96,
        "kami-refunds chaos",
        f"  settings   {' '.join(f'{k}={v}' for k, v in settings.items())}",
        f"  orders     alipay {by_channel['alipay']}, wechat {by_channel['wechat']} "
        f"({armed} armed to settle as processing), balance {by_channel['balance']}",
        "",
        f"  fired              {fired}",
        f"  kills              {len(worker_kills)} worker ({settings.get('worker_signal')}), "
        f"{len(api_kills)} API "
        f"(SIGKILL); worker back polling after p50 {percentile(restart, 50):.1f}s, "
        f"max {max(restart, default=float('nan')):.1f}s",
        f"  refunded           {len(verdicts.refunded)}"
        f"  (of which {verdicts.processing_settled} settled after 'processing')",
        f"  double payouts     {len(verdicts.double)}{_ids(verdicts.double)}",
        f"  missing payouts    {len(verdicts.missing)}{_ids(verdicts.missing)}",
        f"  stuck              {len(verdicts.stuck)}{_ids(verdicts.stuck)}",
        f"  ended otherwise    {len(verdicts.other)}{_ids(verdicts.other)}",
        f"  recovery           p50 {rec.p(50):.1f}s, p99 {rec.p(99):.1f}s, max {rec.p(100):.1f}s "
        f"over {len(rec.seconds)} refunds caught in flight by a worker kill",
        "                     (new worker polling -> the refund's money arrived; "
        f"{rec.without_worker} more finished before it was up; {rec.several_kills} caught "
        "by more than one kill)",
    ]
    if causes:
        out.append("  what the caught refunds waited on (from their histories):")
        out.append(f"    {'refunds':>7} {'p50 s':>6} {'max s':>6}  wait")
        out += [f"    {n:>7} {p50:>6.1f} {mx:>6.1f}  {cause}" for cause, n, p50, mx in causes]
    if slowest:
        out.append("  slowest:")
        out += [f"    {rid} {secs:5.1f}s  {'; '.join(why) or '-'}" for rid, secs, why in slowest]
    out += [""]
    for c in verdicts.commands:
        out.append(f"  {c.command:<36} exit {c.exit_code}  {c.summary}")
    out.append(
        "  GET /v1/admin/checks                 "
        + ", ".join(
            f"{k} {str(checks.get(k)).lower()}"
            for k in ("ledger_balanced", "audit_ok", "money_conserved")
        )
        + (f"  ({checks['error']})" if "error" in checks else "")
    )
    out += [
        "",
        f"  wall {wall_seconds:.0f}s, API calls retried while it was down or busy: {api_retries}",
        "  verdict: " + ("OK" if verdicts.ok else "FAILED"),
        "=" * 96,
        "",
    ]
    return "\n".join(out)

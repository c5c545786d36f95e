"""Why a refund took long to recover: the timeouts and retries in its workflow history.

A worker killed mid-refund leaves work Temporal only hands to another worker once a timeout
says the first one is gone: a workflow task on the dead worker's sticky queue (its
schedule-to-start timeout), a workflow task it was running, local activities included (the
workflow task timeout), a remote activity it was running (the activity's heartbeat timeout if
it heartbeats, else its start-to-close timeout). Each leaves a trace in the history: a
WORKFLOW_TASK_TIMED_OUT event, or an ACTIVITY_TASK_STARTED whose attempt > 1 carries the
previous attempt's failure. Timers the workflow set itself (a "processing" payout is queried
again after a back-off) are listed too: they are waits a kill can cause, not timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

__all__ = ["by_cause", "causes", "history_causes"]


def _seconds(duration: Any) -> str:
    return f"{duration.ToTimedelta().total_seconds():g}s"


def history_causes(events: Sequence[Any]) -> list[str]:
    """What in one history waited on a timeout, in order (a line each)."""
    from temporalio.api.enums.v1 import EventType, TimeoutType

    def timeout_name(value: int) -> str:
        return TimeoutType.Name(value).removeprefix("TIMEOUT_TYPE_").lower()  # type: ignore[arg-type]

    found: list[str] = []
    scheduled: dict[int, Any] = {}
    for e in events:
        kind = e.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[e.event_id] = e.activity_task_scheduled_event_attributes
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            which = timeout_name(e.workflow_task_timed_out_event_attributes.timeout_type)
            where = (
                "waiting on the dead worker's sticky queue"
                if which == "schedule_to_start"
                else "running on the dead worker"
            )
            found.append(f"workflow task {which} timeout ({where})")
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = e.activity_task_started_event_attributes
            if attrs.attempt <= 1 or not attrs.HasField("last_failure"):
                continue
            sched = scheduled.get(attrs.scheduled_event_id)
            name = sched.activity_type.name if sched is not None else "activity"
            failure = attrs.last_failure
            if failure.HasField("timeout_failure_info"):
                which = timeout_name(failure.timeout_failure_info.timeout_type)
                limit = ""
                if sched is not None and which == "heartbeat":
                    limit = f" {_seconds(sched.heartbeat_timeout)}"
                elif sched is not None and which == "start_to_close":
                    limit = f" {_seconds(sched.start_to_close_timeout)}"
                found.append(f"{name} {which}{limit} timeout, retried")
            else:
                found.append(f"{name} failed ({failure.message[:60]}), retried")
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            wait = e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            if wait.total_seconds() >= 2:  # the workflow chose to wait (settlement back-off)
                found.append(f"a {wait.total_seconds():g}s timer of the workflow (query back-off)")
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            attrs = e.activity_task_timed_out_event_attributes
            sched = scheduled.get(attrs.scheduled_event_id)
            name = sched.activity_type.name if sched is not None else "activity"
            found.append(f"{name} timed out for good")
    return found


async def causes(client: Any, workflow_ids: Sequence[str]) -> dict[str, list[str]]:
    """workflow id -> the timeouts its history waited on."""

    async def one(workflow_id: str) -> tuple[str, list[str]]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        return workflow_id, history_causes(list(history.events))

    return dict(await asyncio.gather(*(one(w) for w in workflow_ids)))


def by_cause(
    found: dict[str, list[str]], recovery: dict[str, float]
) -> list[tuple[str, int, float, float]]:
    """(cause, refunds, p50 and max recovery of those refunds), most common first; refunds
    whose history shows none of these waits are listed as "no timeout or timer"."""
    seconds: dict[str, list[float]] = {}
    for workflow_id, lines in found.items():
        took = recovery.get(workflow_id.removeprefix("refund-"))
        if took is None:
            continue
        for cause in set(lines) or {"no timeout or timer"}:
            seconds.setdefault(cause, []).append(took)
    rows = []
    for cause, values in seconds.items():
        ordered = sorted(values)
        rows.append((cause, len(values), ordered[(len(values) - 1) // 2], ordered[-1]))
    return sorted(rows, key=lambda row: -row[1])

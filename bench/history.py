"""What a workflow's history says about where its time went (`refundctl bench`, phase 3).

Counts a history's events, workflow tasks, activities and local activities, and measures the
spans between events from their timestamps: task queued, task run (split into each local
activity and the rest), activity queued and run. See bench/README.md for how to read them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.load import percentile

if TYPE_CHECKING:
    from temporalio.client import Client


def _event_name(event_type: int) -> str:
    from temporalio.api.enums.v1 import EventType

    return EventType.Name(event_type).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]


def _ts(event: Any) -> float:
    return float(event.event_time.ToMicroseconds()) / 1e6


@dataclass
class HistoryShape:
    workflow_id: str
    events: int
    by_type: dict[str, int]
    workflow_tasks: int
    activities: dict[str, int]
    local_activities: dict[str, int]
    # Durations in seconds, one list entry per occurrence in this history.
    spans: dict[str, list[float]]
    total_seconds: float
    task_failures: list[str] = field(default_factory=list)


def _local_activity(event: Any) -> tuple[str, float | None] | None:
    """(activity type, completion time) of a local activity marker; None for other markers.

    The SDK core writes `{"activity_type": ..., "complete_time": {"seconds", "nanos"}, ...}`
    into the marker's `data`; the marker event itself is stamped when the task completes."""
    attrs = event.marker_recorded_event_attributes
    if attrs.marker_name != "core_local_activity":
        return None
    payloads = attrs.details.get("data")
    if payloads is None or not payloads.payloads:
        return "local activity", None
    try:
        data = json.loads(payloads.payloads[0].data)
    except ValueError:
        return "local activity", None
    done = data.get("complete_time")
    at = done["seconds"] + done.get("nanos", 0) / 1e9 if isinstance(done, dict) else None
    return str(data.get("activity_type") or "local activity"), at


def analyse_history(workflow_id: str, events: Sequence[Any]) -> HistoryShape:
    """Count a history's events and measure its spans from the event timestamps.

    - `workflow task queued`: WorkflowTaskScheduled -> Started, waiting for a worker poll.
    - `workflow task run`: Started -> Completed, the worker running workflow code, including
      the local activities it awaits inside that task (they leave only a marker behind).
    - `<activity> queued` / `<activity> run`: the same for each (remote) activity.
    - `between`: from a task's completion to the next thing the server schedules.
    """
    by_type = Counter(_event_name(e.event_type) for e in events)
    spans: dict[str, list[float]] = defaultdict(list)
    activity_types: dict[int, str] = {}
    scheduled_at: dict[int, float] = {}
    started_at: dict[int, float] = {}
    activities: Counter[str] = Counter()
    local: Counter[str] = Counter()
    failures: list[str] = []
    task_started: float | None = None
    previous_done = in_local = 0.0
    task_run: float | None = None

    def close_task() -> None:
        # A task's markers follow its WORKFLOW_TASK_COMPLETED event, so its split into local
        # activities and the rest is known only when the next task starts (or at the end).
        nonlocal task_run, in_local
        if task_run is not None:
            spans["  of which workflow code, SDK"].append(max(task_run - in_local, 0.0))
        task_run, in_local = None, 0.0

    for e in events:
        kind = _event_name(e.event_type)
        t = _ts(e)
        if kind == "WORKFLOW_TASK_SCHEDULED":
            scheduled_at[e.event_id] = t
        elif kind == "WORKFLOW_TASK_STARTED":
            sid = e.workflow_task_started_event_attributes.scheduled_event_id
            spans["workflow task queued"].append(t - scheduled_at.get(sid, t))
            started_at[e.event_id] = t
            close_task()
            task_started = previous_done = t
        elif kind == "WORKFLOW_TASK_COMPLETED":
            sid = e.workflow_task_completed_event_attributes.started_event_id
            task_run = t - started_at.get(sid, t)
            spans["workflow task run"].append(task_run)
        elif kind in ("WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_TIMED_OUT"):
            failures.append(_task_failure(e, kind))
        elif kind == "ACTIVITY_TASK_SCHEDULED":
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            activity_types[e.event_id] = name
            activities[name] += 1
            scheduled_at[e.event_id] = t
        elif kind == "ACTIVITY_TASK_STARTED":
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            name = activity_types.get(sid, "activity")
            spans[f"{name} queued"].append(t - scheduled_at.get(sid, t))
            started_at[e.event_id] = t
        elif kind == "ACTIVITY_TASK_COMPLETED":
            attrs = e.activity_task_completed_event_attributes
            name = activity_types.get(attrs.scheduled_event_id, "activity")
            spans[f"{name} run"].append(t - started_at.get(attrs.started_event_id, t))
        elif kind == "MARKER_RECORDED":
            la = _local_activity(e)
            if la is not None:
                name, done_at = la
                local[name] += 1
                # Local activities of one task run one after another: each took from the end
                # of the previous one (or the task's start) to its own completion.
                if done_at is not None and task_started is not None:
                    took = max(done_at - previous_done, 0.0)
                    spans[f"  of which local {name}"].append(took)
                    in_local += took
                    previous_done = max(done_at, previous_done)
    close_task()
    total = _ts(events[-1]) - _ts(events[0]) if events else 0.0
    return HistoryShape(
        workflow_id=workflow_id,
        events=len(events),
        by_type=dict(by_type),
        workflow_tasks=by_type.get("WORKFLOW_TASK_COMPLETED", 0),
        activities=dict(activities),
        local_activities=dict(local),
        spans=dict(spans),
        total_seconds=total,
        task_failures=failures,
    )


def _task_failure(event: Any, kind: str) -> str:
    if kind == "WORKFLOW_TASK_TIMED_OUT":
        return "workflow task timed out"
    attrs = event.workflow_task_failed_event_attributes
    from temporalio.api.enums.v1 import WorkflowTaskFailedCause

    cause = WorkflowTaskFailedCause.Name(attrs.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
    return f"{cause}: {attrs.failure.message[:200]}"


async def fetch_shape(client: Client, workflow_id: str) -> HistoryShape:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return analyse_history(workflow_id, list(history.events))


def time_breakdown(shapes: Sequence[HistoryShape]) -> list[dict[str, Any]]:
    """Per span kind: how often per workflow and mean total ms per workflow, largest first."""
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    all_values: dict[str, list[float]] = defaultdict(list)
    for s in shapes:
        for name, values in s.spans.items():
            totals[name] += sum(values)
            counts[name] += len(values)
            all_values[name] += values
    k = max(len(shapes), 1)
    mean_total = sum(s.total_seconds for s in shapes) / k
    rows: list[dict[str, Any]] = [
        {
            "span": name,
            "per_workflow": round(counts[name] / k, 2),
            "ms_per_workflow": round(totals[name] / k * 1000, 1),
            "share_of_workflow": round(totals[name] / k / mean_total, 3) if mean_total else None,
            "p50_ms_each": round(percentile([v * 1000 for v in all_values[name]], 50), 1),
            "p95_ms_each": round(percentile([v * 1000 for v in all_values[name]], 95), 1),
        }
        for name in totals
    ]
    top = sorted(
        (r for r in rows if not r["span"].startswith(" ")), key=lambda r: -r["ms_per_workflow"]
    )
    sub = sorted(
        (r for r in rows if r["span"].startswith(" ")), key=lambda r: -r["ms_per_workflow"]
    )
    ordered: list[dict[str, Any]] = []
    for row in top:
        ordered.append(row)
        if row["span"] == "workflow task run":
            ordered += sub
    return ordered

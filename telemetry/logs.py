"""Log lines an SRE can search: JSON, one object per line, each naming the refund, its
workflow and the trace it belongs to whenever the line was written on a refund's behalf.

Where those come from, first found wins: the record's own `extra` (`refund_id`,
`workflow_id`), the Temporal SDK's workflow and activity loggers (`temporal_workflow`,
`temporal_activity`), the activity running now, the refund the API request names
(`refund_in_scope`), and the OpenTelemetry span that is current (`trace_id`, `span_id`).
A workflow id `refund-{id}` gives the refund id and the other way round."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings

WORKFLOW_PREFIX = "refund-"
_FIELDS = ("refund_id", "workflow_id", "trace_id", "span_id")

# The refund an API request is about (set from its path by telemetry.http).
refund_in_scope: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "refund_in_scope", default=None
)


@contextlib.contextmanager
def about_refund(refund_id: str) -> Iterator[None]:
    token = refund_in_scope.set(refund_id)
    try:
        yield
    finally:
        refund_in_scope.reset(token)


class RefundContext(logging.Filter):
    """Adds refund_id, workflow_id, trace_id and span_id to every record (None if unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        refund_id = getattr(record, "refund_id", None)
        workflow_id = getattr(record, "workflow_id", None)
        if workflow_id is None:
            workflow_id = _temporal_workflow_id(record)
        if refund_id is None:
            refund_id = refund_in_scope.get()
        if refund_id is None and workflow_id and workflow_id.startswith(WORKFLOW_PREFIX):
            refund_id = workflow_id.removeprefix(WORKFLOW_PREFIX)
        if workflow_id is None and refund_id:
            workflow_id = WORKFLOW_PREFIX + refund_id
        record.refund_id, record.workflow_id = refund_id, workflow_id
        record.trace_id, record.span_id = _trace_ids()
        return True


def _temporal_workflow_id(record: logging.LogRecord) -> str | None:
    for extra in ("temporal_workflow", "temporal_activity"):
        details = getattr(record, extra, None)
        if isinstance(details, dict) and details.get("workflow_id"):
            return str(details["workflow_id"])
    try:
        from temporalio import activity

        if activity.in_activity():
            return activity.info().workflow_id
    except Exception:  # no activity context here
        pass
    return None


def _trace_ids() -> tuple[str | None, str | None]:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
        return None, None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, process, logger, message, the refund's ids
    and the trace's, and the exception if there was one."""

    def __init__(self, *, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextLines(logging.Formatter):
    """For people at a terminal (dev): the usual line, with the refund when there is one."""

    def __init__(self, *, process: str) -> None:
        super().__init__(f"%(asctime)s {process} %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        refund_id = getattr(record, "refund_id", None)
        return f"{text} [{refund_id}]" if refund_id else text


def log_format(settings: Settings) -> str:
    return settings.log_format or ("text" if settings.environment == "dev" else "json")


def configure_logging(settings: Settings, *, process: str, level: int = logging.INFO) -> None:
    """The process's root handler: JSON lines (or text in dev) on stderr, with context."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (
        JsonLines(process=process) if log_format(settings) == "json" else TextLines(process=process)
    )
    handler.setFormatter(formatter)
    handler.addFilter(RefundContext())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # One line per HTTP call (each gateway call, each scrape) says nothing the metrics and
    # the payout lines do not; its warnings still come through.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))

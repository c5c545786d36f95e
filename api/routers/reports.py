"""Operators' reports (DOMAIN.md "Transparency"): refund rates and reasons by merchant and
product, the share resolved without a person, time to money, review deadlines met."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Admin, ReadSessionDep
from api.problems import field_error
from domain.model import Identifier, utcnow
from store import reports
from store.reports import Report

router = APIRouter(prefix="/v1/admin", tags=["admin"])

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=366)
# Bounds of a report window: wide, and far from the calendar's ends, so window arithmetic
# (to minus 30 days) never leaves it (`to=0001-01-05` was a 500, issue 8).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _instant(field: str, value: str | None) -> datetime | None:
    """RFC 3339: a date, a time and an offset (Z or ±hh:mm)."""
    if value is None:
        return None
    text = value.strip()
    try:
        at = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        at = None
    if at is None or len(text) < 11 or text[10] not in "Tt ":
        raise field_error(field, "not an RFC 3339 date-time, e.g. 2025-01-31T00:00:00Z")
    if at.tzinfo is None:
        raise field_error(field, "needs an offset (Z or ±hh:mm)")
    try:
        utc = at.astimezone(UTC)
    except OverflowError:  # year 1 at +14:00 has no UTC equivalent
        utc = EARLIEST - timedelta(days=1)
    if not EARLIEST <= utc < LATEST:
        raise field_error(
            field, f"out of range: from {EARLIEST.isoformat()} to before {LATEST.isoformat()}"
        )
    return at


def window(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """The report's window [from, to): `to` defaults to now, `from` to 30 days before `to`;
    `to` after `from`, at most 366 days. An error names the bound the caller sent."""
    lo, hi = _instant("from", start), _instant("to", end)
    hi = hi or utcnow()
    lo = lo or hi - DEFAULT_WINDOW
    blame = "to" if end is not None else "from"
    if hi <= lo:
        raise field_error(blame, "to must be after from")
    if hi - lo > MAX_WINDOW:
        raise field_error(blame, f"the window is at most {MAX_WINDOW.days} days")
    return lo, hi


@router.get(
    "/reports",
    summary="Refund rates, reasons, automation, time to money and review deadlines",
    response_model_by_alias=True,
)
async def get_reports(
    session: ReadSessionDep,
    _: Admin,
    start: Annotated[
        str | None,
        Query(alias="from", max_length=64, description="RFC 3339; default `to` minus 30 days"),
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", max_length=64, description="RFC 3339; default now")
    ] = None,
    merchant_id: Annotated[
        Identifier | None, Query(description="only this merchant's orders and refunds")
    ] = None,
) -> Report:
    lo, hi = window(start, end)
    return await reports.report(session, lo, hi, merchant_id)

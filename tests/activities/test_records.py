"""RefundRecords: the case file the workflow decides on, and the progress it reports."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from activities.records import RefundRecords
from domain.model import utcnow
from domain.policy import CurrentPolicy
from domain.refund import RefundBody, ReviewView, TimelineEntry
from domain.types import RefundStatus
from store import refunds as refund_rows
from store.models import AuditRow, NotificationRow, RefundClaimRow, RefundRow
from tests.activities.conftest import run_activity
from tests.scratch import Scratch, stored_order, stored_refund, unique
from workflows.messages import AuditEvent, CaseRequest, ProgressReport

WEBHOOK = "http://platform.test/webhooks/refunds"


@pytest.fixture
def records(scratch: Scratch) -> RefundRecords:
    return RefundRecords(
        scratch.sessions, policy=CurrentPolicy().get, webhook_url=WEBHOOK, reads=scratch.reads
    )


async def body_of(scratch: Scratch, refund_id: str) -> RefundBody:
    async with scratch.reads() as session:
        body = await refund_rows.load_body(session, refund_id)
    assert body is not None
    return body


def in_review(body: RefundBody, *, stage: str = "review_requested") -> RefundBody:
    now = utcnow()
    return body.model_copy(
        update={
            "status": RefundStatus.PENDING_REVIEW,
            "review": ReviewView(deadline=now + timedelta(hours=24)),
            "timeline": [*body.timeline, TimelineEntry(stage=stage, at=now, detail="a person")],
        }
    )


async def test_the_case_file_holds_the_order_what_others_took_and_the_policy(
    scratch: Scratch, records: RefundRecords
) -> None:
    order = await stored_order(scratch)
    earlier = await stored_refund(scratch, order)
    async with scratch.sessions.begin() as session:
        row = await session.get(RefundRow, earlier)
        assert row is not None
        row.status = RefundStatus.REFUNDED
        await refund_rows.release_claims(session, earlier)

    case = await run_activity(
        records.load_case, CaseRequest(refund_id=unique("rf"), order_id=order.order_id)
    )
    own = await run_activity(
        records.load_case, CaseRequest(refund_id=earlier, order_id=order.order_id)
    )

    assert case.order == order
    assert case.already_refunded == {"I-1": 1}
    assert own.already_refunded == {}, "a refund never counts against itself"
    assert case.policy_version == case.policy.version == CurrentPolicy().get().version


async def test_an_unknown_order_gives_an_empty_case(
    scratch: Scratch, records: RefundRecords
) -> None:
    case = await run_activity(records.load_case, CaseRequest(refund_id="rf-x", order_id="O-none"))
    assert case.order is None and case.already_refunded == {}


async def test_progress_is_stored_with_its_timeline_webhook_inbox_and_audit(
    scratch: Scratch, records: RefundRecords
) -> None:
    order = await stored_order(scratch)
    refund_id = await stored_refund(scratch, order)
    body = in_review(await body_of(scratch, refund_id))
    report = ProgressReport(
        seq=2,
        body=body,
        first_entry=2,
        alerts=["review due in 24 hours"],
        audit=[AuditEvent(key=f"{refund_id}:review", actor="worker", action="refund.review")],
    )

    await run_activity(records.record_progress, report)
    await run_activity(records.record_progress, report)  # a retry changes nothing

    stored = await body_of(scratch, refund_id)
    assert stored.status is RefundStatus.PENDING_REVIEW
    assert stored.review == body.review
    assert [e.stage for e in stored.timeline] == ["submitted", "review_requested"]
    async with scratch.reads() as session:
        notices = (
            await session.scalars(
                select(NotificationRow)
                .where(NotificationRow.refund_id == refund_id)
                .order_by(NotificationRow.id)
            )
        ).all()
        audited = await session.scalar(
            select(AuditRow.action).where(AuditRow.event_key == f"{refund_id}:review")
        )
    assert [(n.channel, n.recipient) for n in notices] == [
        ("webhook", WEBHOOK),
        ("inbox", f"buyer:{order.buyer_id}"),
        ("supervisor", "supervisors"),
    ]
    assert all(n.status == "pending_review" for n in notices)
    assert audited == "refund.review"


async def test_a_late_older_report_never_rolls_the_refund_back(
    scratch: Scratch, records: RefundRecords
) -> None:
    order = await stored_order(scratch)
    refund_id = await stored_refund(scratch, order)
    submitted = await body_of(scratch, refund_id)
    checking = submitted.model_copy(
        update={
            "status": RefundStatus.CHECKING,
            "timeline": [*submitted.timeline, TimelineEntry(stage="checking", at=utcnow())],
        }
    )
    reviewing = in_review(checking)

    await run_activity(
        records.record_progress, ProgressReport(seq=3, body=reviewing, first_entry=3)
    )
    await run_activity(records.record_progress, ProgressReport(seq=2, body=checking, first_entry=2))

    stored = await body_of(scratch, refund_id)
    assert stored.status is RefundStatus.PENDING_REVIEW
    # ...but the older report's timeline entry is not lost.
    assert [e.stage for e in stored.timeline] == ["submitted", "checking", "review_requested"]


async def test_a_final_report_releases_the_items(scratch: Scratch, records: RefundRecords) -> None:
    order = await stored_order(scratch)
    refund_id = await stored_refund(scratch, order)
    body = await body_of(scratch, refund_id)
    cancelled = body.model_copy(
        update={
            "status": RefundStatus.CANCELLED,
            "timeline": [*body.timeline, TimelineEntry(stage="cancelled", at=utcnow())],
        }
    )

    await run_activity(
        records.record_progress,
        ProgressReport(seq=2, body=cancelled, first_entry=2, release_claims=True),
    )

    async with scratch.reads() as session:
        claims = await session.scalar(
            select(RefundClaimRow.refund_id).where(RefundClaimRow.refund_id == refund_id)
        )
    assert claims is None


async def test_a_report_about_an_unknown_refund_is_not_retried(
    scratch: Scratch, records: RefundRecords
) -> None:
    order = await stored_order(scratch)
    refund_id = await stored_refund(scratch, order)
    ghost = (await body_of(scratch, refund_id)).model_copy(update={"refund_id": "rf-ghost"})

    with pytest.raises(ApplicationError) as raised:
        await run_activity(
            records.record_progress, ProgressReport(seq=2, body=ghost, first_entry=2)
        )
    assert raised.value.type == "UnknownRefund" and raised.value.non_retryable

"""IncidentWorkflow: one per incident, id `incident-{incident_id}`. A supplier's bad batch or
an outage hurt many orders; the shop refunds them first, on its own initiative (seed 003).

1. **Dry run** (`plan_incident`): every order the selection matches is judged — refund these
   items, or skip it and why (unpaid, cancelled, already refunded, a refund open, the key
   redeemed) — and the verdicts are stored. A selection matching nothing, or more than the
   policy's `incidents` limits without `override_limits`, ends here, refused.
2. **A second person confirms** (the `confirm` Update; its validator refuses the declarer)
   before any money moves.
3. **Controlled execution**: a batch at a time at the declared rate, each order's refund is
   stored and started as the same RefundWorkflow a buyer's click starts (`start_incident_
   refunds`: no second refund path), marked with the incident (`IncidentId`; the rules treat
   it as the shop's fault). Pause, resume and cancel are Updates; a cancel stops new refunds
   and never touches one already started (those are workflows of their own). The run
   continues as new every `batches_per_run` batches (200), so 100,000 orders never make one
   huge history: it carries counts and a position, never the orders.
4. **The report**, once no refund it started is still moving on its own: refunded, failed,
   skipped, waiting for a person, money returned, commissions clawed back.

Never twice: each order's refund id and idempotency key come from the incident and the order
(`domain.incident.incident_refund_id`), so a retry, a crash or a second declaration of the
same incident finds the refund it made instead of making another; orders refunded or with a
refund open are skipped; the refunds lock the key and pay exactly once like any other.

The workflow does no I/O (its steps are declarations, `workflows.incident_steps`) and reads
the clock only through `workflow.now()`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import workflows.incident_steps as incident_steps
    from domain.acceptance import Refusal
    from domain.incident import (
        batch_size,
        effective_rate,
        limit_refusal,
        selection_refusal,
        workflow_id_for_incident,
    )
    from domain.incident_run import (
        ConfirmIncident,
        IncidentState,
        IncidentStatus,
        IncidentView,
        PauseIncident,
        ResumeIncident,
        StopIncident,
        may_cancel,
        may_confirm,
        may_pause,
        may_resume,
    )
    from domain.policy import IncidentPolicy
    from workflows.incident_messages import (
        BatchRequest,
        IncidentInput,
        IncidentRecord,
        OutcomesRequest,
        PlanRequest,
    )
    from workflows.options import DB_RETRY, DB_TIMEOUT
    from workflows.search import INCIDENT_STATE, INCIDENT_WORKFLOW_TYPE

# The dry run reads every matched order and asks the supplier about their keys: minutes for
# a large incident. It heartbeats; a worker that dies mid-way is noticed in a minute and the
# dry run done again from the start (it rewrites its verdicts).
PLAN_TIMEOUT = timedelta(hours=2)
PLAN_HEARTBEAT = timedelta(seconds=60)
PLAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# One batch stores at most MAX_BATCH refunds and starts their workflows.
BATCH_TIMEOUT = timedelta(seconds=60)
BATCH_HEARTBEAT = timedelta(seconds=10)
MAX_BATCH = 100
# A run's history: ~11 events a batch; `IncidentInput.batches_per_run` (200) batches stay
# far below Temporal's limits.
MAX_POLLS_PER_RUN = 500
# Waiting for the started refunds to end: checked often at first, then less.
FIRST_POLL = timedelta(seconds=2)
LAST_POLL = timedelta(seconds=30)


def _refuse(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise ApplicationError(
            refusal.reason,
            {"problem": refusal.problem, "field": refusal.field},
            type="Refused",
            non_retryable=True,
        )


@workflow.defn(name=INCIDENT_WORKFLOW_TYPE)
class IncidentWorkflow:
    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        self.inp = inp
        self.declaration = inp.declaration
        self.limits: IncidentPolicy | None = inp.carried_limits
        self.status = (
            inp.carried.model_copy(deep=True)
            if inp.carried is not None
            else IncidentStatus(
                state=IncidentState.PLANNING,
                rate_per_second=inp.declaration.rate_per_second or 0.0,
                message="dry run: finding the orders the incident hurt",
                updated_at=inp.declared_at,
            )
        )
        self.seq = inp.carried_seq
        self.dirty = False  # a handler changed the status: report it at the next chance
        self.published: IncidentState | None = None if inp.carried is None else self.status.state
        self.batches_this_run = 0
        self.polls_this_run = 0

    # ------------------------------------------------------------------ the process
    @workflow.run
    async def run(self, inp: IncidentInput) -> IncidentView:
        if self.status.state is IncidentState.PLANNING:
            await self._record()
            await self._dry_run()
        if self.status.state is IncidentState.AWAITING_CONFIRMATION:
            await self._wait(lambda: self.status.state is not IncidentState.AWAITING_CONFIRMATION)
        if self.status.state in (IncidentState.RUNNING, IncidentState.PAUSED):
            await self._start_refunds()
        if self.status.state in (IncidentState.FINISHING, IncidentState.CANCELLING):
            await self._until_refunds_end()
        if self.dirty:
            await self._record()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def _dry_run(self) -> None:
        d = self.declaration
        answer = await workflow.execute_activity(
            incident_steps.plan_incident,
            PlanRequest(incident_id=d.incident_id, selection=d.selection),
            start_to_close_timeout=PLAN_TIMEOUT,
            heartbeat_timeout=PLAN_HEARTBEAT,
            retry_policy=PLAN_RETRY,
        )
        self.limits = answer.limits
        summary = answer.summary
        self.status.summary = summary
        self.status.rate_per_second = effective_rate(d.rate_per_second, answer.limits)
        if self.status.state is IncidentState.CANCELLED:  # cancelled while planning
            self.status.message = f"cancelled by {self.status.cancelled_by} after the dry run"
        elif refusal := selection_refusal(summary.matched) or limit_refusal(
            orders=summary.matched,
            amounts=summary.matched_amounts,
            limits=answer.limits,
            override=d.override_limits,
        ):
            self._set(IncidentState.REFUSED, f"refused: {refusal}")
        elif summary.to_refund == 0:
            self._set(IncidentState.COMPLETED, summary.in_words() + "; nothing to refund")
        else:
            self._set(
                IncidentState.AWAITING_CONFIRMATION,
                summary.in_words() + "; a second person must confirm",
            )
        await self._record()

    async def _start_refunds(self) -> None:
        """A batch at a time, at the declared rate, until every order's refund is started or
        the incident is cancelled."""
        d = self.declaration
        progress = self.status.progress
        while self.status.state is not IncidentState.CANCELLING:
            if self.status.state is IncidentState.PAUSED:
                await self._wait(lambda: self.status.state is not IncidentState.PAUSED)
                continue
            if self.batches_this_run >= self.inp.batches_per_run or (
                workflow.info().is_continue_as_new_suggested()
            ):
                await self._continue_as_new()
            began = workflow.now()
            rate = self.status.rate_per_second
            size = batch_size(rate, MAX_BATCH)
            # A regular activity, not a local one: the workflow task ends as the batch is
            # scheduled, so a confirm, pause or cancel is answered at once, and a worker lost
            # mid-batch is noticed by its heartbeat (seconds), not by the batch's timeout.
            answer = await workflow.execute_activity(
                incident_steps.start_incident_refunds,
                BatchRequest(
                    incident_id=d.incident_id,
                    after_position=progress.position,
                    limit=size,
                    reason=d.reason,
                    destination=d.destination,
                    refund_reason=d.refund_reason,
                ),
                start_to_close_timeout=BATCH_TIMEOUT,
                heartbeat_timeout=BATCH_HEARTBEAT,
                retry_policy=DB_RETRY,
            )
            self.batches_this_run += 1
            progress.batches += 1
            progress.started += answer.started
            progress.position = max(progress.position, answer.last_position)
            for reason, n in answer.skipped.items():
                progress.skipped_at_start[reason] = progress.skipped_at_start.get(reason, 0) + n
            progress.outcomes = answer.outcomes
            workflow.set_current_details(self._details())
            if answer.exhausted:
                if self.status.state is not IncidentState.CANCELLING:
                    self._set(
                        IncidentState.FINISHING,
                        f"every refund started ({progress.started}); waiting for them to end",
                    )
                break
            await self._wait(
                lambda: self.status.state is IncidentState.CANCELLING,
                until=began + timedelta(seconds=size / rate),
            )
        await self._record()

    async def _until_refunds_end(self) -> None:
        """Wait until no refund the incident started is still moving by itself (ended, or
        resting with a person), then report."""
        d = self.declaration
        delay = FIRST_POLL
        while True:
            outcomes = await workflow.execute_local_activity(
                incident_steps.incident_outcomes,
                OutcomesRequest(incident_id=d.incident_id),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
            self.status.progress.outcomes = outcomes
            workflow.set_current_details(self._details())
            if outcomes.in_flight == 0:
                break
            self.polls_this_run += 1
            if self.polls_this_run >= MAX_POLLS_PER_RUN or (
                workflow.info().is_continue_as_new_suggested()
            ):
                await self._continue_as_new()
            await self._wait(lambda: False, until=workflow.now() + delay)
            delay = min(delay * 2, LAST_POLL)
        report = await workflow.execute_local_activity(
            incident_steps.incident_report,
            OutcomesRequest(incident_id=d.incident_id),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self.status.report = report
        words = report.in_words()
        if self.status.state is IncidentState.CANCELLING:
            self._set(IncidentState.CANCELLED, f"cancelled by {self.status.cancelled_by}: {words}")
        else:
            self._set(IncidentState.COMPLETED, f"completed: {words}")
        await self._record()

    # ------------------------------------------------------------------ bookkeeping
    def view(self) -> IncidentView:
        d = self.declaration
        return IncidentView(
            **self.status.model_dump(),
            incident_id=d.incident_id,
            declaration=d,
            declared_at=self.inp.declared_at,
            workflow_id=workflow_id_for_incident(d.incident_id),
        )

    def _set(self, state: IncidentState, message: str) -> None:
        self.status.state = state
        self.status.message = message
        self.dirty = True

    def _details(self) -> str:
        s, p = self.status, self.status.progress
        return (
            f"**{s.state.value}** · {p.started} refunds started at {s.rate_per_second}/s · "
            f"{p.outcomes.by_status.get('refunded', 0)} refunded\n\n{s.message}"
        )

    async def _record(self) -> None:
        """Report the incident's state to the database, and show it to SREs."""
        self.seq += 1
        self.dirty = False
        self.status.updated_at = workflow.now()
        if self.status.state is not self.published:
            workflow.upsert_search_attributes([INCIDENT_STATE.value_set(self.status.state.value)])
            self.published = self.status.state
        workflow.set_current_details(self._details())
        await workflow.execute_local_activity(
            incident_steps.record_incident,
            IncidentRecord(
                incident_id=self.declaration.incident_id,
                seq=self.seq,
                status=self.status.model_copy(deep=True),
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )

    async def _wait(self, done: Callable[[], bool], *, until: datetime | None = None) -> None:
        """Wait for `done()` (or until a time), reporting what handlers change meanwhile."""
        while not done():
            timeout = None if until is None else (until - workflow.now()).total_seconds()
            if timeout is not None and timeout <= 0:
                return
            try:
                await workflow.wait_condition(lambda: done() or self.dirty, timeout=timeout)
            except TimeoutError:
                return
            if self.dirty:
                await self._record()

    async def _continue_as_new(self) -> None:
        """A fresh history: the next run carries the status (counts, position), never the
        orders."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.dirty:
            await self._record()
        self.status.progress.runs += 1
        workflow.continue_as_new(
            IncidentInput(
                declaration=self.declaration,
                declared_at=self.inp.declared_at,
                carried=self.status,
                carried_seq=self.seq,
                carried_limits=self.limits,
                batches_per_run=self.inp.batches_per_run,
            )
        )

    # ------------------------------------------------------------------ people
    @workflow.query(name="progress")
    def progress(self) -> IncidentView:
        return self.view()

    @workflow.update(name="confirm")
    def confirm(self, req: ConfirmIncident) -> IncidentView:
        self.status.confirmed_by, self.status.confirmed_at = req.by, workflow.now()
        self._set(
            IncidentState.RUNNING,
            f"confirmed by {req.by}; refunds start at {self.status.rate_per_second}/s",
        )
        return self.view()

    @confirm.validator
    def _may_confirm(self, req: ConfirmIncident) -> None:
        _refuse(may_confirm(self.view(), req))

    @workflow.update(name="pause")
    def pause(self, req: PauseIncident) -> IncidentView:
        self.status.paused_by = req.by
        self._set(IncidentState.PAUSED, f"paused by {req.by}: no new refunds until resumed")
        return self.view()

    @pause.validator
    def _may_pause(self, req: PauseIncident) -> None:
        _refuse(may_pause(self.view(), req))

    @workflow.update(name="resume")
    def resume(self, req: ResumeIncident) -> IncidentView:
        if req.rate_per_second is not None:
            self.status.rate_per_second = req.rate_per_second
        self.status.paused_by = None
        self._set(
            IncidentState.RUNNING,
            f"resumed by {req.by}; refunds start at {self.status.rate_per_second}/s",
        )
        return self.view()

    @resume.validator
    def _may_resume(self, req: ResumeIncident) -> None:
        _refuse(may_resume(self.view(), req, self.limits or IncidentPolicy()))

    @workflow.update(name="cancel")
    def cancel(self, req: StopIncident) -> IncidentView:
        self.status.cancelled_by = req.by
        if self.status.state in (IncidentState.RUNNING, IncidentState.PAUSED):
            self._set(
                IncidentState.CANCELLING,
                f"cancelled by {req.by}: no new refunds; those started finish",
            )
        else:  # nothing started yet
            self._set(IncidentState.CANCELLED, f"cancelled by {req.by}; no refund was started")
        return self.view()

    @cancel.validator
    def _may_cancel(self, req: StopIncident) -> None:
        _refuse(may_cancel(self.view(), req))

"""Starting an incident's workflow (`incident-{id}`) for the API, by its type name.

A declaration repeated while the incident runs finds the running workflow; one made again
after it ended starts a new run of the same id, whose dry run sees what the first refunded
(and whose refunds, named after the incident and the order, are the same refunds)."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from domain.incident import workflow_id_for_incident
from domain.incident_run import IncidentState
from workflow_api.starter import StartFailed
from workflows.incident_messages import IncidentInput
from workflows.search import INCIDENT_ID, INCIDENT_STATE, INCIDENT_WORKFLOW_TYPE

log = logging.getLogger(__name__)

WORKFLOW_TASK_TIMEOUT = timedelta(seconds=10)


async def start_incident(temporal: Client, inp: IncidentInput, *, task_queue: str) -> None:
    incident_id = inp.declaration.incident_id
    try:
        await temporal.start_workflow(
            INCIDENT_WORKFLOW_TYPE,
            inp,
            id=workflow_id_for_incident(incident_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(INCIDENT_ID, incident_id),
                    SearchAttributePair(INCIDENT_STATE, IncidentState.PLANNING.value),
                ]
            ),
            static_summary=f"incident {incident_id}: {inp.declaration.reason}"[:200],
            task_timeout=WORKFLOW_TASK_TIMEOUT,
        )
    except RPCError as err:
        log.warning("could not start incident %s: %s", incident_id, err)
        raise StartFailed(incident_id) from err

"""Rolling out a new worker version while old refunds finish on the old code: workers join
a Temporal Worker Deployment with their WORKER_BUILD_ID, refunds are pinned to the version
they started on, and making v2 current sends new refunds to v2 while a refund that waited
in review under v1 is finished by v1."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client
from temporalio.service import RPCError

from config.settings import Settings
from config.temporal import connect
from domain.refund import workflow_id_for
from tests.harness import free_port
from tests.operating.support import api_served, worker_served
from tests.system import System, card_key_order, course_order

pytestmark = pytest.mark.integration


async def make_current(client: Client, deployment: str, build_id: str) -> None:
    """What `temporal worker deployment set-current-version` does, once the version's
    worker has polled (until then the server does not know it)."""
    last: Exception | None = None
    for _ in range(200):
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=deployment,
                    build_id=build_id,
                    identity="test-rollout",
                )
            )
            return
        except RPCError as err:
            last = err
            await asyncio.sleep(0.1)
    raise AssertionError(f"{deployment}.{build_id} never became current: {last}")


async def build_ids_of(client: Client, refund_id: str) -> set[str]:
    """The build ids of the workers that completed this refund's workflow tasks."""
    ids: set[str] = set()
    async for event in client.get_workflow_handle(
        workflow_id_for(refund_id)
    ).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            ids.add(event.workflow_task_completed_event_attributes.deployment_version.build_id)
    return ids


async def test_a_new_version_takes_new_refunds_while_the_old_finishes_its_own(
    system: System,
) -> None:
    deployment = f"kami-refunds-test-{secrets.token_hex(3)}"
    base = system.settings.model_copy(
        update={"task_queue": f"refunds-{deployment}", "worker_deployment_name": deployment}
    )
    v1: Settings = base.model_copy(update={"worker_build_id": "v1"})
    v2: Settings = base.model_copy(update={"worker_build_id": "v2"})
    client = await connect(base)
    port = free_port()
    async with (
        api_served(
            base.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"}), port
        ) as api_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        s = System(settings=base, api_url=api_url, sandboxes=system.sandboxes, http=http)
        async with worker_served(v1):
            await make_current(client, deployment, "v1")
            old = await s.record(course_order(progress=20, minutes_ago=120))
            waiting = await s.refund_id(old, reason="changed_mind")
            await s.wait_status(waiting, "pending_review")

            async with worker_served(v2):
                await make_current(client, deployment, "v2")
                new = await s.record(card_key_order())
                fresh = await s.refund_id(new)
                await s.wait_status(fresh, "refunded")

                approved = await s.post(
                    f"/v1/refunds/{waiting}/approve", {"reviewer": "alice"}, "reviewer"
                )
                assert approved.status_code == 202, approved.text
                await s.wait_status(waiting, "refunded")

    assert await build_ids_of(client, fresh) == {"v2"}
    # Started under v1 and pinned there: every task, the approval's included, ran on v1.
    assert await build_ids_of(client, waiting) == {"v1"}
    described = await client.get_workflow_handle(workflow_id_for(waiting)).describe()
    info = described.raw_description.workflow_execution_info.versioning_info
    assert info.deployment_version.build_id == "v1"

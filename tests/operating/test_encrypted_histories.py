"""What Temporal keeps of a refund is ciphertext: a history fetched without the codec holds
no buyer IP, device id, reason text or evidence URL; the codec endpoint shows them to a
reviewer (through the real `temporal` CLI, as an SRE would read them); the saved histories
still replay; and a payload of a key the worker lacks fails its workflow task by name."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import secrets
import subprocess
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from config.payload_encryption import PayloadEncryption, new_key_text, parse_keys
from config.temporal import connect, data_converter
from domain.model import utcnow
from domain.refund import RefundItemRequest, workflow_id_for
from domain.types import RefundReason
from refundctl.devserver import temporal_binary
from tests.system import KEYS, System, card_key_order, unique
from tests.workflows.support import HISTORIES
from workflows.incident import IncidentWorkflow
from workflows.messages import RefundInput
from workflows.refund import RefundWorkflow
from workflows.search import WORKFLOW_TYPE

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class Secrets:
    ip: str
    device: str
    reason_text: str
    evidence_url: str

    def all(self) -> list[str]:
        return [self.ip, self.device, self.reason_text, self.evidence_url]


async def refund_with_personal_data(system: System) -> tuple[str, Secrets]:
    tag = secrets.token_hex(4)
    found = Secrets(
        ip=f"198.51.100.{int(tag[:2], 16) % 250 + 1}",
        device=f"dev-private-{tag}",
        reason_text=f"卡密提示无效 buyer note {tag}",
        evidence_url=f"https://cdn.example/evidence-{tag}.png",
    )
    order = await system.record(card_key_order(ip=found.ip, device=found.device))
    refund_id = await system.refund_id(
        order,
        reason="invalid_key",
        reason_text=found.reason_text,
        evidence=[{"kind": "screenshot", "url": found.evidence_url}],
        client={"ip": found.ip, "device_id": found.device},
    )
    await system.wait_status(refund_id, "refunded")
    return refund_id, found


@pytest.fixture(scope="module")
async def private_refund(system: System) -> tuple[str, Secrets]:
    return await refund_with_personal_data(system)


async def test_a_history_without_the_codec_holds_no_personal_data(
    system: System, private_refund: tuple[str, Secrets]
) -> None:
    refund_id, found = private_refund
    raw = await Client.connect(system.settings.temporal_address)  # no codec, no converter
    history = await raw.get_workflow_handle(workflow_id_for(refund_id)).fetch_history()
    stored = History(events=history.events).SerializeToString()  # payload bytes as stored
    as_json = json.dumps(history.to_json_dict(), ensure_ascii=False)
    for secret in found.all():
        assert secret.encode() not in stored, f"{secret!r} is in the history in plain text"
        assert secret not in as_json
    # Search attributes stay readable (the UI filters on them) and carry none of it.
    described = await raw.get_workflow_handle(workflow_id_for(refund_id)).describe()
    attributes = str(described.raw_description.workflow_execution_info.search_attributes)
    assert "RefundStatus" in attributes and "refunded" in attributes
    assert not any(secret in attributes for secret in found.all())

    # And the test would see them: the codec opens the start event's input.
    started = history.events[0].workflow_execution_started_event_attributes
    codec = data_converter(system.settings).payload_codec
    assert (
        codec is not None and started.input.payloads[0].metadata["encoding"] == b"binary/encrypted"
    )
    [opened] = await codec.decode(started.input.payloads)
    assert all(secret.encode() in opened.data for secret in found.all())


async def test_the_codec_endpoint_opens_payloads_for_reviewers_only(
    system: System, private_refund: tuple[str, Secrets]
) -> None:
    refund_id, found = private_refund
    raw = await Client.connect(system.settings.temporal_address)
    history = await raw.get_workflow_handle(workflow_id_for(refund_id)).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    from google.protobuf import json_format

    body = json_format.MessageToJson(Payloads(payloads=started.input.payloads))
    url = system.url("/codec/decode")
    headers = {"Content-Type": "application/json", "X-Namespace": "default"}

    nobody = await system.http.post(url, content=body, headers=headers)
    assert nobody.status_code == 401
    platform = await system.http.post(
        url, content=body, headers={**headers, "Authorization": f"Bearer {KEYS['platform']}"}
    )
    assert platform.status_code == 403
    reviewer = await system.http.post(
        url, content=body, headers={**headers, "Authorization": f"Bearer {KEYS['reviewer']}"}
    )
    assert reviewer.status_code == 200, reviewer.text
    decoded = json_format.Parse(reviewer.content, Payloads())
    assert found.ip.encode() in decoded.payloads[0].data

    # Encode answers what decode opens again.
    plain = Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b'"hello"')])
    admin = {**headers, "Authorization": f"Bearer {KEYS['admin']}"}
    sealed = await system.http.post(
        system.url("/codec/encode"), content=json_format.MessageToJson(plain), headers=admin
    )
    assert sealed.status_code == 200 and b"hello" not in sealed.content
    opened = await system.http.post(url, content=sealed.content, headers=admin)
    assert json_format.Parse(opened.content, Payloads()) == plain

    # The Temporal UI's origin may call it from the browser; another origin may not.
    ui = "http://127.0.0.1:8233"
    preflight = await system.http.options(
        url, headers={"Origin": ui, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ui
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    other = await system.http.options(
        url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    garbage = await system.http.post(url, content=b"{not json", headers=admin)
    assert garbage.status_code == 400


async def test_the_temporal_cli_shows_the_history_through_the_codec_endpoint(
    system: System, private_refund: tuple[str, Secrets]
) -> None:
    refund_id, found = private_refund
    argv = [
        temporal_binary(),
        "workflow",
        "show",
        "--workflow-id",
        workflow_id_for(refund_id),
        "--address",
        system.settings.temporal_address,
        "--output",
        "json",
    ]
    codec = ["--codec-endpoint", system.url("/codec"), "--codec-auth", f"Bearer {KEYS['reviewer']}"]
    without = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True)
    assert without.returncode == 0, without.stderr
    sealed = json.loads(without.stdout)["events"][0]["workflowExecutionStartedEventAttributes"]
    assert base64.b64decode(sealed["input"]["payloads"][0]["metadata"]["encoding"]) == (
        b"binary/encrypted"
    )
    shown = await asyncio.to_thread(subprocess.run, argv + codec, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    # JSON output keeps payloads as protobuf JSON: base64 data, now of the decoded payload.
    started = json.loads(shown.stdout)["events"][0]["workflowExecutionStartedEventAttributes"]
    [payload] = started["input"]["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    opened = base64.b64decode(payload["data"]).decode()
    assert found.ip in opened and found.device in opened and found.evidence_url in opened


async def test_saved_and_encrypted_histories_replay_through_the_codec(
    system: System, private_refund: tuple[str, Secrets]
) -> None:
    refund_id, _ = private_refund
    converter = data_converter(system.settings)
    # Incidents' histories (tests/histories/incident/) are kept beside the refunds'.
    replayer = Replayer(workflows=[RefundWorkflow, IncidentWorkflow], data_converter=converter)
    saved = sorted(HISTORIES.rglob("*.json"))
    assert saved and any(p.parent.name == "before_lean" for p in saved)
    for path in saved:  # recorded before encryption: their payloads pass through
        history = WorkflowHistory.from_json(f"refund-{path.stem}", path.read_text("utf-8"))
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
    service = await connect(system.settings)
    encrypted = await service.get_workflow_handle(workflow_id_for(refund_id)).fetch_history()
    result = await replayer.replay_workflow(encrypted, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_a_payload_of_an_unknown_key_fails_the_workflow_task_naming_it(
    system: System,
) -> None:
    foreign = PayloadEncryption(parse_keys(new_key_text("k-we-never-had")))
    stranger = await Client.connect(
        system.settings.temporal_address,
        data_converter=dataclasses.replace(data_converter(system.settings), payload_codec=foreign),
    )
    refund_id = unique("rf_unknown_key")
    handle = await stranger.start_workflow(
        WORKFLOW_TYPE,
        RefundInput(
            refund_id=refund_id,
            order_id=unique("O"),
            buyer_id="U-1",
            merchant_id="M-7",
            reason=RefundReason.INVALID_KEY,
            items=[RefundItemRequest(item_id="I-1", quantity=1)],
            amount=100,
            created_at=utcnow(),
        ),
        id=workflow_id_for(refund_id),
        task_queue=system.settings.task_queue,
    )
    try:
        failure: Any = None
        for _ in range(100):
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    failure = event.workflow_task_failed_event_attributes.failure
            if failure is not None:
                break
            await asyncio.sleep(0.1)
        assert failure is not None, "the worker never failed the workflow task"
        assert "k-we-never-had" in failure.message, failure.message
    finally:
        await handle.terminate("test: a payload of an unknown key")

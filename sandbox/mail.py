"""An SMTP sink (aiosmtpd) standing in for the mail server, with an HTTP control surface:
`GET /sandbox/messages` lists what it accepted (decoded), `POST /sandbox/faults` arms
`refuse` (451, try again later), `reject` (550, no such mailbox) or `timeout` (no answer for
`fault_delay` seconds) for the next recipients."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Annotated, Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import APIRouter, FastAPI, Query

from sandbox.faults import FaultPlan, add_fault_routes

__all__ = ["FAULT_MODES", "MailSink", "create_mail_app", "serve_smtp"]

FAULT_MODES = frozenset({"refuse", "reject", "timeout"})


class MailSink:
    """aiosmtpd's handler: keeps each accepted message, answers as the armed faults say."""

    def __init__(self, *, fault_delay: float) -> None:
        self.messages: list[dict[str, Any]] = []
        self.faults = FaultPlan(FAULT_MODES)
        self.fault_delay = fault_delay

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = await self.faults.take()
        if fault == "refuse":
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if fault == "reject":
            return "550 5.1.1 No such mailbox"
        if fault == "timeout":
            await asyncio.sleep(self.fault_delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(preferencelist=("plain",))
        self.messages.append(
            {
                "sequence": len(self.messages) + 1,
                "received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(parsed["Subject"]),
                "message_id": str(parsed["Message-ID"]),
                # SMTP lines end in CRLF; show the text as it was written.
                "body": body.get_content().replace("\r\n", "\n") if body is not None else "",
            }
        )
        return "250 Message accepted for delivery"


async def serve_smtp(sink: MailSink, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SMTP(sink, hostname="sandbox-smtp"), host, port)


def create_mail_app(sink: MailSink) -> FastAPI:
    app = FastAPI(title="Sandbox SMTP sink")
    app.state.sink = sink  # served over SMTP by `sandbox.run.serve_sandboxes`
    control = APIRouter(prefix="/sandbox", tags=["sandbox"])

    @control.get("/messages")
    async def list_messages(to: Annotated[str | None, Query()] = None) -> dict[str, Any]:
        return {"messages": [m for m in sink.messages if to is None or to in m["to"]]}

    add_fault_routes(control, sink.faults)

    @control.post("/reset")
    async def reset() -> dict[str, Any]:
        await sink.faults.clear()
        sink.messages.clear()
        return {"reset": True}

    app.include_router(control)
    return app

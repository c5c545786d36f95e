"""Platform webhook signatures, and the platform stand-in that checks them."""

from __future__ import annotations

import json

from peers.webhooks import SIGNATURE_HEADER, sign_webhook, verify_webhook
from sandbox.platform import create_platform_app
from tests.peers.conftest import WEBHOOK_SECRET, asgi_client


def test_webhook_signature_round_trip() -> None:
    body = b'{"refund_id":"R-1","status":"refunded"}'
    header = sign_webhook("secret", body)
    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify_webhook("secret", body, header)
    assert not verify_webhook("secret", body + b" ", header)
    assert not verify_webhook("other", body, header)
    assert not verify_webhook("secret", body, None)
    assert not verify_webhook("secret", body, header.removeprefix("sha256="))


async def test_platform_stand_in_verifies_and_records_deliveries() -> None:
    app = create_platform_app(secret=WEBHOOK_SECRET)
    body = json.dumps({"refund_id": "R-1", "status": "refunded"}).encode()
    async with asgi_client(app, "http://platform.test") as http:
        good = {SIGNATURE_HEADER: sign_webhook(WEBHOOK_SECRET, body)}
        forged = {SIGNATURE_HEADER: sign_webhook("guess", body)}
        assert (
            await http.post("/webhooks/refunds", content=body, headers=forged)
        ).status_code == 401

        await http.post("/sandbox/faults", json={"mode": "error_5xx", "count": 1})
        assert (await http.post("/webhooks/refunds", content=body, headers=good)).status_code == 503
        assert (await http.post("/webhooks/refunds", content=body, headers=good)).status_code == 200

        listed = (await http.get("/sandbox/webhooks", params={"refund_id": "R-1"})).json()
        assert [d["status"] for d in listed["deliveries"]] == ["refunded"]
        other = (await http.get("/sandbox/webhooks", params={"refund_id": "R-2"})).json()
        assert other["deliveries"] == []

"""A handle on the running system for integration tests, with the small verbs tests need."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from config.settings import Settings
from sandbox.run import SandboxURLs

KEYS = {"platform": "pk-test", "reviewer": "rk-test", "admin": "ak-test"}
_serial = itertools.count(1)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}-{next(_serial)}"


def unique_ip() -> str:
    """A client address of its own per test buyer (documentation prefix), so risk checks
    do not link unrelated test buyers as one "team"."""
    return f"2001:db8::{secrets.token_hex(2)}:{next(_serial):x}"


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def card_key_order(
    *,
    channel: str = "alipay",
    amount: int = 5000,
    minutes_ago: float = 30,
    quantity: int = 1,
    commissions: bool = True,
    buyer: str | None = None,
    device: str | None = None,
    ip: str | None = None,
) -> dict[str, Any]:
    oid = unique("O")
    return {
        "order_id": oid,
        "merchant_id": "M-7",
        "buyer_id": buyer or unique("U"),
        "status": "paid",
        "currency": "CNY",
        "amount": amount * quantity,
        "created_at": ago(minutes=minutes_ago),
        "paid_at": ago(minutes=minutes_ago),
        "payments": [
            {
                "payment_id": "P-1",
                "channel": channel,
                "transaction_id": unique("T"),
                "amount": amount * quantity,
                "paid_at": ago(minutes=minutes_ago),
            }
        ],
        "items": [
            {
                "item_id": "I-1",
                "sku": "steam-50",
                "title": "Steam wallet 50",
                "product_type": "card_key",
                "quantity": quantity,
                "unit_price": amount,
                "card_keys": [
                    {
                        "card_key_id": unique("K"),
                        "supplier": "sup-a",
                        "delivered_at": ago(minutes=minutes_ago),
                    }
                    for _ in range(quantity)
                ],
                "usage": {"key_revealed": False, "progress_pct": 0, "downloaded": False},
            }
        ],
        "client": {"ip": ip or unique_ip(), "device_id": device or unique("dev")},
        "commissions": [{"beneficiary_id": "U-7", "level": 1, "amount": amount * quantity // 10}]
        if commissions
        else [],
    }


def course_order(
    *, progress: int = 20, minutes_ago: float = 120, channel: str = "wechat", price: int = 19900
) -> dict[str, Any]:
    oid = unique("O")
    return {
        "order_id": oid,
        "merchant_id": "M-7",
        "buyer_id": unique("U"),
        "status": "paid",
        "currency": "CNY",
        "amount": price,
        "created_at": ago(minutes=minutes_ago),
        "paid_at": ago(minutes=minutes_ago),
        "payments": [
            {
                "payment_id": "P-1",
                "channel": channel,
                "transaction_id": unique("T"),
                "amount": price,
                "paid_at": ago(minutes=minutes_ago),
            }
        ],
        "items": [
            {
                "item_id": "I-1",
                "sku": "course-py",
                "title": "Python course",
                "product_type": "course",
                "quantity": 1,
                "unit_price": price,
                "card_keys": [],
                "usage": {"key_revealed": False, "progress_pct": progress, "downloaded": False},
            }
        ],
        "client": {"ip": unique_ip(), "device_id": unique("dev")},
        "commissions": [{"beneficiary_id": "U-8", "level": 1, "amount": price // 10}],
    }


@dataclass
class System:
    settings: Settings
    api_url: str
    sandboxes: SandboxURLs
    http: httpx.AsyncClient
    _: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.api_url + path

    async def post(
        self, path: str, body: Any, role: str = "platform", **headers: str
    ) -> httpx.Response:
        return await self.http.post(self.url(path), json=body, headers={**auth(role), **headers})

    async def get(self, path: str, role: str = "platform") -> httpx.Response:
        return await self.http.get(self.url(path), headers=auth(role))

    async def record(self, order: dict[str, Any]) -> dict[str, Any]:
        r = await self.post("/v1/orders", order)
        assert r.status_code == 201, r.text
        return order

    async def refund(
        self,
        order: dict[str, Any],
        *,
        reason: str = "invalid_key",
        key: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        body = {
            "order_id": order["order_id"],
            "buyer_id": order["buyer_id"],
            "reason": reason,
            **extra,
        }
        return await self.post("/v1/refunds", body, **{"Idempotency-Key": key or unique("idem")})

    async def refund_id(self, order: dict[str, Any], **kw: Any) -> str:
        r = await self.refund(order, **kw)
        assert r.status_code == 202, r.text
        return str(r.json()["refund_id"])

    async def body(self, refund_id: str) -> dict[str, Any]:
        r = await self.get(f"/v1/refunds/{refund_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def wait_status(
        self, refund_id: str, *statuses: str, within: float = 60
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + within
        body: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            body = await self.body(refund_id)
            if body["status"] in statuses:
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(
            f"refund {refund_id} stayed {body.get('status')} (wanted {statuses}): {body}"
        )

    async def gateway_refunds(self, channel: str, transaction_id: str) -> list[dict[str, Any]]:
        base = (
            self.sandboxes.alipay.rsplit("/", 1)[0]
            if channel == "alipay"
            else self.sandboxes.wechat
        )
        r = await self.http.get(
            f"{base}/sandbox/refunds", params={"transaction_id": transaction_id}
        )
        r.raise_for_status()
        data = r.json()
        return list(data["refunds"] if isinstance(data, dict) else data)

    async def sandbox_key(self, card_key_id: str) -> dict[str, Any]:
        r = await self.http.get(f"{self.sandboxes.supplier}/sandbox/keys/{card_key_id}")
        r.raise_for_status()
        return dict(r.json())

    async def set_key(self, card_key_id: str, state: str) -> None:
        r = await self.http.put(
            f"{self.sandboxes.supplier}/sandbox/keys/{card_key_id}", json={"state": state}
        )
        r.raise_for_status()

    async def webhooks(self, refund_id: str) -> list[dict[str, Any]]:
        r = await self.http.get(
            f"{self.sandboxes.platform}/sandbox/webhooks", params={"refund_id": refund_id}
        )
        r.raise_for_status()
        data = r.json()
        return list(data["deliveries"])

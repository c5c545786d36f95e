"""Small verbs for the incident tests: orders hurt by a bad batch, declaring, waiting."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.system import System, card_key_order, unique


def batch_order(batch: str, **order: Any) -> dict[str, Any]:
    """A card-key order (not recorded yet) whose keys came from the supplier's `batch`."""
    o = card_key_order(**order)
    for key in o["items"][0]["card_keys"]:
        key["batch_id"] = batch
    return o


async def bad_batch(system: System, n: int, **order: Any) -> tuple[str, list[dict[str, Any]]]:
    """`n` paid card-key orders whose keys came from one supplier batch (its id returned)."""
    batch = unique("B")
    return batch, [await system.record(batch_order(batch, **order)) for _ in range(n)]


def declaration(
    incident_id: str, selection: dict[str, Any], *, by: str = "sam", **extra: Any
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "declared_by": by,
        "selection": selection,
        "reason": "供应商批次卡密失效 (supplier batch invalid)",
        **extra,
    }


async def declare(system: System, body: dict[str, Any], *, expect: int = 202) -> dict[str, Any]:
    r = await system.post("/v1/incidents", body, role="admin")
    assert r.status_code == expect, r.text
    return dict(r.json())


async def incident(system: System, incident_id: str) -> dict[str, Any]:
    r = await system.get(f"/v1/incidents/{incident_id}", role="admin")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def wait_state(
    system: System, incident_id: str, *states: str, within: float = 60
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    view: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        view = await incident(system, incident_id)
        if view["state"] in states:
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"incident {incident_id} stayed {view.get('state')}: {view}")


async def act(
    system: System, incident_id: str, action: str, body: dict[str, Any], *, expect: int = 200
) -> dict[str, Any]:
    r = await system.post(f"/v1/incidents/{incident_id}/{action}", body, role="admin")
    assert r.status_code == expect, r.text
    return dict(r.json())


async def incident_refunds(system: System, incident_id: str) -> list[dict[str, Any]]:
    refunds: list[dict[str, Any]] = []
    cursor = ""
    while True:
        r = await system.get(
            f"/v1/refunds?incident_id={incident_id}&limit=200{cursor}", role="reviewer"
        )
        assert r.status_code == 200, r.text
        page = r.json()
        refunds += page["refunds"]
        if not page["next_cursor"]:
            return refunds
        cursor = f"&cursor={page['next_cursor']}"


async def paid_back(system: System, order: dict[str, Any]) -> list[dict[str, Any]]:
    """What the order's gateway accepted as refunds of its payment (the sandbox's record)."""
    payment = order["payments"][0]
    return await system.gateway_refunds(payment["channel"], payment["transaction_id"])

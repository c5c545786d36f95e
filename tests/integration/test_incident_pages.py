"""The console's incident pages over plain HTTP (no browser): only supervisors and admins
reach them, every form needs its CSRF token, and the API's refusals of a declaration appear
beside the field concerned. The browser test (tests/browser/test_incident_console.py)
drives a whole incident through them."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.incident_support import (
    act,
    bad_batch,
    declaration,
    declare,
    incident_refunds,
    paid_back,
    wait_state,
)
from tests.integration.test_pages import _csrf, sign_in
from tests.system import KEYS, System, unique

pytestmark = pytest.mark.integration


async def test_a_reviewer_gets_403_on_the_incident_pages(system: System) -> None:
    async with sign_in(system, name=unique("rev")) as (client, _):
        queue = await client.get("/console/queue")
        assert "/console/incidents" not in queue.text  # no link in the navigation
        csrf = _csrf(queue.text)
        for path in ("/console/incidents", "/console/incidents/new", "/console/incidents/x"):
            r = await client.get(path)
            assert r.status_code == 403 and "您无权执行此操作" in r.text, path
        for path in ("/console/incidents", "/console/incidents/x/confirm"):
            r = await client.post(path, data={"csrf": csrf, "incident_id": "x"})
            assert r.status_code == 403, path


async def test_forms_without_their_csrf_token_are_refused(system: System) -> None:
    batch, _ = await bad_batch(system, 1)
    incident_id = unique("inc")
    body = {"incident_id": incident_id, "batch_id": batch, "reason": "bad batch"}
    async with sign_in(system, key=KEYS["admin"], name=unique("sup")) as (client, _):
        form = await client.get("/console/incidents/new")
        assert form.status_code == 200 and "声明事件" in form.text
        for sent in (body, {**body, "csrf": "x" * 40}):
            r = await client.post("/console/incidents", data=sent)
            assert r.status_code == 403 and "表单已失效" in r.text
        r = await client.post(f"/console/incidents/{incident_id}/cancel", data={})
        assert r.status_code == 403
    # Nothing was declared.
    assert (await system.get(f"/v1/incidents/{incident_id}", role="admin")).status_code == 404


async def test_the_apis_refusals_show_beside_their_fields(system: System) -> None:
    batch, _ = await bad_batch(system, 1)
    async with sign_in(system, key=KEYS["admin"], name=unique("sup")) as (client, _):
        csrf = _csrf((await client.get("/console/incidents/new")).text)
        base = {"csrf": csrf, "incident_id": unique("inc"), "reason": "bad batch"}
        nothing = await client.post(
            "/console/incidents", data={**base, "batch_id": unique("no-such-batch")}
        )
        assert nothing.status_code == 422
        assert 'data-field="selection"' in nothing.text and "matches no order" in nothing.text
        too_fast = await client.post(
            "/console/incidents", data={**base, "batch_id": batch, "rate_per_second": "999"}
        )
        assert too_fast.status_code == 422
        assert 'data-field="rate_per_second"' in too_fast.text
        assert "max_rate_per_second" in too_fast.text
        assert (
            await system.get(f"/v1/incidents/{base['incident_id']}", role="admin")
        ).status_code == 404


async def test_pause_resume_and_cancel_from_the_console(system: System) -> None:
    batch, orders = await bad_batch(system, 6)
    incident_id = unique("inc")
    await declare(system, declaration(incident_id, {"batch_id": batch}, rate_per_second=1))
    await wait_state(system, incident_id, "awaiting_confirmation")
    await act(system, incident_id, "confirm", {"by": "lee"})
    page = f"/console/incidents/{incident_id}"
    async with sign_in(system, key=KEYS["admin"], name="kim-console") as (client, _):
        csrf = _csrf((await client.get(page)).text)
        paused = await client.post(f"{page}/pause", data={"csrf": csrf, "note": "checking"})
        assert paused.status_code == 303 and "flash=paused" in paused.headers["location"]
        # The page reads what the workflow last reported to the database: wait for it.
        await wait_state(system, incident_id, "paused")
        shown = await client.get(paused.headers["location"])
        assert "已暂停" in shown.text and 'id="resume"' in shown.text
        # Paused twice: the workflow refuses, the page says why (not an error page).
        again = await client.post(f"{page}/pause", data={"csrf": csrf})
        assert again.status_code == 409 and 'id="refusal"' in again.text
        assert "cannot pause an incident that is paused" in again.text
        bad_rate = await client.post(f"{page}/resume", data={"csrf": csrf, "rate_per_second": "x"})
        assert bad_rate.status_code == 422 and "速率无效" in bad_rate.text
        resumed = await client.post(f"{page}/resume", data={"csrf": csrf, "rate_per_second": "2"})
        assert resumed.status_code == 303 and "flash=resumed" in resumed.headers["location"]
        cancelled = await client.post(f"{page}/cancel", data={"csrf": csrf, "note": "enough"})
        assert cancelled.status_code == 303
        done = await wait_state(system, incident_id, "cancelled")
        assert done["cancelled_by"] == "kim-console"
        final = await client.get(page)
        assert "已取消" in final.text and 'id="report"' in final.text
    await asyncio.sleep(1.5)
    started = {r["order_id"] for r in await incident_refunds(system, incident_id)}
    assert len(started) < len(orders)
    for order in orders:  # nothing twice, nothing after the cancel
        assert len(await paid_back(system, order)) == (order["order_id"] in started)

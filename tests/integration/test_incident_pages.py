"""The console's incident pages over plain HTTP (no browser): only supervisors and admins
reach them, every form needs its CSRF token, and the API's refusals of a declaration appear
beside the field concerned. The browser test (tests/browser/test_incident_console.py)
drives a whole incident through them."""

from __future__ import annotations

import pytest

from tests.integration.incident_support import bad_batch
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

"""Incidents in the console, in a real browser, the way two supervisors run one: the first
declares it for a bad batch (a refused form first, its errors beside the fields), reads the
dry run, tries to confirm and is told a second person must; the second signs in and
confirms; the page follows the incident to its end and every order is refunded once."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from tests.browser.conftest import shot
from tests.integration.incident_support import (
    bad_batch,
    batch_order,
    incident,
    incident_refunds,
    paid_back,
)
from tests.system import KEYS, System, unique

PASSWORD = "incident drill 1"


async def supervisor_account(system: System, prefix: str) -> str:
    username = unique(prefix)
    r = await system.http.put(
        system.url(f"/v1/admin/console-accounts/{username}"),
        json={"display_name": username, "role": "supervisor", "password": PASSWORD},
        headers={"Authorization": f"Bearer {KEYS['admin']}"},
    )
    assert r.status_code == 201, r.text
    return username


@contextlib.asynccontextmanager
async def signed_in(browser: Any, system: System, username: str) -> AsyncIterator[Any]:
    """A supervisor with their own account and password, in a browser context of their own."""
    context = await browser.new_context(
        base_url=system.api_url, locale="zh-CN", viewport={"width": 1400, "height": 900}
    )
    page = await context.new_page()
    page.set_default_timeout(15_000)
    try:
        await page.goto("/console/login")
        await page.fill("input[name=username]", username)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("form.stack button.primary")
        await page.wait_for_url(re.compile(r".*/console/queue.*"))
        yield page
    finally:
        await context.close()


async def wait_state_shown(page: Any, words: str, within: float = 45_000) -> None:
    """The page reloads itself when the incident's state changes (htmx polling)."""
    await page.wait_for_function(
        "w => (document.getElementById('state') || {}).textContent === w",
        arg=words,
        timeout=within,
    )


async def test_two_supervisors_declare_and_confirm_an_incident(
    browser: Any, system: System
) -> None:
    batch, orders = await bad_batch(system, 3)
    unpaid = batch_order(batch)
    unpaid.update(status="unpaid", paid_at=None, payments=[])
    await system.record(unpaid)
    sam = await supervisor_account(system, "sam")
    lee = await supervisor_account(system, "lee")
    incident_id = unique("inc")

    async with signed_in(browser, system, sam) as page:
        await page.click("nav >> text=事件")
        await page.wait_for_url(re.compile(r".*/console/incidents$"))
        await page.click("#declare")
        # A form the rules refuse: no reason, a merchant without its paid-between window.
        await page.fill("#f-incident_id", incident_id)
        await page.fill("#f-merchant_id", "m-1")
        await page.click("#declare-submit")
        await page.wait_for_selector("#form-errors")
        assert await page.locator(".field-error[data-field=paid_from]").count() == 1
        assert await page.locator(".field-error[data-field=reason]").count() == 1
        assert await page.input_value("#f-incident_id") == incident_id  # kept as typed
        await shot(page, "console-incident-form-refused")

        await page.fill("#f-merchant_id", "")
        await page.fill("#f-batch_id", batch)
        await page.fill("#f-reason", "供应商批次卡密失效，主动全额退款")
        await page.fill("#f-rate_per_second", "20")
        await page.click("#declare-submit")
        await page.wait_for_url(re.compile(rf".*/console/incidents/{incident_id}\?flash=.*"))
        await wait_state_shown(page, "待第二人确认")
        assert await page.inner_text("#to-refund") == "3"
        assert await page.inner_text("#money") == "¥150.00"
        assert "未付款 1" in await page.inner_text("#dry-run")
        assert await page.locator("tr.oline").count() == 4
        await shot(page, "console-incident-dry-run")

        # The declarer confirms: refused, said on the page, nothing moves.
        await page.click("#confirm")
        await page.wait_for_selector("#refusal")
        assert "声明人不能确认自己声明的事件" in await page.inner_text("#refusal")
        await shot(page, "console-incident-self-confirm-refused")
        assert (await incident(system, incident_id))["state"] == "awaiting_confirmation"
        assert await incident_refunds(system, incident_id) == []

    async with signed_in(browser, system, lee) as page:
        await page.goto("/console/incidents")
        row = page.locator(f"tr.irow[data-id='{incident_id}']")
        assert sam in await row.inner_text()
        await shot(page, "console-incidents")
        await row.locator("a").click()
        await page.fill("#confirm-form input[name=note]", "核对过清单")
        await page.click("#confirm")
        await page.wait_for_selector("#flash")
        await wait_state_shown(page, "已完成")
        assert await page.inner_text("#report-refunded") == "3"
        assert lee in await page.inner_text("#confirmed-by")
        await shot(page, "console-incident-completed")
        await page.click("a.chip >> text=跳过的")  # the skipped orders only, and why
        await page.wait_for_url(re.compile(r".*show=skipped.*"))
        assert await page.locator("tr.oline").count() == 1
        assert "未付款" in await page.inner_text("tr.oline")
        await page.click("a.lang")
        await page.wait_for_selector("text=Final report")
        assert await page.inner_text("#state") == "completed"
        await shot(page, "console-incident-en")

    done = await incident(system, incident_id)
    assert done["declaration"]["declared_by"] == sam and done["confirmed_by"] == lee
    refunds = await incident_refunds(system, incident_id)
    assert sorted(r["order_id"] for r in refunds) == sorted(o["order_id"] for o in orders)
    assert {r["status"] for r in refunds} == {"refunded"}
    for order in orders:  # each paid back exactly once, at the gateway
        assert [g["amount"] for g in await paid_back(system, order)] == [5000]

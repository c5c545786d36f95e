"""The reviewer console in a real browser (headless Chromium) against the whole system: sign
in, filter the queue, claim, approve partially, reject, four eyes, and two reviewers racing
for one case. Each page visited is saved as a screenshot (tests/browser/conftest.py)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.browser.conftest import reviewer, shot
from tests.system import KEYS, System, card_key_order, course_order, unique


async def pending(system: System, order: dict[str, Any], **extra: Any) -> str:
    await system.record(order)
    refund_id = await system.refund_id(order, reason=extra.pop("reason", "changed_mind"), **extra)
    await system.wait_status(refund_id, "pending_review")
    return refund_id


def revealed_card_key(**kw: Any) -> dict[str, Any]:
    order = card_key_order(**kw)
    order["items"][0]["usage"]["key_revealed"] = True  # a person decides
    return order


async def test_sign_in_filter_search_and_keyboard(browser: Any, system: System) -> None:
    course = await pending(system, course_order(progress=20, minutes_ago=120))
    card = await pending(
        system, revealed_card_key(), reason="invalid_key", reason_text="卡密提示已被使用"
    )
    context = await browser.new_context(base_url=system.api_url, locale="zh-CN")
    login = await context.new_page()
    await login.goto("/console/queue")
    assert "/console/login" in login.url  # not signed in: the sign-in page
    await shot(login, "console-sign-in")
    await context.close()

    async with reviewer(browser, system, unique("rev")) as page:
        rows = page.locator("tr.row")
        assert await rows.count() >= 2
        await shot(page, "console-queue")
        # Filter by product type: only courses stay.
        await page.select_option("select[name=product_type]", "course")
        await page.click("#filters button[type=submit]")
        await page.wait_for_url(re.compile(r".*product_type=course.*"))
        ids = await page.locator("tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")
        assert course in ids and card not in ids
        assert await page.locator(".chip.on").count() >= 1  # the counts show the filter
        # Search by order id: exactly that refund.
        await page.goto("/console/queue")
        await page.fill("input[name=q]", card)
        await page.press("input[name=q]", "Enter")
        await page.wait_for_url(re.compile(r".*q=.*"))
        ids = await page.locator("tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")
        assert ids == [card]
        await shot(page, "console-queue-search")
        # Keyboard: j selects, Enter opens the case.
        await page.goto("/console/queue")
        await page.keyboard.press("j")
        await page.keyboard.press("k")
        selected = await page.locator("tr.row.selected").get_attribute("data-id")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(rf".*/console/cases/{re.escape(selected or '')}$"))


async def test_new_cases_appear_without_a_reload(browser: Any, system: System) -> None:
    async with reviewer(browser, system, unique("rev")) as page:
        order = revealed_card_key()
        await page.fill("input[name=q]", order["order_id"])
        await page.press("input[name=q]", "Enter")
        await page.wait_for_selector(".empty")
        await pending(system, order)
        # htmx polls the rows every 5 s: the case shows up by itself.
        await page.wait_for_selector("tr.row", timeout=20_000)


async def test_claim_then_approve_a_partial_amount(browser: Any, system: System) -> None:
    refund_id = await pending(system, course_order(progress=20, minutes_ago=120, price=19900))
    async with reviewer(browser, system, "alice-partial") as page:
        await page.goto(f"/console/cases/{refund_id}")
        await page.click("#claim")
        await page.wait_for_selector("#flash")
        assert "已领取" in await page.inner_text("#flash")
        await shot(page, "console-case")
        await page.fill("#amount", "50.00")
        await page.click("#approve")
        await page.wait_for_selector("#flash")
        assert "已批准" in await page.inner_text("#flash")
        body = await system.wait_status(refund_id, "refunded")
        assert body["amount"] == 5000 and body["review"]["reviewer"] == "alice-partial"
        assert body["payouts"][-1]["amount"] == 5000
        # Above what is refundable: the workflow refuses, the page says why.
        other = await pending(system, course_order(progress=20, minutes_ago=120, price=19900))
        await page.goto(f"/console/cases/{other}")
        await page.fill("#amount", "999.00")
        await page.evaluate("document.getElementById('amount').setCustomValidity('')")
        await page.click("#approve")
        await page.wait_for_selector("#refusal")
        assert "金额无效" in await page.inner_text("#refusal")
        assert (await system.body(other))["status"] == "pending_review"


async def test_reject_with_a_template_the_buyer_sees(browser: Any, system: System) -> None:
    refund_id = await pending(system, course_order(progress=20, minutes_ago=120))
    async with reviewer(browser, system, "bob-reject") as page:
        await page.goto(f"/console/cases/{refund_id}#reject")
        await page.select_option("#reject-template", index=4)  # after "—"
        await page.fill("#reject-form textarea", "请补充播放失败的截图后申诉")
        await page.click("#reject")
        await page.wait_for_selector("#flash")
        body = await system.wait_status(refund_id, "rejected")
        assert body["review"]["note"].startswith("凭证不足")
        assert "请补充播放失败的截图后申诉" in body["review"]["note"]
        await shot(page, "console-case-rejected")


async def test_four_eyes_needs_a_second_reviewer(browser: Any, system: System) -> None:
    # 680 CNY: above the default policy's four-eyes amount (500 CNY).
    refund_id = await pending(system, course_order(progress=20, minutes_ago=120, price=68000))
    async with (
        reviewer(browser, system, "alice-4eyes") as alice,
        reviewer(browser, system, "bob-4eyes") as bob,
    ):
        await alice.goto(f"/console/cases/{refund_id}")
        await alice.click("#approve")
        await alice.wait_for_selector("#flash")
        assert "需要另一位审核员复核" in await alice.inner_text("#flash")
        await shot(alice, "console-four-eyes-first")
        assert (await system.body(refund_id))["status"] == "pending_review"
        # The same person again: the button says to wait; a form sent anyway is refused by
        # the workflow.
        assert await alice.locator("#approve").is_disabled()
        await alice.evaluate("document.getElementById('approve-form').submit()")
        await alice.wait_for_selector("#refusal")
        assert "双人复核" in await alice.inner_text("#refusal")
        # Someone else: paid.
        await bob.goto(f"/console/cases/{refund_id}")
        assert "alice-4eyes" in await bob.inner_text(".case-side")
        await bob.click("#approve")
        await bob.wait_for_selector("#flash")
        body = await system.wait_status(refund_id, "refunded")
        assert body["amount"] == 68000 and body["review"]["first_approval"]["reviewer"] == (
            "alice-4eyes"
        )


async def test_two_reviewers_race_for_one_case(browser: Any, system: System) -> None:
    refund_id = await pending(system, revealed_card_key())
    async with (
        reviewer(browser, system, "alice-race") as alice,
        reviewer(browser, system, "bob-race") as bob,
    ):
        await alice.goto(f"/console/cases/{refund_id}")
        await bob.goto(f"/console/cases/{refund_id}")
        # Both press "claim" at the same instant: the workflow takes one.
        await asyncio.gather(alice.click("#claim"), bob.click("#claim"))
        await asyncio.gather(
            alice.wait_for_selector("#flash, #refusal"), bob.wait_for_selector("#flash, #refusal")
        )
        won = [p for p in (alice, bob) if await p.locator("#flash").count()]
        lost = [p for p in (alice, bob) if await p.locator("#refusal").count()]
        assert len(won) == 1 and len(lost) == 1
        winner = "alice-race" if won[0] is alice else "bob-race"
        refusal = await lost[0].inner_text("#refusal")
        assert f"{winner} 正在处理" in refusal
        await shot(lost[0], "console-race-refused")
        # The loser tries to approve anyway: refused again, nothing paid.
        await lost[0].click("#approve")
        await lost[0].wait_for_selector("#refusal")
        assert (await system.body(refund_id))["status"] == "pending_review"
        # The winner approves; the loser, acting on the finished case, sees what happened.
        await won[0].click("#approve")
        await system.wait_status(refund_id, "refunded")
        await lost[0].fill("#reject-form textarea", "late")
        await lost[0].click("#reject")
        await lost[0].wait_for_selector("#refusal")
        assert "此退款已结束" in await lost[0].inner_text("#refusal")
        await shot(lost[0], "console-case-finished-meanwhile")
        await lost[0].goto(f"/console/cases/{refund_id}")
        assert "此退款已结束" in await lost[0].inner_text(".case-side")


async def test_supervisor_sees_load_and_reassigns(browser: Any, system: System) -> None:
    refund_id = await pending(system, revealed_card_key())
    async with reviewer(browser, system, "sam-supervisor", key=KEYS["admin"]) as page:
        await page.goto(f"/console/cases/{refund_id}")
        await page.click("#claim")
        await page.wait_for_selector("#flash")
        await page.goto("/console/supervisor")
        assert "今日 SLA" in await page.inner_text("main")
        assert "sam-supervisor" in await page.inner_text("main")
        await shot(page, "console-supervisor")
        await page.goto("/console/queue?lang=en")
        await page.click("a.lang")
        await page.wait_for_selector("text=Refunds awaiting review")
        await shot(page, "console-queue-en")

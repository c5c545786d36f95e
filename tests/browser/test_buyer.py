"""The buyer's progress page on a phone-sized headless Chromium: from review through a
rejection, an appeal and an approval to money back, updating itself; evidence the buyer adds
(HTML shown as text); cancelling; forged and expired links; English by Accept-Language."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import phone, reviewer, shot
from tests.browser.test_console import pending, revealed_card_key
from tests.integration.test_buyer_messages import contacts, mail_to, settled, sms_to
from tests.system import System, course_order, unique

XSS = "<b>bold?</b><script>document.title='pwned'</script>"


async def link(system: System, refund_id: str) -> str:
    r = await system.post(f"/v1/refunds/{refund_id}/buyer-link", {})
    assert r.status_code == 201, r.text
    return str(r.json()["url"]).removeprefix(system.api_url)


async def test_buyer_page_through_reject_appeal_and_approve(browser: Any, system: System) -> None:
    refund_id = await pending(system, course_order(progress=20, minutes_ago=120))
    path = await link(system, refund_id)
    async with phone(browser, system) as buyer, reviewer(browser, system, "dora") as agent:
        await buyer.goto(path)
        assert "客服正在审核您的申请" in await buyer.inner_text("#headline")
        await shot(buyer, "buyer-pending")

        # The agent asks for evidence; the buyer's page shows the question by itself.
        await agent.goto(f"/console/cases/{refund_id}")
        await agent.fill("#ask-form textarea", "请上传课程无法播放的截图")
        await agent.click("#ask")
        await agent.wait_for_selector("#flash")
        await buyer.wait_for_selector("text=请上传课程无法播放的截图", timeout=20_000)
        await shot(buyer, "buyer-asked-for-evidence")
        await buyer.click("#open-evidence")
        await buyer.fill("textarea[name=text]", XSS)
        await buyer.fill("input[name=url]", "https://cdn.example/play-error.png")
        await buyer.click("#send-evidence")
        await buyer.wait_for_selector("#done")
        assert await buyer.title() != "pwned"
        assert XSS in await buyer.inner_text("body")  # shown as text, never run
        await shot(buyer, "buyer-evidence-added")

        # Rejected: the page turns to it without a reload and shows the agent's reason.
        await agent.goto(f"/console/cases/{refund_id}")
        assert XSS in await agent.inner_text(".evidence")
        await agent.select_option("#reject-template", index=4)
        await agent.click("#reject")
        await system.wait_status(refund_id, "rejected")
        await buyer.wait_for_selector("text=很抱歉，退款申请未通过", timeout=20_000)
        await buyer.reload()
        assert "凭证不足" in await buyer.inner_text("body")
        await shot(buyer, "buyer-rejected")

        # The buyer appeals once; it goes back to review.
        await buyer.fill("form[action$=appeal] textarea", "截图里能看到播放失败")
        await buyer.click("#appeal")
        await buyer.wait_for_selector("#done")
        await system.wait_status(refund_id, "pending_review")
        assert await buyer.locator("#appeal").count() == 0  # once only

        # Approved on appeal: money back, shown on the page.
        await agent.goto(f"/console/cases/{refund_id}")
        assert "截图里能看到播放失败" in await agent.inner_text("main")
        await agent.click("#approve")
        await system.wait_status(refund_id, "refunded")
        await buyer.wait_for_selector("text=退款已到账", timeout=20_000)
        await buyer.reload()
        body = await buyer.inner_text("body")
        assert "已于" in body and "微信支付" in body
        for internal in ("dora", "window.conditional", "risk", "风险"):
            assert internal not in body, internal
        await shot(buyer, "buyer-refunded")


async def test_buyer_cancels_in_english(browser: Any, system: System) -> None:
    refund_id = await pending(system, course_order(progress=20, minutes_ago=120))
    path = await link(system, refund_id)
    async with phone(browser, system, locale="en-US") as buyer:
        await buyer.goto(path)
        assert "An agent is reviewing your request" in await buyer.inner_text("#headline")
        await shot(buyer, "buyer-pending-en")
        buyer.on("dialog", lambda dialog: dialog.accept())
        await buyer.click("#cancel")
        await buyer.wait_for_selector("#done")
        await system.wait_status(refund_id, "cancelled")
        await buyer.reload()
        assert "You cancelled this refund" in await buyer.inner_text("#headline")
        assert await buyer.locator("#cancel").count() == 0


async def test_forged_and_expired_links_in_the_browser(browser: Any, system: System) -> None:
    refund_id = await pending(system, course_order(progress=20, minutes_ago=120))
    path = await link(system, refund_id)
    async with phone(browser, system) as buyer:
        forged = await buyer.goto(re.sub(r"t=\d+\.", "t=1.", path))
        assert forged is not None and forged.status == 403
        assert "此链接无效" in await buyer.inner_text("h1")
        await shot(buyer, "buyer-link-forged")
        expired = await buyer.goto(f"/r/{refund_id}?t=1.abc")
        assert expired is not None and expired.status == 403


async def test_buyer_takes_a_replacement_key_instead_of_the_money(
    browser: Any, system: System
) -> None:
    """A revealed key reported invalid waits for a person; the buyer asks for a fresh key on
    the page, the agent approves, and the page shows the replacement (no money moved)."""
    order = revealed_card_key()
    sku = order["items"][0]["sku"] = unique("sku")
    r = await system.http.put(
        f"{system.sandboxes.supplier}/sandbox/stock/{sku}", json={"available": 1}
    )
    r.raise_for_status()
    refund_id = await pending(system, order, reason="invalid_key")
    path = await link(system, refund_id)
    async with phone(browser, system) as buyer, reviewer(browser, system, "erin") as agent:
        await buyer.goto(path)
        assert "不想退款" in await buyer.inner_text("#replacement")
        await shot(buyer, "buyer-replacement-offered")
        await buyer.click("#choose-replacement")
        await buyer.wait_for_selector("#done")
        await buyer.wait_for_selector("#choose-refund")
        assert "已选择补发" in await buyer.inner_text("#replacement")

        await agent.goto(f"/console/cases/{refund_id}")
        await agent.click("#approve")
        body = await system.wait_status(refund_id, "replaced", "refunded")
        assert body["status"] == "replaced" and body["payouts"] == []
        await buyer.wait_for_selector("text=新卡密已补发", timeout=20_000)
        await buyer.reload()
        page = await buyer.inner_text("body")
        assert "请在订单页查看" in page and await buyer.locator("#replacement").count() == 0
        await shot(buyer, "buyer-replaced")


async def test_buyer_stops_sms_on_the_page_and_hears_by_email_only(
    browser: Any, system: System
) -> None:
    """The page shows where messages go (masked); the buyer stops SMS there, and the approval's
    news then comes by e-mail alone."""
    order = {**course_order(progress=20, minutes_ago=120), "buyer_contact": contacts("zh")}
    phone_no, address = order["buyer_contact"]["phone"], order["buyer_contact"]["email"]
    refund_id = await pending(system, order)
    path = await link(system, refund_id)
    async with phone(browser, system) as buyer:
        await buyer.goto(path)
        section = await buyer.inner_text("#notifications")
        assert phone_no not in section and f"{phone_no[:3]}****{phone_no[-4:]}" in section
        assert "接收中" in await buyer.inner_text("#notify-sms-state")
        await buyer.click("#notify-sms")
        await buyer.wait_for_selector("#done")
        assert "已关闭" in await buyer.inner_text("#notify-sms-state")
        assert "接收中" in await buyer.inner_text("#notify-email-state")
        await shot(buyer, "buyer-sms-stopped")

    r = await system.post(f"/v1/refunds/{refund_id}/approve", {"reviewer": "fay"}, role="reviewer")
    assert r.status_code == 202, r.text
    await system.wait_status(refund_id, "refunded")
    rows = await settled(system, refund_id, 5)
    # Opted out when the money arrived: no SMS was even queued, the e-mail went out.
    arrived = {r["channel"]: r["state"] for r in rows if r["stage"] == "money_arrived"}
    assert arrived == {"email": "delivered"}
    assert not [m for m in await sms_to(system, phone_no) if "已退回" in m["text"]]
    assert any("已退回" in m["subject"] + m["body"] for m in await mail_to(system, address))

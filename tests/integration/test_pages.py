"""The reviewer console and the buyer's page over plain HTTP (no browser): who may sign in,
CSRF, stale sessions, forged and expired buyer links, and that whatever a buyer typed is
shown as text. The browser tests (tests/browser) drive the same pages in Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.pages import links
from domain.model import utcnow
from tests.system import KEYS, System, card_key_order, course_order, unique

pytestmark = pytest.mark.integration

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


@contextlib.asynccontextmanager
async def sign_in(
    system: System, *, key: str = KEYS["reviewer"], name: str = "alice"
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.Response]]:
    async with httpx.AsyncClient(base_url=system.api_url, timeout=15) as client:
        form = await client.get("/console/login")
        answer = await client.post(
            "/console/login", data={"csrf": _csrf(form.text), "api_key": key, "name": name}
        )
        yield client, answer


async def pending_refund(system: System, **extra: Any) -> tuple[str, dict[str, Any]]:
    order = await system.record(course_order(progress=20, minutes_ago=120))
    refund_id = await system.refund_id(order, reason="changed_mind", **extra)
    await system.wait_status(refund_id, "pending_review")
    return refund_id, order


async def buyer_link(system: System, refund_id: str) -> str:
    r = await system.post(f"/v1/refunds/{refund_id}/buyer-link", {})
    assert r.status_code == 201, r.text
    url = str(r.json()["url"])
    assert url.startswith(system.api_url + f"/r/{refund_id}?t=")
    return url.removeprefix(system.api_url)


async def test_a_platform_key_cannot_sign_in_and_a_reviewer_key_can(system: System) -> None:
    async with sign_in(system, key=KEYS["platform"]) as (client, answer):
        assert answer.status_code == 401 and "平台密钥不可登录" in answer.text
        assert "kami_console" not in client.cookies
    async with sign_in(system, name=unique("rev")) as (client, answer):
        assert answer.status_code == 303 and answer.headers["location"] == "/console/queue"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        queue = await client.get("/console/queue")
        assert queue.status_code == 200 and "待审核退款" in queue.text


async def test_per_person_accounts_sign_in_with_their_password(system: System) -> None:
    username = unique("carol")
    r = await system.http.put(
        system.url(f"/v1/admin/console-accounts/{username}"),
        json={"display_name": "Carol", "role": "supervisor", "password": "correct horse 1"},
        headers={"Authorization": f"Bearer {KEYS['admin']}"},
    )
    assert r.status_code == 201, r.text
    listed = await system.get("/v1/admin/console-accounts", role="admin")
    assert username in [a["username"] for a in listed.json()["accounts"]]
    assert "password" not in listed.text and "argon2" not in listed.text
    async with httpx.AsyncClient(base_url=system.api_url, timeout=15) as client:
        form = await client.get("/console/login")
        wrong = await client.post(
            "/console/login",
            data={"csrf": _csrf(form.text), "username": username, "password": "nope"},
        )
        assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
        right = await client.post(
            "/console/login",
            data={"csrf": _csrf(wrong.text), "username": username, "password": "correct horse 1"},
        )
        assert right.status_code == 303
        supervisor = await client.get("/console/supervisor")
        assert supervisor.status_code == 200 and "今日 SLA" in supervisor.text


async def test_forms_without_their_csrf_token_are_refused(system: System) -> None:
    refund_id, _ = await pending_refund(system)
    async with sign_in(system, name=unique("rev")) as (client, _):
        page = await client.get(f"/console/cases/{refund_id}")
        assert page.status_code == 200
        replayed = await client.post(f"/console/cases/{refund_id}/claim", data={})
        assert replayed.status_code == 403 and "表单已失效" in replayed.text
        forged = await client.post(f"/console/cases/{refund_id}/claim", data={"csrf": "x" * 40})
        assert forged.status_code == 403
        # The refund did not move.
        assert (await system.body(refund_id))["review"].get("claimed_by") is None
        taken = await client.post(
            f"/console/cases/{refund_id}/claim", data={"csrf": _csrf(page.text)}
        )
        assert taken.status_code == 303
    # Signing in needs the sign-in form's own token too.
    async with httpx.AsyncClient(base_url=system.api_url) as bare:
        r = await bare.post("/console/login", data={"api_key": KEYS["reviewer"], "name": "x"})
        assert r.status_code == 403 and "<html" in r.text


async def test_a_stale_session_gets_the_sign_in_page(system: System) -> None:
    async with sign_in(system, name=unique("rev")) as (client, _):
        queue = await client.get("/console/queue")
        await client.post("/console/logout", data={"csrf": _csrf(queue.text)})
        again = await client.get("/console/queue")  # signed out: the cookie is gone
        assert again.status_code == 303 and again.headers["location"] == "/console/login"
        client.cookies.set("kami_console", "made-up", path="/console")
        stale = await client.get("/console/queue")
        assert stale.status_code == 303 and "expired=1" in stale.headers["location"]
        posted = await client.post("/console/next", data={"csrf": "whatever"})
        assert posted.status_code == 401 and "会话已过期" in posted.text
        assert "Traceback" not in posted.text


async def test_forged_and_expired_buyer_links_get_a_clear_page(system: System) -> None:
    refund_id, _ = await pending_refund(system)
    path = await buyer_link(system, refund_id)
    ok = await system.http.get(system.url(path))
    assert ok.status_code == 200 and "客服正在审核您的申请" in ok.text
    assert ok.headers["referrer-policy"] == "no-referrer"

    forged = await system.http.get(system.url(f"/r/{refund_id}?t=9999999999.AAAA"))
    assert forged.status_code == 403 and "此链接无效" in forged.text
    other = await system.http.get(system.url(path.replace(refund_id, unique("rf"))))
    assert other.status_code == 403
    expired_token = links.sign(
        system.settings.buyer_link_secret, refund_id, utcnow() - timedelta(minutes=1)
    )
    expired = await system.http.get(system.url(f"/r/{refund_id}?t={expired_token}"))
    assert expired.status_code == 410 and "此链接已过期" in expired.text
    english = await system.http.get(
        system.url(f"/r/{refund_id}?t={expired_token}"), headers={"Accept-Language": "en-US"}
    )
    assert "This link has expired" in english.text
    for page in (forged, expired):
        assert "Traceback" not in page.text and page.headers["content-type"].startswith("text/html")
    # Minting is the platform's: a reviewer key may not.
    r = await system.post(f"/v1/refunds/{refund_id}/buyer-link", {}, role="reviewer")
    assert r.status_code == 403


async def test_html_from_a_buyer_is_shown_as_text(system: System) -> None:
    refund_id, _ = await pending_refund(
        system,
        reason_text=XSS[:200],
        evidence=[
            {"kind": "text", "text": XSS},
            {"kind": "link", "url": "https://e.example/?q=<b>"},
        ],
    )
    path = await buyer_link(system, refund_id)
    buyer = await system.http.get(system.url(path))
    async with sign_in(system, name=unique("rev")) as (client, _):
        case = await client.get(f"/console/cases/{refund_id}")
    for html in (buyer.text, case.text):
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(" in html
    assert "script-src 'self'" in buyer.headers["content-security-policy"]


async def test_buyer_page_shows_nothing_internal(system: System) -> None:
    refund_id, order = await pending_refund(system)
    async with sign_in(system, name="reviewer-zed") as (client, _):
        case = await client.get(f"/console/cases/{refund_id}")
        await client.post(
            f"/console/cases/{refund_id}/approve",
            data={"csrf": _csrf(case.text), "note": "INTERNAL-NOTE-42", "amount": ""},
        )
    await system.wait_status(refund_id, "refunded")
    buyer = await system.http.get(system.url(await buyer_link(system, refund_id)))
    assert "退款已到账" in buyer.text
    body = await system.body(refund_id)
    for secret in ("INTERNAL-NOTE-42", "reviewer-zed", body["decision"]["rule"], "risk"):
        assert secret not in buyer.text, secret
    assert order["buyer_id"] not in buyer.text or True  # the buyer's own id is theirs


async def test_asking_for_evidence_reaches_the_buyers_inbox_and_keys_are_rechecked(
    system: System,
) -> None:
    order = card_key_order()
    order["items"][0]["usage"]["key_revealed"] = True  # a person decides
    await system.record(order)
    refund_id = await system.refund_id(order, reason="invalid_key")
    await system.wait_status(refund_id, "pending_review")
    key = order["items"][0]["card_keys"][0]["card_key_id"]
    await system.set_key(key, "redeemed")
    async with sign_in(system, name=unique("rev")) as (client, _):
        case = await client.get(f"/console/cases/{refund_id}")
        csrf = _csrf(case.text)
        asked = await client.post(
            f"/console/cases/{refund_id}/ask", data={"csrf": csrf, "text": "请上传报错截图"}
        )
        assert asked.status_code == 303
        rechecked = await client.post(f"/console/cases/{refund_id}/recheck", data={"csrf": csrf})
        assert rechecked.status_code == 303
        for _ in range(100):
            page = await client.get(f"/console/cases/{refund_id}")
            if "card_key_rechecked" in page.text:
                break
            await asyncio.sleep(0.1)
        assert f'{key}</code> <span class="key key-redeemed">' in page.text
    inbox = await system.get(f"/v1/notifications?recipient=buyer:{order['buyer_id']}")
    messages = [n["body"].get("message") for n in inbox.json()["notifications"]]
    assert "请上传报错截图" in messages
    body = await system.body(refund_id)
    assert body["review"]["awaiting_evidence"] is True


def test_production_refuses_the_dev_buyer_link_secret() -> None:
    from config.settings import Settings

    production: dict[str, Any] = {
        "environment": "production",
        "supplier_secret": "s",
        "platform_webhook_secret": "w",
        "api_keys": "k:admin",
        "wechat_public_key_id": "PUB_KEY_ID_0000000000000000000000000000000000000001",
    }
    with pytest.raises(ValueError, match="BUYER_LINK_SECRET"):
        Settings(**production)
    with pytest.raises(ValueError, match="BUYER_LINK_SECRET"):
        Settings(**production, buyer_link_secret="short")
    # (Production also wants payload keys of its own: config/payload_encryption.py.)
    keys = "k1=" + "a" * 43 + "="
    assert Settings(
        **production, buyer_link_secret="x" * 32, payload_encryption_keys=keys
    ).buyer_link_secret

"""Buyers hear by SMS and e-mail, end to end: orders carry contacts, the outbox dispatcher
sends each buyer-facing stage once through the Aliyun SMS sandbox (which checks the
signature) and the SMTP sink, in the buyer's language; opt-outs, a provider's rate limit and a
refusing mail server end in defined states; contacts stay masked in answers and out of
Temporal history."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from config.temporal import data_converter
from domain.buyer_messages import TEMPLATES, BuyerStage, Facts, email, sms_text, variables
from domain.contacts import Language
from domain.refund import workflow_id_for
from tests.system import System, card_key_order, course_order

pytestmark = pytest.mark.integration


def contacts(language: str = "zh", *, sms: bool = True, mail: bool = True) -> dict[str, Any]:
    tag = secrets.randbelow(10**8)
    contact: dict[str, Any] = {"language": language}
    if sms:
        contact["phone"] = f"139{tag:08d}"
    if mail:
        contact["email"] = f"buyer{tag}@example.com"
    return contact


async def sms_to(system: System, phone: str) -> list[dict[str, Any]]:
    r = await system.http.get(f"{system.sandboxes.sms}sandbox/messages", params={"phone": phone})
    r.raise_for_status()
    return list(r.json()["messages"])


async def mail_to(system: System, address: str) -> list[dict[str, Any]]:
    r = await system.http.get(f"{system.sandboxes.mail}/sandbox/messages", params={"to": address})
    r.raise_for_status()
    return list(r.json()["messages"])


async def buyer_messages(
    system: System, refund_id: str, state: str = "all"
) -> list[dict[str, Any]]:
    r = await system.http.get(
        system.url("/v1/notifications/buyer-messages"),
        params={"refund_id": refund_id, "state": state},
        headers={"Authorization": "Bearer ak-test"},
    )
    assert r.status_code == 200, r.text
    return list(r.json()["messages"])


async def settled(
    system: System, refund_id: str, count: int, within: float = 30
) -> list[dict[str, Any]]:
    """Wait until the refund's `count` buyer messages are all delivered or given up on."""
    deadline = asyncio.get_running_loop().time() + within
    rows: list[dict[str, Any]] = []
    while asyncio.get_running_loop().time() < deadline:
        rows = await buyer_messages(system, refund_id)
        if len(rows) >= count and all(r["state"] != "pending" for r in rows):
            return rows
        await asyncio.sleep(0.2)
    raise AssertionError(f"buyer messages of {refund_id} did not settle: {rows}")


async def link_token(system: System, refund_id: str) -> str:
    r = await system.post(f"/v1/refunds/{refund_id}/buyer-link", None)
    assert r.status_code == 201, r.text
    return parse_qs(urlsplit(r.json()["url"]).query)["t"][0]


CODE_STAGE = {w.sms.code: stage for (stage, _), w in TEMPLATES.items()}


def facts_of(order: dict[str, Any], refund: dict[str, Any], deadline: str | None) -> Facts:
    return Facts.from_json(
        {
            "refund_id": refund["refund_id"],
            "order_id": order["order_id"],
            "amount": refund["amount"],
            "currency": refund["currency"],
            "destination": refund["destination"],
            "deadline": deadline,
        }
    )


def link_in(text: str) -> str:
    found = re.search(r"https?://[^\s。]+/r/[^\s。]+", text)
    return found.group(0) if found else ""


async def check_words(
    system: System,
    order: dict[str, Any],
    refund: dict[str, Any],
    stages: list[BuyerStage],
    *,
    deadline: str | None = None,
) -> None:
    """Exactly one SMS and one e-mail per stage, in order, each the templates' words in the
    buyer's language (with the link the message carried)."""
    contact = order["buyer_contact"]
    language = Language(contact["language"])
    facts = facts_of(order, refund, deadline)
    texts = await sms_to(system, contact["phone"])
    assert [CODE_STAGE[m["template_code"]] for m in texts] == stages
    mails = await mail_to(system, contact["email"])
    assert len(mails) == len(stages)
    for stage, sms, mail in zip(stages, texts, mails, strict=True):
        assert TEMPLATES[(stage, language)].sms.code == sms["template_code"]
        params = variables(facts, language, sms["params"].get("link", ""))
        assert sms["text"] == "【卡密退款】" + sms_text(sms["template_code"], params)
        words = email(stage, language, variables(facts, language, link_in(mail["body"])))
        assert (mail["subject"], mail["body"]) == (words.subject, words.body)


async def test_a_buyer_hears_each_stage_once_by_sms_and_email_in_chinese(system: System) -> None:
    order = {**card_key_order(), "buyer_contact": contacts("zh")}
    await system.record(order)
    refund_id = await system.refund_id(order)
    refund = await system.wait_status(refund_id, "refunded")
    rows = await settled(system, refund_id, 4)
    assert {(r["channel"], r["stage"], r["state"]) for r in rows} == {
        (channel, stage, "delivered")
        for channel in ("sms", "email")
        for stage in ("submitted", "money_arrived")
    }
    await check_words(system, order, refund, [BuyerStage.SUBMITTED, BuyerStage.MONEY_ARRIVED])
    [arrived] = [
        m for m in await sms_to(system, order["buyer_contact"]["phone"]) if "已退回" in m["text"]
    ]
    assert (
        arrived["text"]
        == f"【卡密退款】您的退款50.00元已退回原支付账户（单号{refund_id}），请查收。"
    )


async def test_a_rejected_buyer_hears_in_english_with_the_link_to_appeal(system: System) -> None:
    order = {**course_order(progress=40), "buyer_contact": contacts("en")}
    await system.record(order)
    refund_id = await system.refund_id(order, reason="changed_mind")
    waiting = await system.wait_status(refund_id, "pending_review")
    r = await system.post(
        f"/v1/refunds/{refund_id}/reject",
        {"reviewer": "alice", "reason": "course used"},
        role="reviewer",
    )
    assert r.status_code == 202, r.text
    refund = await system.wait_status(refund_id, "rejected")
    await settled(system, refund_id, 6)
    stages = [BuyerStage.SUBMITTED, BuyerStage.NEEDS_REVIEW, BuyerStage.REJECTED]
    await check_words(system, order, refund, stages, deadline=waiting["review"]["deadline"])
    [rejected] = [
        m
        for m in await sms_to(system, order["buyer_contact"]["phone"])
        if m["template_code"] == "SMS_KAMI_REJECTED_EN"
    ]
    assert "You may appeal once: " in rejected["text"]
    page = await system.http.get(rejected["params"]["link"])
    assert page.status_code == 200 and refund_id in page.text


async def test_an_approved_refund_waiting_for_its_gateway_tells_the_buyer_it_is_on_its_way(
    system: System,
) -> None:
    """The `approved` stage: a reviewer approves, the gateway answers "processing", so the
    refund rests in `refunding` — the buyer hears the money is on its way, then that it
    arrived."""
    order = {**course_order(progress=40, channel="wechat"), "buyer_contact": contacts("en")}
    await system.record(order)
    refund_id = await system.refund_id(order, reason="changed_mind")
    waiting = await system.wait_status(refund_id, "pending_review")
    gateway = system.sandboxes.wechat
    armed = await system.http.post(
        f"{gateway}/sandbox/faults", json={"mode": "processing", "count": 1}
    )
    assert armed.status_code == 200, armed.text
    r = await system.post(
        f"/v1/refunds/{refund_id}/approve", {"reviewer": "alice"}, role="reviewer"
    )
    assert r.status_code == 202, r.text
    refund = await system.wait_status(refund_id, "refunded", within=60)
    rows = await settled(system, refund_id, 8)
    assert {r["stage"] for r in rows if r["channel"] == "sms"} >= {"approved", "money_arrived"}
    stages = [
        BuyerStage.SUBMITTED,
        BuyerStage.NEEDS_REVIEW,
        BuyerStage.APPROVED,
        BuyerStage.MONEY_ARRIVED,
    ]
    await check_words(system, order, refund, stages, deadline=waiting["review"]["deadline"])


async def test_a_buyer_who_opts_out_of_sms_gets_email_only(system: System) -> None:
    first = {**card_key_order(), "buyer_contact": contacts("zh")}
    await system.record(first)
    first_id = await system.refund_id(first)
    await system.wait_status(first_id, "refunded")
    await settled(system, first_id, 4)
    token = await link_token(system, first_id)
    url = system.url(f"/r/{first_id}/notifications")
    assert (
        await system.http.put(url, params={"t": "1.forged"}, json={"sms": False})
    ).status_code == 403
    chosen = await system.http.put(url, params={"t": token}, json={"sms": False})
    assert chosen.status_code == 200, chosen.text
    phone, address = first["buyer_contact"]["phone"], first["buyer_contact"]["email"]
    assert chosen.json()["sms"] == {
        "address": phone[:3] + "****" + phone[-4:],
        "receiving": False,
        "opted_out": True,
    }
    assert chosen.json()["email"]["receiving"] is True and address not in chosen.text

    # Another order of the same buyer: the opt-out is the buyer's, on every order.
    second = {**card_key_order(buyer=first["buyer_id"]), "buyer_contact": first["buyer_contact"]}
    await system.record(second)
    second_id = await system.refund_id(second)
    await system.wait_status(second_id, "refunded")
    rows = await settled(system, second_id, 2)
    assert {r["channel"] for r in rows} == {"email"}
    assert [m["params"]["refund"] for m in await sms_to(system, phone)] == [first_id, first_id]
    assert len(await mail_to(system, address)) == 4


async def test_sms_rate_limited_then_failing_is_delivered_once_and_the_failures_show(
    system: System,
) -> None:
    from telemetry.metrics import BUYER_MESSAGES

    retries = BUYER_MESSAGES.labels("sms", "retry")
    before = retries._value.get()
    for mode in ("rate_limit", "error_5xx"):
        r = await system.http.post(
            f"{system.sandboxes.sms}sandbox/faults", json={"mode": mode, "count": 1}
        )
        r.raise_for_status()
    order = {**card_key_order(), "buyer_contact": contacts("zh", mail=False)}
    await system.record(order)
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "refunded")
    rows = await settled(system, refund_id, 2)
    assert {(r["stage"], r["state"]) for r in rows} == {
        ("submitted", "delivered"),
        ("money_arrived", "delivered"),
    }
    assert sum(r["attempts"] for r in rows) == 4  # two refused tries, two that went through
    texts = await sms_to(system, order["buyer_contact"]["phone"])
    assert sorted(CODE_STAGE[m["template_code"]] for m in texts) == sorted(
        [BuyerStage.SUBMITTED, BuyerStage.MONEY_ARRIVED]
    )
    assert retries._value.get() - before == 2


async def test_a_mail_server_that_keeps_refusing_ends_failed_and_listed(system: System) -> None:
    from telemetry.metrics import BUYER_MESSAGES

    failed = BUYER_MESSAGES.labels("email", "failed")
    before = failed._value.get()
    r = await system.http.post(
        f"{system.sandboxes.mail}/sandbox/faults", json={"mode": "refuse", "count": 3}
    )
    r.raise_for_status()
    # An unpaid order: the refund only cancels it, so the one message is "submitted".
    order = {
        **card_key_order(),
        "status": "unpaid",
        "paid_at": None,
        "payments": [],
        "buyer_contact": contacts("en", sms=False),
    }
    await system.record(order)
    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "cancelled")
    [row] = await settled(system, refund_id, 1)
    assert (row["channel"], row["stage"], row["state"], row["attempts"]) == (
        "email",
        "submitted",
        "failed",
        3,
    )
    address = order["buyer_contact"]["email"]
    assert "451" in row["last_error"] and address not in row["last_error"]
    assert address[:1] + "***@example.com" in row["last_error"]
    assert [m["id"] for m in await buyer_messages(system, refund_id, "failed")] == [row["id"]]
    assert await mail_to(system, address) == []
    assert failed._value.get() - before == 1


def payloads(message: Any) -> list[Payload]:
    """Every Payload anywhere in a history event (repeated and map fields included)."""
    found: list[Payload] = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif hasattr(value, "ListFields"):
            items = [value]
        else:
            items = list(value)  # a repeated field
        for item in items:
            if isinstance(item, Payload):
                found.append(item)
            elif hasattr(item, "ListFields"):
                found.extend(payloads(item))
    return found


async def test_contacts_are_masked_in_answers_and_absent_from_history(system: System) -> None:
    contact = contacts("zh")
    order = {**card_key_order(), "buyer_contact": contact}
    recorded = await system.post("/v1/orders", order)
    assert recorded.status_code == 201, recorded.text
    phone, address = contact["phone"], contact["email"]
    masked = {
        "phone": phone[:3] + "****" + phone[-4:],
        "email": address[:1] + "***@example.com",
        "language": "zh",
    }
    assert recorded.json()["buyer_contact"] == masked
    assert (await system.post("/v1/orders", order)).json()[
        "buyer_contact"
    ] == masked  # a repeat: 200
    shown = await system.get(f"/v1/orders/{order['order_id']}")
    assert shown.json()["buyer_contact"] == masked
    changed = {**order, "buyer_contact": {**contact, "language": "en"}}
    assert (await system.post("/v1/orders", changed)).status_code == 409

    refund_id = await system.refund_id(order)
    await system.wait_status(refund_id, "refunded")
    await settled(system, refund_id, 4)
    answers = [
        shown.text,
        (await system.get(f"/v1/refunds/{refund_id}")).text,
        json.dumps(await buyer_messages(system, refund_id)),
    ]
    for text in answers:
        assert phone not in text and address not in text

    raw = await Client.connect(system.settings.temporal_address)
    history = await raw.get_workflow_handle(workflow_id_for(refund_id)).fetch_history()
    codec = data_converter(system.settings).payload_codec
    assert codec is not None
    opened = await codec.decode([p for event in history.events for p in payloads(event)])
    plain = json.dumps(history.to_json_dict(), ensure_ascii=False)
    plain += "".join(p.data.decode("utf-8", "replace") for p in opened)
    # The decoded payloads are really there to search: the order the workflow read is one.
    assert any(order["order_id"] in p.data.decode("utf-8", "replace") for p in opened)
    for secret in (phone, address, phone[-8:]):
        assert secret not in plain

"""The demo review queue for the reviewer console (`refundctl seed`, hence `refundctl dev`):
a handful of refunds waiting for a person — a course watched too far, revealed card keys, a
680 CNY course that needs four eyes, a buyer whose reason holds HTML — three console
accounts, and a buyer's link to one refund's progress page.

Everything goes through the API like a platform and an admin would; the accounts' passwords
are random and kept in `var/demo-console.json` (0600) for the launcher's banner."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

DEMO_FILE = Path("var") / "demo-console.json"
ACCOUNTS = {
    "alice": ("Alice 李", "reviewer"),
    "bob": ("Bob 王", "reviewer"),
    "sam": ("Sam 张", "supervisor"),
}


def _order(
    prefix: str,
    n: str,
    buyer: str,
    *,
    title: str,
    kind: str,
    price: int,
    minutes_ago: float,
    **usage: Any,
) -> dict[str, Any]:
    at = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()
    keys = (
        [{"card_key_id": f"{prefix}{n}-K1", "supplier": "sup-a", "delivered_at": at}]
        if kind == "card_key"
        else []
    )
    return {
        "order_id": f"{prefix}{n}",
        "merchant_id": "M-demo",
        "buyer_id": buyer,
        "status": "paid",
        "currency": "CNY",
        "amount": price,
        "created_at": at,
        "paid_at": at,
        "payments": [
            {
                "payment_id": f"{prefix}{n}-P1",
                "channel": "wechat" if kind == "course" else "alipay",
                "transaction_id": f"{prefix}{n}-T1",
                "amount": price,
                "paid_at": at,
            }
        ],
        "items": [
            {
                "item_id": "I-1",
                "sku": f"sku-{kind}",
                "title": title,
                "product_type": kind,
                "quantity": 1,
                "unit_price": price,
                "card_keys": keys,
                "usage": {"key_revealed": False, "progress_pct": 0, "downloaded": False, **usage},
            }
        ],
        "client": {"ip": f"198.51.100.{len(buyer)}", "device_id": f"dev-{buyer}"},
        "commissions": [{"beneficiary_id": "U-7", "level": 1, "amount": price // 10}],
    }


def demo_cases(prefix: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(order, refund request) pairs that all go to a person under the default policy."""
    cases = [
        (
            _order(
                prefix,
                "C-2001",
                "U-51",
                title="Python 入门课",
                kind="course",
                price=19900,
                minutes_ago=180,
                progress_pct=35,
            ),
            "changed_mind",
            "课程内容和介绍不一样",
        ),
        (
            _order(
                prefix,
                "C-2002",
                "U-52",
                title="Steam 钱包 100",
                kind="card_key",
                price=10000,
                minutes_ago=40,
                key_revealed=True,
            ),
            "invalid_key",
            "卡密提示已被使用",
        ),
        (
            _order(
                prefix,
                "C-2003",
                "U-53",
                title="年度数据分析课",
                kind="course",
                price=68000,
                minutes_ago=300,
                progress_pct=12,
            ),
            "not_as_described",
            "和宣传的不符，要求全额退款",
        ),
        (
            _order(
                prefix,
                "C-2004",
                "U-54",
                title="腾讯视频月卡",
                kind="card_key",
                price=2500,
                minutes_ago=25,
                key_revealed=True,
            ),
            "other",
            "<b>急!</b><script>alert('hi')</script> 充错账号了",
        ),
        (
            _order(
                prefix,
                "C-2005",
                "U-55",
                title="Office 激活码",
                kind="card_key",
                price=29900,
                minutes_ago=90,
                key_revealed=True,
            ),
            "wrong_purchase",
            "买错版本了",
        ),
    ]
    return [
        (
            order,
            {
                "order_id": order["order_id"],
                "buyer_id": order["buyer_id"],
                "reason": reason,
                "reason_text": text,
            },
        )
        for order, reason, text in cases
    ]


def make(api: str, *, platform_key: str, admin_key: str | None, prefix: str) -> dict[str, Any]:
    """Record the demo queue; returns what the banner shows (console URL, accounts, a buyer
    link) and keeps it in var/demo-console.json."""
    platform = {"Authorization": f"Bearer {platform_key}"}
    refund_ids = []
    with httpx.Client(base_url=api, timeout=15) as http:
        for order, request in demo_cases(prefix):
            http.post("/v1/orders", json=order, headers=platform).raise_for_status()
            r = http.post(
                "/v1/refunds",
                json=request,
                headers={**platform, "Idempotency-Key": f"{prefix}{order['order_id']}"},
            )
            r.raise_for_status()
            refund_ids.append(r.json()["refund_id"])
        for refund_id in refund_ids:  # the rules decide in well under a second each
            for _ in range(100):
                if http.get(f"/v1/refunds/{refund_id}", headers=platform).json()["status"] not in (
                    "submitted",
                    "checking",
                ):
                    break
                time.sleep(0.1)
        link = http.post(f"/v1/refunds/{refund_ids[0]}/buyer-link", json={}, headers=platform)
        link.raise_for_status()
        accounts = _accounts(http, admin_key)
    demo = {"console": f"{api}/console", "buyer_page": link.json()["url"], "accounts": accounts}
    DEMO_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEMO_FILE.write_text(json.dumps(demo, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    DEMO_FILE.chmod(0o600)
    return demo


def _accounts(http: httpx.Client, admin_key: str | None) -> dict[str, str]:
    """The demo accounts, with passwords kept from an earlier run (var/demo-console.json)."""
    if not admin_key:
        return {}
    try:
        known = dict(json.loads(DEMO_FILE.read_text(encoding="utf-8")).get("accounts", {}))
    except (OSError, ValueError):
        known = {}
    accounts = {}
    for username, (name, role) in ACCOUNTS.items():
        password = known.get(username) or f"demo-{secrets.token_urlsafe(9)}"
        http.put(
            f"/v1/admin/console-accounts/{username}",
            json={"display_name": name, "role": role, "password": password},
            headers={"Authorization": f"Bearer {admin_key}"},
        ).raise_for_status()
        accounts[username] = password
    return accounts

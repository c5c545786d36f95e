"""`refundctl seed`: records a small demo shop through the API, so a person can click
through an automatic refund and a reviewed one in the API docs page right away."""

from __future__ import annotations

import argparse
import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from config.settings import get_settings
from domain.types import Role
from sandbox import console_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=os.environ.get("API_BASE", "http://127.0.0.1:8000"))
    parser.add_argument(
        "--prefix", default="", help="order id prefix (default: random, so reruns add orders)"
    )


def platform_key() -> str:
    explicit = os.environ.get("PLATFORM_API_KEY")
    if explicit:
        return explicit
    for key, role in get_settings().roles_by_key().items():
        if role is Role.PLATFORM:
            return key
    raise SystemExit("no platform key: set PLATFORM_API_KEY or API_KEYS")


def demo_orders(prefix: str, now: datetime) -> list[dict[str, Any]]:
    def at(minutes_ago: float) -> str:
        return (now - timedelta(minutes=minutes_ago)).isoformat()

    def order(
        n: str,
        buyer: str,
        minutes_ago: float,
        channel: str,
        items: list[dict[str, Any]],
        commissions: list[dict[str, Any]] | None = None,
        extra_payment: bool = False,
    ) -> dict[str, Any]:
        amount = sum(i["quantity"] * i["unit_price"] for i in items)
        payments = [
            {
                "payment_id": f"{prefix}{n}-P1",
                "channel": channel,
                "transaction_id": f"{prefix}{n}-T1",
                "amount": amount,
                "paid_at": at(minutes_ago),
            }
        ]
        if extra_payment:
            payments.append(
                {
                    "payment_id": f"{prefix}{n}-P2",
                    "channel": channel,
                    "transaction_id": f"{prefix}{n}-T2",
                    "amount": amount,
                    "paid_at": at(minutes_ago - 0.1),
                }
            )
        return {
            "order_id": f"{prefix}{n}",
            "merchant_id": "M-demo",
            "buyer_id": buyer,
            "status": "paid",
            "currency": "CNY",
            "amount": amount,
            "created_at": at(minutes_ago),
            "paid_at": at(minutes_ago),
            "payments": payments,
            "items": items,
            "client": {"ip": "203.0.113.9", "device_id": f"dev-{buyer}"},
            "commissions": commissions or [],
        }

    def card_item(item: str, key: str, price: int, qty: int = 1) -> dict[str, Any]:
        return {
            "item_id": item,
            "sku": "steam-50",
            "title": "Steam wallet 50",
            "product_type": "card_key",
            "quantity": qty,
            "unit_price": price,
            "card_keys": [
                {"card_key_id": f"{prefix}{key}-{i}", "supplier": "sup-a", "delivered_at": at(29)}
                for i in range(qty)
            ],
            "usage": {"key_revealed": False, "progress_pct": 0, "downloaded": False},
        }

    return [
        # Unredeemed card key bought half an hour ago: refunded automatically to Alipay.
        order(
            "O-1001",
            "U-42",
            30,
            "alipay",
            [card_item("I-1", "K-1001", 5000)],
            commissions=[{"beneficiary_id": "U-7", "level": 1, "amount": 500}],
        ),
        # A course two hours in with 20 % watched: a reviewer decides.
        order(
            "O-1002",
            "U-43",
            120,
            "wechat",
            [
                {
                    "item_id": "I-1",
                    "sku": "course-python",
                    "title": "Python course",
                    "product_type": "course",
                    "quantity": 1,
                    "unit_price": 19900,
                    "card_keys": [],
                    "usage": {"key_revealed": False, "progress_pct": 20, "downloaded": False},
                }
            ],
            commissions=[
                {"beneficiary_id": "U-7", "level": 1, "amount": 1990},
                {"beneficiary_id": "U-3", "level": 2, "amount": 995},
            ],
        ),
        # Charged twice by a system error: the duplicate comes back automatically.
        order(
            "O-1003", "U-44", 10, "wechat", [card_item("I-1", "K-1003", 3000)], extra_payment=True
        ),
        # Small membership paid from balance: fast lane to balance.
        order(
            "O-1004",
            "U-45",
            60,
            "balance",
            [
                {
                    "item_id": "I-1",
                    "sku": "vip-month",
                    "title": "VIP month",
                    "product_type": "membership",
                    "quantity": 1,
                    "unit_price": 800,
                    "card_keys": [],
                    "usage": {"key_revealed": False, "progress_pct": 0, "downloaded": False},
                }
            ],
        ),
    ]


def run(args: argparse.Namespace) -> int:
    prefix = args.prefix or f"demo-{secrets.token_hex(2)}-"
    headers = {"Authorization": f"Bearer {platform_key()}"}
    settings = get_settings()
    gateways = {"alipay": settings.alipay_url.rsplit("/", 1)[0], "wechat": settings.wechat_url}
    with httpx.Client(base_url=args.api, headers=headers, timeout=10) as http:
        for order in demo_orders(prefix, datetime.now(UTC)):
            r = http.post("/v1/orders", json=order)
            r.raise_for_status()
            for p in order["payments"]:
                base = gateways.get(p["channel"])
                if base:  # tell the sandbox gateway about the payment so it can enforce totals
                    httpx.put(
                        f"{base}/sandbox/payments/{p['transaction_id']}",
                        json={"amount": p["amount"], "channel": p["channel"]},
                        timeout=5,
                    )
            print(
                f"  order {order['order_id']}: buyer {order['buyer_id']}, "
                f"{order['items'][0]['title']}, ¥{order['amount'] / 100:.2f} "
                f"via {order['payments'][0]['channel']}"
            )
    # The reviewer console's demo queue, accounts and a buyer's link (sandbox/console_demo.py).
    admin = next((k for k, r in settings.roles_by_key().items() if r is Role.ADMIN), None)
    demo = console_demo.make(args.api, platform_key=platform_key(), admin_key=admin, prefix=prefix)
    print(f"  console {demo['console']}  demo buyer page {demo['buyer_page']}")
    print(
        f'\nTry: POST /v1/refunds with {{"order_id": "{prefix}O-1001", "buyer_id": "U-42", '
        f'"reason": "invalid_key"}} (automatic)\n'
        f'     and {{"order_id": "{prefix}O-1002", "buyer_id": "U-43", "reason": "changed_mind"}} '
        f"(goes to review)"
    )
    return 0

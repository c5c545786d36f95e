"""Builds the activities from settings: the one place that knows which client goes where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from activities.commissions import Commissions
from activities.payouts import Payouts
from activities.records import RefundRecords
from activities.risk import RiskChecks
from activities.supplier import CardKeyChecks
from config.settings import Settings
from domain.policy import CurrentPolicy
from peers import signing
from peers.alipay import AlipayClient
from peers.supplier import SupplierClient
from peers.wechatpay import WechatPayClient
from store.db import SessionFactory


@dataclass
class RefundActivities:
    records: RefundRecords
    risk: RiskChecks
    keys: CardKeyChecks
    payouts: Payouts
    commissions: Commissions

    def activities(self) -> list[Any]:
        return [
            self.records.load_case,
            self.records.record_progress,
            self.risk.assess_risk,
            self.keys.query_key_redemption,
            self.keys.lock_card_keys,
            self.payouts.send_payout,
            self.payouts.query_payout,
            self.commissions.move_commissions,
        ]


def build_activities(
    settings: Settings,
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    *,
    reads: SessionFactory | None = None,
) -> RefundActivities:
    policy = CurrentPolicy(settings.policy_path or None)
    return RefundActivities(
        records=RefundRecords(
            sessions, policy=policy.get, webhook_url=settings.platform_webhook_url, reads=reads
        ),
        risk=RiskChecks(reads or sessions, policy=policy.get),
        keys=CardKeyChecks(
            SupplierClient(
                http,
                url_for=settings.supplier_url_for,
                api_key=settings.supplier_api_key,
                secret=settings.supplier_secret,
            )
        ),
        payouts=Payouts(
            sessions,
            alipay=AlipayClient(
                http,
                url=settings.alipay_url,
                app_id=settings.alipay_app_id,
                app_private_key=signing.load_private_key(settings.alipay_private_key_path),
                alipay_public_key=signing.load_public_key(settings.alipay_public_key_path),
            ),
            wechat=WechatPayClient(
                http,
                base_url=settings.wechat_url,
                mchid=settings.wechat_mchid,
                serial_no=settings.wechat_serial_no,
                merchant_private_key=signing.load_private_key(settings.wechat_private_key_path),
                platform_public_key=signing.load_public_key(
                    settings.wechat_platform_public_key_path
                ),
                apiv3_key=settings.wechat_apiv3_key,
            ),
            notify_url=settings.public_base_url.rstrip("/") + "/v1/gateways/wechat/notify",
            reads=reads,
        ),
        commissions=Commissions(sessions),
    )

"""Builds the activities and the buyer messenger from settings: the one place that knows
which client goes where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client

from activities.commissions import Commissions
from activities.incidents import IncidentSteps
from activities.payouts import Payouts
from activities.records import RefundRecords
from activities.replacement import Replacements
from activities.risk import RiskChecks
from activities.supplier import CardKeyChecks
from config.settings import Settings
from domain.policy import CurrentPolicy
from peers.from_settings import (
    mailer,
    payout_gateways,
    sms_client,
    sms_template_codes,
    supplier_client,
)
from store.db import SessionFactory
from workers.buyer_messages import BuyerMessenger


@dataclass
class RefundActivities:
    records: RefundRecords
    risk: RiskChecks
    keys: CardKeyChecks
    payouts: Payouts
    commissions: Commissions
    incidents: IncidentSteps
    replacements: Replacements

    def activities(self) -> list[Any]:
        return [
            self.records.load_case,
            self.records.record_progress,
            self.records.open_case,
            self.records.record_with_commissions,
            self.risk.assess_risk,
            self.keys.query_key_redemption,
            self.keys.lock_card_keys,
            self.payouts.send_payout,
            self.payouts.query_payout,
            self.payouts.rescue_abnormal_payout,
            self.payouts.abandon_payout,
            self.commissions.move_commissions,
            self.incidents.plan_incident,
            self.incidents.start_incident_refunds,
            self.incidents.incident_outcomes,
            self.incidents.incident_report,
            self.incidents.record_incident,
            self.replacements.reserve_replacement_key,
            self.replacements.find_replacement_key,
            self.replacements.confirm_replacement_key,
        ]


def build_activities(
    settings: Settings,
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    *,
    reads: SessionFactory | None = None,
    temporal: Client | None = None,
) -> RefundActivities:
    """`temporal`: the client incidents start their refunds with (the worker's own)."""
    policy = CurrentPolicy(settings.policy_path or None)
    supplier = supplier_client(settings, http)
    return RefundActivities(
        records=RefundRecords(
            sessions, policy=policy.get, webhook_url=settings.platform_webhook_url, reads=reads
        ),
        risk=RiskChecks(reads or sessions, policy=policy.get),
        keys=CardKeyChecks(supplier),
        payouts=Payouts(sessions, gateways=payout_gateways(settings, http), reads=reads),
        commissions=Commissions(sessions),
        incidents=IncidentSteps(
            sessions,
            policy=policy.get,
            supplier=supplier,
            temporal=temporal,
            task_queue=settings.task_queue,
            reads=reads,
        ),
        replacements=Replacements(supplier),
    )


def buyer_messenger(
    settings: Settings, reads: SessionFactory, http: httpx.AsyncClient
) -> BuyerMessenger | None:
    """The outbox's SMS and e-mail sender; None when both channels are off."""
    sms, mail = sms_client(settings, http), mailer(settings)
    if sms is None and mail is None:
        return None
    return BuyerMessenger(
        reads,
        sms=sms,
        mailer=mail,
        sms_codes=sms_template_codes(settings),
        link_secret=settings.buyer_link_secret,
        base_url=settings.public_base_url,
        link_ttl=timedelta(hours=settings.buyer_link_ttl_hours),
        max_attempts=settings.buyer_message_max_attempts,
    )

"""Sends one buyer message from the outbox: looks up the order's contact and the buyer's
opt-outs now (the row holds neither), renders the stage's words in the buyer's language with a
fresh link to their progress page, and hands it to the SMS provider or the mail server."""

from __future__ import annotations

from datetime import timedelta
from string import Template
from typing import Any

from domain.buyer_links import mint
from domain.buyer_messages import TEMPLATES, BuyerStage, Facts, email, variables
from domain.contacts import Channel, Language
from peers.aliyun_sms import AliyunSmsClient
from peers.delivery import DeliveryFailed
from peers.mail import SmtpMailer
from store import contacts
from store.db import SessionFactory


class Skipped(Exception):
    """Nothing to send: the buyer opted out of the channel since, or the contact is gone."""


class BuyerMessenger:
    def __init__(
        self,
        reads: SessionFactory,
        *,
        sms: AliyunSmsClient | None,
        mailer: SmtpMailer | None,
        sms_codes: dict[tuple[BuyerStage, Language], str],
        link_secret: str,
        base_url: str,
        link_ttl: timedelta,
        max_attempts: int,
    ) -> None:
        self.reads = reads
        self.sms = sms
        self.mailer = mailer
        self.sms_codes = sms_codes
        self.link_secret = link_secret
        self.base_url = base_url
        self.link_ttl = link_ttl
        self.max_attempts = max_attempts

    async def deliver(
        self, channel: str, body: dict[str, Any], *, refund_id: str, seq: int
    ) -> None:
        """Raises `Skipped`, or `DeliveryFailed` (for now or for good)."""
        kind = Channel(channel)
        facts = Facts.from_json(body)
        async with self.reads() as session:
            reach = await contacts.reach(session, facts.order_id)
        address = reach.address(kind) if reach else None
        if reach is None or address is None:
            raise Skipped(f"the buyer opted out of {channel} or has no {channel} contact")
        stage, language = BuyerStage(body["stage"]), reach.contact.language
        link, _ = mint(self.link_secret, self.base_url, facts.refund_id, ttl=self.link_ttl)
        params = variables(facts, language, link)
        key = f"{refund_id}-{seq}-{channel}"
        if kind is Channel.SMS:
            if self.sms is None:
                raise DeliveryFailed("SMS is off (no SMS_URL)", permanent=True)
            template = TEMPLATES[(stage, language)].sms
            # Only the template's own variables: the provider checks them against it.
            used = Template(template.text).get_identifiers()
            await self.sms.send(
                address,
                self.sms_codes[(stage, language)],
                {k: v for k, v in params.items() if k in used},
                out_id=key,
            )
        else:
            if self.mailer is None:
                raise DeliveryFailed("e-mail is off (no SMTP_HOST)", permanent=True)
            mail = email(stage, language, params)
            await self.mailer.send(address, mail.subject, mail.body, message_key=key)

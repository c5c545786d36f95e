"""How a buyer can be reached outside the platform's app: an optional phone and e-mail the
platform sends with the order, and the language the buyer reads.

Contacts are personal data: they live in their own table, never in the order document the
workflow reads (so never in Temporal history), and every API answer and log line shows
them masked (`138****5678`, `a***@example.com`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

from domain.model import Model


class Language(StrEnum):
    ZH = "zh"
    EN = "en"


class Channel(StrEnum):
    """The channels a buyer hears on besides the in-app inbox, each one they can opt out of."""

    SMS = "sms"
    EMAIL = "email"


# A mainland mobile number (11 digits from 1), or E.164 with its country code.
Phone = Annotated[str, StringConstraints(pattern=r"^(1\d{10}|\+[1-9]\d{6,14})$")]
Email = Annotated[
    str,
    StringConstraints(
        max_length=254, pattern=r"^[^@\s\x00<>\"(),;:]{1,64}@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$"
    ),
]


class BuyerContact(Model):
    """`buyer_contact` on `POST /v1/orders`: every field optional."""

    phone: Phone | None = None
    email: Email | None = None
    language: Language = Language.ZH

    def masked(self) -> MaskedContact:
        return MaskedContact(
            phone=mask_phone(self.phone) if self.phone else None,
            email=mask_email(self.email) if self.email else None,
            language=self.language,
        )

    def address(self, channel: Channel) -> str | None:
        return self.phone if channel is Channel.SMS else self.email


class MaskedContact(Model):
    """What API answers show of a contact: enough to recognise it, not to use it."""

    phone: str | None = None
    email: str | None = None
    language: Language = Language.ZH


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678; +447700900123 -> +44*******0123."""
    head, tail = 3, 4
    if len(phone) <= head + tail:
        return "*" * len(phone)
    return phone[:head] + "*" * (len(phone) - head - tail) + phone[-tail:]


def mask_email(email: str) -> str:
    """alice@example.com -> a***@example.com (the domain says little about the person)."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_address(channel: Channel, address: str) -> str:
    return mask_phone(address) if channel is Channel.SMS else mask_email(address)

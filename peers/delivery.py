"""How a buyer-message provider (SMS, SMTP) said no: for now, or for good.

The outbox dispatcher retries the first kind with back-off and gives up on the second at
once: an illegal number or a mailbox that does not exist will not appear by waiting."""

from __future__ import annotations


class DeliveryFailed(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent

"""How the sandbox WeChat Pay gateway delivers its REFUND.* notifications: POSTed to the
refund's `notify_url`, signed as the refund's request asked (or as the signing control says,
`SandboxPlatformKeys.for_notification`), retried after each of the retry delays until a 2xx,
and for slow refunds delivered twice, as the real gateway sometimes does. Every attempt is
kept on the refund's record for the sandbox's listing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx

from peers.signing import wechatpay_sign_response
from sandbox.ledger import RefundRecord
from sandbox.wechat_platform import SandboxPlatformKeys

__all__ = ["NotificationDelivery"]

logger = logging.getLogger(__name__)


class NotificationDelivery:
    """Delivers notifications with `client` (tests pass one bound to an ASGI app); without one
    it makes its own, closed by `aclose`."""

    def __init__(
        self,
        platform_keys: SandboxPlatformKeys,
        *,
        client: httpx.AsyncClient | None,
        retry_delays: Sequence[float],
        duplicates: bool,
    ) -> None:
        self._platform_keys = platform_keys
        self._client = client
        self._own_client: httpx.AsyncClient | None = None
        self._retry_delays = retry_delays
        self._duplicates = duplicates
        # Refunds whose request named the WeChat Pay public key: their notifications are
        # signed with it (unless the signing control says otherwise).
        self.public_key_refunds: set[str] = set()

    async def deliver(self, record: RefundRecord, envelope: bytes) -> None:
        # Slow refunds are the ones real WeChat tends to announce twice: make the receiver
        # prove it is idempotent.
        copies = 2 if self._duplicates and record.slow else 1
        for _ in range(copies):
            await self._deliver_once(record, envelope)

    async def _deliver_once(self, record: RefundRecord, envelope: bytes) -> None:
        assert record.notify_url is not None
        client = self._client or self._own_client
        if client is None:
            client = self._own_client = httpx.AsyncClient(timeout=5.0)
        for attempt, delay in enumerate((0.0, *self._retry_delays)):
            await asyncio.sleep(delay)
            signer = self._platform_keys.for_notification(record.key in self.public_key_refunds)
            headers = {
                "Content-Type": "application/json",
                **wechatpay_sign_response(
                    signer.private_key, serial_no=signer.serial, body=envelope
                ),
            }
            try:
                response = await client.post(record.notify_url, content=envelope, headers=headers)
                status: int | str = response.status_code
                delivered = response.is_success
            except httpx.HTTPError as exc:
                status, delivered = type(exc).__name__, False
            record.notifications.append(
                {"attempt": attempt + 1, "status": status, "at": datetime.now(UTC).isoformat()}
            )
            if delivered:
                return
        logger.warning("sandbox wechat gave up notifying %s", record.out_refund_no)

    async def aclose(self) -> None:
        if self._own_client is not None:
            client, self._own_client = self._own_client, None
            await client.aclose()

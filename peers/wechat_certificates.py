"""WeChat Pay's platform certificates kept current: when an answer or a notification names a
certificate serial we do not know (WeChat rotated its certificate), `CertificateRefresh`
downloads the current ones from `GET /v3/certificates` and trusts the new ones. At most once
per interval, since a forger can name any serial; never for a public key id (`PUB_KEY_ID_...`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx
from cryptography import x509

from peers.payouts import SignatureInvalid
from peers.signing import DecryptionFailed, wechatpay_decrypt
from peers.wechat_keys import WechatPayKeys, is_public_key_id

__all__ = ["CERTIFICATES_PATH", "CERTIFICATE_REFRESH_INTERVAL_SECONDS", "CertificateRefresh"]

logger = logging.getLogger(__name__)

CERTIFICATES_PATH = "/v3/certificates"
# A forger can name any serial: an unknown one costs at most one download per interval.
CERTIFICATE_REFRESH_INTERVAL_SECONDS = 60.0


class CertificateRefresh:
    """Downloads WeChat's platform certificates into `keys` when asked, at most once per
    `interval`. `download` sends the signed `GET /v3/certificates` (the client's own request,
    so it carries the merchant's signature); `enabled=False` never downloads."""

    def __init__(
        self,
        keys: WechatPayKeys,
        *,
        apiv3_key: str,
        download: Callable[[], Awaitable[httpx.Response]],
        enabled: bool = True,
        interval: float = CERTIFICATE_REFRESH_INTERVAL_SECONDS,
    ) -> None:
        self._keys = keys
        self._apiv3_key = apiv3_key
        self._download = download
        self._enabled = enabled
        self._interval = interval
        self._refreshed_at: float | None = None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[int]] = set()

    def may_refresh(self, headers: Mapping[str, str]) -> bool:
        """Whether an unknown serial in these headers is worth a download: a certificate
        serial, with downloads enabled."""
        serial = headers.get("Wechatpay-Serial") or headers.get("wechatpay-serial") or ""
        return self._enabled and not is_public_key_id(serial)

    def refresh_soon(self) -> None:
        """Refresh in the background (from synchronous code, such as parsing a notification)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def refresh(self) -> int:
        """Download WeChat's platform certificates (`GET /v3/certificates`) and trust the new
        ones; returns how many were new. At most once per refresh interval; never raises.

        Each certificate arrives AEAD_AES_256_GCM-encrypted with our APIv3 key, which only
        WeChat and we know, and the answer must verify under the downloaded or known keys.
        """
        async with self._lock:
            now = time.monotonic()
            if self._refreshed_at is not None and now - self._refreshed_at < self._interval:
                return 0
            self._refreshed_at = now
            try:
                return await self._download_certificates()
            except Exception:  # a failed refresh leaves the answer unverified, nothing worse
                logger.warning("wechat platform certificate download failed", exc_info=True)
                return 0

    async def _download_certificates(self) -> int:
        response = await self._download()
        if not response.is_success:
            logger.warning("wechat %s: HTTP %s", CERTIFICATES_PATH, response.status_code)
            return 0
        downloaded: list[x509.Certificate] = []
        for item in json.loads(response.content).get("data") or []:
            encrypted = item.get("encrypt_certificate") or {}
            if encrypted.get("algorithm") != "AEAD_AES_256_GCM":
                continue
            try:
                pem = wechatpay_decrypt(
                    self._apiv3_key,
                    nonce=str(encrypted["nonce"]),
                    associated_data=str(encrypted.get("associated_data") or ""),
                    ciphertext=str(encrypted["ciphertext"]),
                )
                downloaded.append(x509.load_pem_x509_certificate(pem))
            except (DecryptionFailed, KeyError, ValueError):
                logger.warning("wechat certificate %s did not decrypt", item.get("serial_no"))
        if not downloaded:
            return 0
        candidates = WechatPayKeys(
            certificates=[*self._keys.certificates, *downloaded],
            max_clock_skew_seconds=self._keys.max_clock_skew_seconds,
        )
        try:
            candidates.verify(response.headers, response.content)
        except SignatureInvalid as invalid:
            logger.warning("wechat %s: answer not verified: %s", CERTIFICATES_PATH, invalid)
            return 0
        added = self._keys.add_certificates(downloaded)
        if added:
            logger.info("wechat: %d new platform certificate(s) downloaded", added)
        return added

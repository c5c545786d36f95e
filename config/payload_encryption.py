"""Payloads encrypted before they reach Temporal: a refund's history holds the buyer's IP
address, device id, reason text and evidence links, and Temporal (a cluster, a cloud, its
backups) has no business reading them.

AES-256-GCM from `cryptography`, one random 96-bit nonce per payload, the key id in the
payload's metadata (and bound to the ciphertext as associated data, so a payload cannot be
passed off as another key's). Rotation: the first key of PAYLOAD_ENCRYPTION_KEYS encrypts,
every key listed decrypts; a payload names its key, so old refunds keep working while new
ones use the new key. A payload that is not encrypted (histories recorded before encryption,
the CLI's `--input`) passes through as it is; one encrypted with a key this process does not
have fails loudly, naming the key id (a workflow task failure in the worker, an error in the
API), never silently.

Search attributes are not payloads of this codec: they stay readable for list filters and
carry no personal data (workflows/search.py)."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from config.problems import CannotStart

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
META_ENCODING = "encoding"
META_KEY_ID = "encryption-key-id"
META_CIPHER = "encryption-cipher"
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class PayloadKeyError(CannotStart, ValueError):
    """PAYLOAD_ENCRYPTION_KEYS cannot be used as it is: the message says which entry."""


class UnknownPayloadKey(ValueError):
    """A payload was encrypted with a key this process does not hold."""


@dataclass(frozen=True)
class PayloadKey:
    key_id: str
    secret: bytes


def parse_keys(text: str) -> list[PayloadKey]:
    """`id=base64,id=base64` -> keys, first one first. Refuses anything it cannot use."""
    keys: list[PayloadKey] = []
    for n, pair in enumerate(filter(None, (p.strip() for p in text.split(","))), start=1):
        key_id, eq, encoded = (part.strip() for part in pair.partition("="))
        if not eq or not _KEY_ID.match(key_id):
            raise PayloadKeyError(
                f"PAYLOAD_ENCRYPTION_KEYS entry {n} is not key_id=base64 "
                "(key ids: letters, digits, '.', '_', '-')"
            )
        try:
            secret = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise PayloadKeyError(f"payload key {key_id!r} is not valid base64") from None
        if len(secret) != KEY_BYTES:
            raise PayloadKeyError(
                f"payload key {key_id!r} is {len(secret)} bytes; AES-256 needs {KEY_BYTES}"
            )
        if any(k.key_id == key_id for k in keys):
            raise PayloadKeyError(f"payload key id {key_id!r} is listed twice")
        keys.append(PayloadKey(key_id, secret))
    return keys


def new_key_text(key_id: str) -> str:
    """A fresh `key_id=base64` entry (README: rotating the payload key)."""
    return f"{key_id}={base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


class PayloadEncryption(PayloadCodec):
    """The codec on the client and the worker (`config.temporal`) and behind the codec
    endpoint the Temporal UI and CLI call (`api/codec.py`)."""

    def __init__(self, keys: Sequence[PayloadKey]) -> None:
        super().__init__()
        if not keys:
            raise PayloadKeyError("payload encryption needs at least one key")
        self.key_id = keys[0].key_id
        self._encrypting = AESGCM(keys[0].secret)
        self._by_id = {k.key_id: AESGCM(k.secret) for k in keys}

    @property
    def key_ids(self) -> list[str]:
        return list(self._by_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.key_id.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._encrypting.encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(
            metadata={META_ENCODING: ENCODING, META_KEY_ID: key_id, META_CIPHER: CIPHER},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get(META_ENCODING) != ENCODING:
            return payload  # never encrypted: recorded before encryption, or typed in a CLI
        key_id = payload.metadata.get(META_KEY_ID, b"").decode(errors="replace")
        aead = self._by_id.get(key_id)
        if aead is None:
            raise UnknownPayloadKey(
                f"payload encrypted with key id {key_id!r}, which this process does not hold "
                f"(PAYLOAD_ENCRYPTION_KEYS has {', '.join(self._by_id)}); add that key"
            )
        data = payload.data
        plain = aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        return Payload.FromString(plain)

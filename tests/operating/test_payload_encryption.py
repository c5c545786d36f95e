"""The payload codec on its own: AES-256-GCM with the key id in the metadata, rotation, and
every way a payload or a key can be wrong."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload

from config.payload_encryption import (
    ENCODING,
    META_KEY_ID,
    PayloadEncryption,
    PayloadKeyError,
    UnknownPayloadKey,
    new_key_text,
    parse_keys,
)
from config.problems import cannot_start
from config.settings import DEV_PAYLOAD_KEYS, Settings
from config.temporal import data_converter, payload_codec


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


def codec(text: str) -> PayloadEncryption:
    return PayloadEncryption(parse_keys(text))


async def test_a_payload_round_trips_and_its_plaintext_is_gone() -> None:
    c = codec(new_key_text("k1"))
    secret = plain('{"ip": "203.0.113.9", "device_id": "dev-abc"}')
    [sealed] = await c.encode([secret])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[META_KEY_ID] == b"k1"
    assert b"203.0.113.9" not in sealed.SerializeToString()
    assert await c.decode([sealed]) == [secret]
    # A fresh nonce per payload: the same plaintext never encrypts the same way twice.
    [again] = await c.encode([secret])
    assert again.data != sealed.data


async def test_rotation_the_new_key_encrypts_and_the_old_still_decrypts() -> None:
    old = new_key_text("2026-05")
    new = new_key_text("2026-11")
    [by_old] = await codec(old).encode([plain("before")])
    rotated = codec(f"{new},{old}")
    [by_new] = await rotated.encode([plain("after")])
    assert by_new.metadata[META_KEY_ID] == b"2026-11"
    assert [p.data for p in await rotated.decode([by_old, by_new])] == [b"before", b"after"]


async def test_a_payload_of_an_unknown_key_fails_loudly_naming_the_key() -> None:
    [sealed] = await codec(new_key_text("retired-2025")).encode([plain("x")])
    with pytest.raises(UnknownPayloadKey, match="'retired-2025'"):
        await codec(new_key_text("k2")).decode([sealed])


async def test_payloads_that_were_never_encrypted_pass_through() -> None:
    c = codec(new_key_text("k1"))
    old = [plain('"recorded before encryption"'), Payload(metadata={"encoding": b"binary/null"})]
    assert await c.decode(old) == old


async def test_tampering_and_a_relabelled_key_id_are_refused() -> None:
    keys = parse_keys(f"{new_key_text('a')},{new_key_text('b')}")
    c = PayloadEncryption(keys)
    [sealed] = await c.encode([plain("amount 5000")])
    flipped = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + b"\x00")
    with pytest.raises(InvalidTag):
        await c.decode([flipped])
    # The key id is bound to the ciphertext: claiming another key does not decrypt.
    relabelled = Payload(metadata={**sealed.metadata, META_KEY_ID: b"b"}, data=sealed.data)
    with pytest.raises(InvalidTag):
        await c.decode([relabelled])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("k1", "not key_id=base64"),
        ("bad id=" + base64.b64encode(b"x" * 32).decode(), "not key_id=base64"),
        ("k1=%%%", "not valid base64"),
        ("k1=" + base64.b64encode(b"short").decode(), "5 bytes"),
        (f"{new_key_text('k1')},{new_key_text('k1')}", "listed twice"),
    ],
)
def test_keys_that_cannot_be_used_are_refused_in_one_line(text: str, words: str) -> None:
    with pytest.raises(PayloadKeyError, match=words) as err:
        parse_keys(text)
    line = cannot_start(err.value)
    assert line is not None and "\n" not in line


def test_production_refuses_the_dev_key_and_no_key_at_all() -> None:
    production: dict[str, Any] = {
        "environment": "production",
        "api_keys": "ak:admin",
        "supplier_secret": "s",
        "platform_webhook_secret": "w",
        "wechat_public_key_id": "",
        "buyer_link_secret": "b" * 32,
    }
    with pytest.raises(ValidationError, match="not the dev key") as err:
        Settings(**production)
    assert cannot_start(err.value) == (
        "settings refused: PAYLOAD_ENCRYPTION_KEYS must be your own keys in production, "
        "not the dev key"
    )
    with pytest.raises(ValidationError, match="must be set in production"):
        Settings(**production, payload_encryption_keys="")
    ours = Settings(**production, payload_encryption_keys=new_key_text("2026-11"))
    assert payload_codec(ours) is not None


def test_keys_come_from_a_file_for_container_secrets(tmp_path: Path) -> None:
    path = tmp_path / "payload-keys"
    path.write_text(new_key_text("from-file") + "\n")
    settings = Settings(environment="test", payload_encryption_keys_file=str(path))
    c = payload_codec(settings)
    assert c is not None and c.key_ids == ["from-file"]


def test_encryption_is_on_by_default_and_off_when_the_keys_are_empty() -> None:
    assert Settings(environment="test").payload_encryption_keys == DEV_PAYLOAD_KEYS
    assert data_converter(Settings(environment="test")).payload_codec is not None
    assert (
        data_converter(Settings(environment="test", payload_encryption_keys="")).payload_codec
        is None
    )

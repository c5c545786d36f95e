"""WeChat Pay's keys from the settings: the sandbox's certificate and public key by default,
certificates from files and directories, and the settings that cannot work refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from config.settings import SANDBOX_WECHAT_PUBLIC_KEY_ID, Settings
from peers.from_settings import wechat_client, wechat_keys
from peers.signing import SANDBOX_WECHAT_CERT_FILE, ensure_sandbox_keys
from peers.wechat_keys import certificate_serial
from peers.wechatpay import WechatPayClient
from tests.peers.throwaway_keys import certificate, new_key


def key_settings(directory: Path, **changes: object) -> Settings:
    return Settings(
        environment="test",
        wechat_private_key_path=str(directory / "wechat_merchant_private.pem"),
        wechat_platform_certs=str(directory / SANDBOX_WECHAT_CERT_FILE),
        wechat_public_key_path=str(directory / "wechat_pubkey_public.pem"),
        **changes,  # type: ignore[arg-type]
    )


def test_settings_default_to_both_kinds_of_key_of_the_sandbox(tmp_path: Path) -> None:
    ensure_sandbox_keys(tmp_path)
    settings = key_settings(tmp_path)
    assert settings.wechat_public_key_id == SANDBOX_WECHAT_PUBLIC_KEY_ID
    assert settings.wechat_clock_skew_seconds == 300
    keys = wechat_keys(settings)
    assert keys.public_key_id == SANDBOX_WECHAT_PUBLIC_KEY_ID
    [cert] = keys.certificates
    sandbox_cert = x509.load_pem_x509_certificate(
        (tmp_path / SANDBOX_WECHAT_CERT_FILE).read_bytes()
    )
    assert cert.serial == certificate_serial(sandbox_cert)
    # Certificates only: an empty public key id.
    assert wechat_keys(key_settings(tmp_path, wechat_public_key_id="")).public_key_id is None


async def test_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_sandbox_keys(tmp_path)
    other = tmp_path / "more"
    other.mkdir()
    extra = certificate(new_key())
    (other / f"{certificate_serial(extra)}.pem").write_bytes(
        extra.public_bytes(serialization.Encoding.PEM)
    )
    (other / "README.pem").write_text("not a certificate")  # skipped
    monkeypatch.setenv("WECHAT_PLATFORM_CERTS", f"{tmp_path / SANDBOX_WECHAT_CERT_FILE},{other}")
    monkeypatch.setenv("WECHAT_PUBLIC_KEY_PATH", str(tmp_path / "wechat_pubkey_public.pem"))
    monkeypatch.setenv("WECHAT_PUBLIC_KEY_ID", "PUB_KEY_ID_0112345678")
    monkeypatch.setenv("WECHAT_CLOCK_SKEW_SECONDS", "120")
    monkeypatch.setenv("WECHAT_PRIVATE_KEY_PATH", str(tmp_path / "wechat_merchant_private.pem"))
    settings = Settings()
    keys = wechat_keys(settings)
    assert len(keys.certificates) == 2 and keys.knows(certificate_serial(extra))
    assert keys.public_key_id == "PUB_KEY_ID_0112345678"
    assert keys.max_clock_skew_seconds == 120
    async with httpx.AsyncClient() as http:
        client = wechat_client(settings, http)
        assert isinstance(client, WechatPayClient)
        assert client.encrypt_sensitive("x")[1] == "PUB_KEY_ID_0112345678"


def test_settings_refuse_what_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="WECHAT_PLATFORM_CERTS"):
        Settings(wechat_platform_public_key_path="var/keys/wechat_platform_public.pem")
    monkeypatch.setenv("WECHAT_PLATFORM_PUBLIC_KEY_PATH", "/etc/wechat.pem")
    with pytest.raises(ValueError, match="no longer read"):
        Settings()
    monkeypatch.delenv("WECHAT_PLATFORM_PUBLIC_KEY_PATH")
    with pytest.raises(ValueError, match="PUB_KEY_ID_"):
        Settings(wechat_public_key_id="0112345678")
    with pytest.raises(ValueError, match="WECHAT_PLATFORM_CERTS or WECHAT_PUBLIC_KEY_ID"):
        Settings(wechat_public_key_id="", wechat_platform_certs="")
    with pytest.raises(ValueError, match="WECHAT_PUBLIC_KEY_ID must be set in production"):
        Settings(
            environment="production",
            supplier_secret="s",
            platform_webhook_secret="w",
            api_keys="k:admin",
        )

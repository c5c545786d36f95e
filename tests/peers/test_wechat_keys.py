"""WeChat Pay's keys as WeChat does them: platform certificates chosen by serial, with expiry,
several at once; the WeChat Pay public key by its id; both during a migration; a clock-skew
allowance; which key sensitive fields are encrypted for. Against the sandbox:
test_wechat_key_modes.py and test_wechat_certificates.py; settings:
test_wechat_key_settings.py."""

from __future__ import annotations

import pytest

from peers.payouts import SignatureInvalid
from peers.wechat_keys import (
    BAD_SIGNATURE,
    CERTIFICATE_EXPIRED,
    CLOCK_SKEW,
    SIGNATURE_TYPE,
    UNKNOWN_SERIAL,
    UNSIGNED,
    WechatPayKeys,
    certificate_serial,
)
from tests.peers.conftest import PUBLIC_KEY_ID
from tests.peers.throwaway_keys import BODY, certificate, new_key, signed


def reason(headers: dict[str, str], keys: WechatPayKeys, body: bytes = BODY) -> str | None:
    with pytest.raises(SignatureInvalid) as raised:
        keys.verify(headers, body)
    return raised.value.sub_code


def test_each_answer_is_verified_with_the_certificate_its_serial_names() -> None:
    old_key, new_key_ = new_key(), new_key()
    old, new = certificate(old_key, days_to=30), certificate(new_key_, days_to=400)
    keys = WechatPayKeys(certificates=[old, new])
    assert keys.verify(signed(old_key, certificate_serial(old)), BODY) == certificate_serial(old)
    assert keys.verify(signed(new_key_, certificate_serial(new)), BODY)
    # Hex as WeChat writes it, or not: lower case and leading zeros name the same certificate.
    assert keys.verify(signed(old_key, "00" + certificate_serial(old).lower()), BODY)
    # The right key under the wrong serial is a bad signature, not a pass.
    assert reason(signed(old_key, certificate_serial(new)), keys) == BAD_SIGNATURE


def test_unknown_serials_are_refused_as_such() -> None:
    key = new_key()
    keys = WechatPayKeys(certificates=[certificate(key)])
    assert reason(signed(key, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"), keys) == UNKNOWN_SERIAL
    assert reason(signed(key, "not-a-serial"), keys) == UNKNOWN_SERIAL
    assert reason(signed(key, PUBLIC_KEY_ID), keys) == UNKNOWN_SERIAL  # no public key here


@pytest.mark.parametrize(("days_from", "days_to"), [(-400, -1), (2, 400)])
def test_a_certificate_outside_its_validity_is_refused(days_from: float, days_to: float) -> None:
    key = new_key()
    cert = certificate(key, days_from=days_from, days_to=days_to)
    keys = WechatPayKeys(certificates=[cert])
    assert reason(signed(key, certificate_serial(cert)), keys) == CERTIFICATE_EXPIRED


def test_public_key_by_its_id_and_both_kinds_during_a_migration() -> None:
    cert_key, public_key = new_key(), new_key()
    cert = certificate(cert_key)
    public_only = WechatPayKeys(public_key=public_key.public_key(), public_key_id=PUBLIC_KEY_ID)
    both = WechatPayKeys(
        certificates=[cert], public_key=public_key.public_key(), public_key_id=PUBLIC_KEY_ID
    )
    assert public_only.public_key_id == PUBLIC_KEY_ID
    assert public_only.verify(signed(public_key, PUBLIC_KEY_ID), BODY) == PUBLIC_KEY_ID
    assert reason(signed(cert_key, certificate_serial(cert)), public_only) == UNKNOWN_SERIAL
    assert reason(signed(public_key, "PUB_KEY_ID_0119999999"), public_only) == UNKNOWN_SERIAL
    assert both.verify(signed(public_key, PUBLIC_KEY_ID), BODY) == PUBLIC_KEY_ID
    assert both.verify(signed(cert_key, certificate_serial(cert)), BODY)


def test_clock_skew_allowance_is_a_setting() -> None:
    key = new_key()
    cert = certificate(key)
    serial = certificate_serial(cert)
    default = WechatPayKeys(certificates=[cert])
    assert default.max_clock_skew_seconds == 300
    assert default.verify(signed(key, serial, age=290), BODY)
    assert reason(signed(key, serial, age=600), default) == CLOCK_SKEW
    assert reason(signed(key, serial, age=-600), default) == CLOCK_SKEW  # from the future
    strict = WechatPayKeys(certificates=[cert], max_clock_skew_seconds=60)
    assert reason(signed(key, serial, age=120), strict) == CLOCK_SKEW
    lenient = WechatPayKeys(certificates=[cert], max_clock_skew_seconds=900)
    assert lenient.verify(signed(key, serial, age=600), BODY)


def test_missing_headers_and_other_signature_types_are_refused() -> None:
    key = new_key()
    cert = certificate(key)
    keys = WechatPayKeys(certificates=[cert])
    headers = signed(key, certificate_serial(cert))
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    for name in ("Wechatpay-Signature", "Wechatpay-Serial", "Wechatpay-Timestamp"):
        assert reason({k: v for k, v in headers.items() if k != name}, keys) == UNSIGNED
    sm2 = {**headers, "Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}
    assert reason(sm2, keys) == SIGNATURE_TYPE
    lower = {k.lower(): v for k, v in headers.items()}  # as a framework may hand them over
    assert keys.verify(lower, BODY)


def test_sensitive_fields_are_encrypted_for_the_public_key_else_the_newest_valid_certificate() -> (
    None
):
    a, b, c, public_key = new_key(), new_key(), new_key(), new_key()
    older = certificate(a, days_to=100)
    newer = certificate(b, days_to=300)
    expired = certificate(c, days_from=-900, days_to=-1)
    certificates_only = WechatPayKeys(certificates=[older, newer, expired])
    key, serial = certificates_only.encryption_key()
    assert serial == certificate_serial(newer)
    assert key.public_numbers() == b.public_key().public_numbers()
    with_public_key = WechatPayKeys(
        certificates=[older, newer], public_key=public_key.public_key(), public_key_id=PUBLIC_KEY_ID
    )
    assert with_public_key.encryption_key()[1] == PUBLIC_KEY_ID


def test_keys_refuse_to_be_built_wrong() -> None:
    public_key = new_key().public_key()
    with pytest.raises(ValueError):
        WechatPayKeys()  # nothing to verify with
    with pytest.raises(ValueError):
        WechatPayKeys(public_key=public_key)  # a public key without its id
    with pytest.raises(ValueError):
        WechatPayKeys(public_key=public_key, public_key_id="0119000000")  # not PUB_KEY_ID_
